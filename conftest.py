"""Fixtures shared by every test folder: real Kafka and PostgreSQL, the in-process platform."""

pytest_plugins = ["tpp_testkit"]
