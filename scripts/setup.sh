#!/usr/bin/env bash
# Idempotent set-up shared by scripts/test and scripts/demo: everything a fresh Debian machine
# with only the Rust toolchain needs. Safe to run again; does nothing when all is present.
# Usage: source scripts/setup.sh [demo|test]
set -euo pipefail

footfall_setup() {
    local mode="${1:-test}"
    local sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi

    # Debian packages. demo needs only what the gateway links against (libdbus for btleplug).
    local pkgs=(libdbus-1-dev pkg-config)
    if [ "$mode" = "test" ]; then
        pkgs+=(qemu-system-arm libclang-dev clang mosquitto mosquitto-clients
               dbus python3-dbusmock python3-dbus python3-venv)
    fi
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        $sudo apt-get update -qq
        # One retry: a concurrent dpkg run or an interrupted configure should not fail the suite.
        if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
            sleep 5
            $sudo dpkg --configure -a || true
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
    fi

    [ "$mode" = "test" ] || return 0

    # Rust targets for the firmware and the no_std proto check.
    local targets=(thumbv7em-none-eabihf riscv32imc-unknown-none-elf)
    local installed
    installed="$(rustup target list --installed)"
    for t in "${targets[@]}"; do
        grep -qx "$t" <<<"$installed" || rustup target add "$t"
    done
    rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

    # Fuzzing needs nightly and cargo-fuzz.
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet

    # Python clients for the integration tests, in a venv so the system stays clean.
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import paho.mqtt, jsonschema, pytest' 2>/dev/null; then
        echo "setup: creating .venv with paho-mqtt, jsonschema, pytest"
        python3 -m venv .venv
        .venv/bin/pip install --quiet --disable-pip-version-check 'paho-mqtt>=2,<3' 'jsonschema>=4' 'pytest>=7'
    fi
}

footfall_setup "${1:-test}"
