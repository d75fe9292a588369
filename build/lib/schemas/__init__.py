"""Every data contract of Newswatch and nothing else.

- `schemas.messages`: the Kafka message types (versioned, JSON on the wire).
- `schemas.topics`: the Kafka topic names, in one place.
- `schemas.tables`: the SQL tables (SQLAlchemy 2 Core metadata).
- `schemas.jsonschema`: JSON Schema files generated from the message types.
"""
