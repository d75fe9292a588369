#!/usr/bin/env bash
# The README's test command: installs what is missing, starts PostgreSQL, runs every test.
# Kafka is started by the tests themselves unless KAFKA_BOOTSTRAP_SERVERS is set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
eval "$(scripts/postgres.sh start)"
exec .venv/bin/python -m pytest "$@"
