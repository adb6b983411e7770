"""The enrollment service under another name, noting each build of its app (served with
``--app-dir tests/integration/counted``: how many times a replica's processes build it)."""

SETTINGS = "tpp_enrollment.config:Settings"
