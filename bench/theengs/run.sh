#!/usr/bin/env bash
# Advertisement decoding, Footfall (footfall-proto, Rust, release) vs the Theengs decoder
# (TheengsDecoder from PyPI, its C++ core behind the Python binding), on the same advertising
# payloads (proto/tests/vectors → corpus.py), in one run. Prints adverts/s for each and the ratio.
# Not part of CI. Usage: bench/theengs/run.sh [FOOTFALL_ROUNDS [THEENGS_ROUNDS]]
# (rounds over the whole corpus; defaults 1000000 and 200 — about 1 s and 10 s on one core).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ff_rounds="${1:-1000000}"
th_rounds="${2:-200}"
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
if ! "$py" -c 'import TheengsDecoder' 2>/dev/null; then
    echo "installing TheengsDecoder into $root/.venv (builds its C++ core; needs a C++ compiler and cmake)" >&2
    [ -x "$root/.venv/bin/python" ] || python3 -m venv "$root/.venv"
    py="$root/.venv/bin/python"
    "$py" -m pip install --quiet --disable-pip-version-check TheengsDecoder
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" "$here/corpus.py" "$work"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/theengs-bench"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
ff="$("$CARGO_TARGET_DIR/release/footfall-theengs-bench" "$work/corpus.txt" "$ff_rounds")"
th="$("$py" "$here/theengs_bench.py" "$work/theengs.jsonl" "$th_rounds")"
echo "corpus: $(wc -l < "$work/corpus.txt") advertisements; footfall × $ff_rounds rounds, theengs × $th_rounds rounds; one core each"
echo "  $ff"
echo "  $th"
"$py" - "$ff" "$th" <<'PY'
import sys
ff, th = sys.argv[1].split(), sys.argv[2].split()
f, t = float(ff[3]), float(th[3])
print(f"footfall: {f:,.0f} adverts/s (recognised {ff[4]})")
print(f"theengs:  {t:,.0f} adverts/s (recognised {th[4]} {' '.join(th[5:])})")
print(f"ratio footfall/theengs: {f / t:.1f}x")
PY
