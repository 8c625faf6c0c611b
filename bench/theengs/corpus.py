#!/usr/bin/env python3
"""Builds the advertising corpus for the Theengs comparison from proto's test vectors.

Every vector that is (or can be made into) a BLE advertising payload becomes one line of
corpus.txt: `<kind> <advertising data, hex>`. Kinds:
- the vectors whose input is whole advertising data (iBeacon, Eddystone, AltBeacon, GAP);
- iBeacon manufacturer-data vectors, wrapped in one 0xFF AD structure;
- Eddystone service-data vectors, wrapped in one 0x16 AD structure for UUID 0xFEAA;
- Heart Rate Measurement values (0x2A37), wrapped in one 0x16 AD structure for the Heart Rate
  service UUID 0x180D, the way HR broadcasters put the measurement in an advertisement.
The same lines, split into the fields TheengsDecoder takes (manufacturerdata, servicedata +
servicedatauuid, name), go to theengs.jsonl: Theengs expects the host BLE stack to have split
the AD structures already, so that split happens here, outside anything timed.
"""

from __future__ import annotations

import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
VECTORS = REPO / "proto" / "tests" / "vectors"


def ad(ad_type: int, data: bytes) -> bytes:
    return bytes([len(data) + 1, ad_type]) + data


def to_adv(v: dict) -> tuple[str, bytes] | None:
    kind, raw = v["input_kind"], bytes.fromhex(v["raw_hex"])
    fmt = v["format"]
    if kind == "adv_data":
        return fmt, raw
    if kind == "ad_structure":
        return fmt, raw
    if kind == "manufacturer_data" and fmt == "ibeacon":
        return fmt, ad(0xFF, raw)
    if kind == "service_data_feaa":
        return fmt, ad(0x16, b"\xaa\xfe" + raw)
    if kind == "gatt_characteristic_value" and fmt.startswith("gatt_heart_rate"):
        return "heart_rate_adv", ad(0x16, b"\x0d\x18" + raw)
    return None


def theengs_input(adv: bytes) -> dict:
    """The fields a host BLE stack hands TheengsDecoder for this advertisement."""
    out: dict = {"id": "C0:FF:EE:00:00:01", "rssi": -62}
    i = 0
    while i < len(adv):
        n = adv[i]
        if n == 0 or i + 1 + n > len(adv):
            break
        t, data = adv[i + 1], adv[i + 2 : i + 1 + n]
        if t == 0xFF:
            out["manufacturerdata"] = data.hex()
        elif t == 0x16 and len(data) >= 2:
            out["servicedatauuid"] = "0x%04x" % int.from_bytes(data[:2], "little")
            out["servicedata"] = data[2:].hex()
        elif t in (0x08, 0x09):
            out["name"] = data.decode("utf-8", "replace")
        i += 1 + n
    return out


def main() -> int:
    outdir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent
    lines, theengs = [], []
    for path in sorted(VECTORS.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            got = to_adv(json.loads(line))
            if got is None:
                continue
            kind, adv = got
            lines.append(f"{kind} {adv.hex()}")
            theengs.append(json.dumps({"kind": kind, "input": theengs_input(adv)}))
    (outdir / "corpus.txt").write_text("\n".join(lines) + "\n")
    (outdir / "theengs.jsonl").write_text("\n".join(theengs) + "\n")
    print(f"corpus: {len(lines)} advertisements from {VECTORS.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
