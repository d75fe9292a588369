#!/usr/bin/env bash
# Idempotent setup on a fresh machine: the virtualenv with Newswatch and its dev extras,
# and the Kafka jars from Maven Central. Needs Python 3.11+, Java 17+ and Maven.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "bootstrap: $1 is missing: $2" >&2; exit 1; }; }
need python3 "install Python 3.11+"
need java "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless), or set KAFKA_BOOTSTRAP_SERVERS"
need mvn "install Maven (Debian: apt-get install maven), or set KAFKA_BOOTSTRAP_SERVERS"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

if ! ls .cache/kafka/lib/kafka_2.13-*.jar >/dev/null 2>&1; then
  echo "bootstrap: resolving the Kafka jars with Maven (first run only)" >&2
  mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$PWD/.cache/kafka/lib"
fi

# The console's browser tests drive Debian's chromium through Playwright (Playwright's own
# browser download is never used). Installed when missing and we may (root, as in CI).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Debian's chromium for the browser tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
      >/dev/null
  else
    echo "bootstrap: chromium is missing: the browser tests will be skipped (apt-get install chromium)" >&2
  fi
fi
