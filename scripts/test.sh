#!/usr/bin/env bash
# Quick start, command 2: install what is needed, start PostgreSQL and Apache Kafka, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/postgres.sh
bash scripts/kafka-broker.sh start
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-19092}}"
exec .venv/bin/python -m pytest "$@"
