#!/usr/bin/env bash
# Firmware: the anchor role on an emulated Cortex-M4 (QEMU), and release builds of both boards
# with warnings denied, fmt and clippy clean. Prints flash/RAM use and QEMU instruction counts.
# (firmware/app itself is linted and tested with the host workspace in 10-lint and 30-tests;
# tests/tests/firmware_qemu.rs verifies every QEMU frame the way the gateway does.)
set -euo pipefail
root="$(pwd)"

need() {
    command -v "$1" >/dev/null || { echo "50-firmware: $1 is missing: run scripts/test (scripts/setup.sh test installs it)" >&2; exit 1; }
}
need qemu-system-arm
need python3

echo "--- firmware/qemu (thumbv7em-none-eabihf on QEMU mps2-an386)"
(
    cd firmware/qemu
    export CARGO_TARGET_DIR="$root/target/firmware-qemu"
    cargo fmt --check
    cargo clippy --release --locked -- -D warnings
    out="$(cargo run --release --locked --quiet)"
    grep -q '^DONE ' <<<"$out" || { echo "$out" >&2; echo "50-firmware: QEMU run did not finish" >&2; exit 1; }
    echo "frames: $(grep -c '^FRAME ' <<<"$out")"
    grep -E '^(WINDOW|DONE) ' <<<"$out"
    python3 ../boards/size-report.py "$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/footfall-firmware-qemu" --board qemu-mps2-an386
)

for board in nrf52840-dk esp32c3; do
    echo "--- firmware/boards/$board (release, -D warnings)"
    (
        cd "firmware/boards/$board"
        cargo fmt --check
        RUSTFLAGS="-D warnings" cargo clippy --release --locked -- -D warnings
        RUSTFLAGS="-D warnings" cargo build --release --locked
        triple="$(sed -n 's/^target = "\(.*\)"/\1/p' .cargo/config.toml)"
        python3 ../size-report.py "target/$triple/release/footfall-$board" --board "$board"
    )
done
