"""Reporting storage: the tables, the projections' writes and the reports' queries."""
