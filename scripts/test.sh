#!/usr/bin/env bash
# Installs whatever is missing (scripts/setup.sh, with the Docker engine the Docker tests need),
# then runs the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k probe -x
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-docker
exec .venv/bin/python -m pytest -q "$@"
