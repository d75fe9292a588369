.PHONY: run test lint bootstrap kafka-start kafka-stop

# Runs the whole pipeline on its embedded defaults (local Kafka, SQLite, demo feeds).
run:
	scripts/bootstrap.sh
	.venv/bin/newswatch run

# Installs what is missing, starts PostgreSQL, runs every test (Kafka is started by them).
test:
	scripts/test.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy

bootstrap:
	scripts/bootstrap.sh
