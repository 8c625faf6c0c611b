#!/usr/bin/env bash
# proto must build for a Cortex-M4F with no std and no alloc (the firmware shares it).
set -euo pipefail
cargo build -p footfall-proto --target thumbv7em-none-eabihf --locked
cargo build -p footfall-proto --target thumbv7em-none-eabihf --features defmt --locked
