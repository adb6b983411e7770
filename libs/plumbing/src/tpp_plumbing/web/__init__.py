"""HTTP: auth, audit, idempotency, limits, problems, OpenAPI, routing, the edge."""
