#!/usr/bin/env bash
# Python end-to-end tests (pytest + paho-mqtt against real Mosquitto brokers started by the tests):
# the MQTT contract on real published traffic (tests/python) and the marketing-engineer example
# consumer (examples/python). The venv comes from scripts/setup.sh test.
set -euo pipefail

cargo build -p footfall-gateway --locked
target_dir="${CARGO_TARGET_DIR:-target}"
export FOOTFALL_BIN="$(cd "$target_dir" && pwd)/debug/footfall"

if [ ! -x .venv/bin/python ]; then
    echo "70-python: .venv is missing: run \`bash scripts/setup.sh test\`" >&2
    exit 1
fi

set +e
.venv/bin/python -m pytest -q -p no:cacheprovider tests/python examples/python
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "70-python: pytest collected no tests, but tests/python and examples/python have tests" >&2
    exit 1
fi
exit "$status"
