"""The stages that read Kafka or SQL: enrich, store, alert."""
