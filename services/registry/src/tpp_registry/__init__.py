"""Package."""

#: The service's settings class ("module:attribute"), from which ``tpp_plumbing.serve`` learns
#: where the relay runs before it imports the app (this package itself imports nothing).
SETTINGS = "tpp_registry.config:Settings"
