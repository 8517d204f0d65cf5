#!/usr/bin/env bash
# Installs whatever is missing (scripts/setup.sh), then runs the demo service with an exporter
# beside it and prints where to look. Ctrl-C stops both. Extra arguments go to `pharos demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/pharos demo "$@"
