"""Registry HTTP API: routes per area (organizers, sessions and catalogue, plans) and models."""
