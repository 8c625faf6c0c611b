#!/usr/bin/env bash
# Builds every proto fuzz target (fuzz/, its own workspace) with nightly and runs each for a
# short smoke, seeded from proto's test vectors. FUZZ_SECONDS overrides the per-target time.
# Longer runs and their exec counts: docs/security.md ("Fuzzing proto").
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"

secs="${FUZZ_SECONDS:-8}"
# Safe Rust: no sanitizer needed to find panics; debug assertions catch overflow.
flags=(-s none -a)

cargo +nightly fuzz build "${flags[@]}"

seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
python3 seed_corpus.py "$seeds"

for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target" "$seeds/$target"
    log="$seeds/$target.log"
    if ! cargo +nightly fuzz run "${flags[@]}" "$target" "corpus/$target" "$seeds/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $target failed; reproducer under fuzz/artifacts/$target/"
        exit 1
    fi
    execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
    echo "fuzz $target: ${secs} s, ${execs} execs, no crash"
done
