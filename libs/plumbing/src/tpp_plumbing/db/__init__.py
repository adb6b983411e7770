"""PostgreSQL: engine, raw read and command pools, migration helpers."""
