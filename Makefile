.PHONY: run test lint bootstrap kafka-start kafka-stop relevance-model

# Runs the whole pipeline on its embedded defaults (local Kafka, SQLite, demo feeds).
run:
	scripts/bootstrap.sh
	.venv/bin/newswatch run

# Installs what is missing, starts PostgreSQL, runs every test (Kafka is started by them).
test:
	scripts/test.sh

# Retrains the shipped relevance model from the labelled sets (deterministic: same bytes).
relevance-model:
	.venv/bin/newswatch topics train tests/data/labelled/train.jsonl \
	    tests/data/labelled/articles.jsonl tests/data/labelled/extra.jsonl \
	    tests/data/labelled/relevance-extra.jsonl tests/data/labelled/relevance-extra-2.jsonl \
	    tests/data/labelled/relevance-extra-3.jsonl tests/data/labelled/heldout-2026e.jsonl \
	    tests/data/labelled/relevance-extra-4.jsonl tests/data/labelled/heldout-2026f.jsonl \
	    tests/data/labelled/heldout-2026g.jsonl tests/data/labelled/relevance-extra-5.jsonl \
	    tests/data/labelled/heldout-2026h.jsonl tests/data/labelled/relevance-extra-6.jsonl \
	    tests/data/labelled/heldout-2026i.jsonl tests/data/labelled/relevance-extra-7.jsonl \
	    tests/data/labelled/seed.jsonl --out consumers/enrich/relevance-model.json

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy

bootstrap:
	scripts/bootstrap.sh
