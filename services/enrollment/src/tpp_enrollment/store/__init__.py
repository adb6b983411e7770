"""Enrollment storage: the tables and the queries of each aggregate; never commits."""
