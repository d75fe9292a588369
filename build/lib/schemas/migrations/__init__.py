"""Alembic migrations of the SQL tables in `schemas.tables`; run them with `newswatch db`."""
