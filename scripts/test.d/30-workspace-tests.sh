#!/usr/bin/env bash
# Unit, property, integration and end-to-end tests of the host workspace.
set -euo pipefail
cargo test --workspace --locked
