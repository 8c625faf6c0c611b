#!/usr/bin/env python3
"""Writes seed inputs for every fuzz target from proto's vendored test vectors and the worked
example in docs/wire-format.md. Usage: seed_corpus.py OUT_DIR  (creates OUT_DIR/<target>/...)."""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "proto", "tests", "vectors")


def ad_structures(payload):
    i = 0
    while i < len(payload):
        n = payload[i]
        if n == 0:
            i += 1
            continue
        s = payload[i + 1 : i + 1 + n]
        if len(s) < n:
            return
        yield s[0], s[1:]
        i += 1 + n


def main(out):
    seeds = {t: set() for t in ["ad_structures", "ibeacon", "altbeacon", "eddystone",
                                "eddystone_url", "heart_rate", "frame_verify", "frame_roundtrip"]}
    for name in sorted(os.listdir(VECTORS)):
        if not name.endswith(".jsonl"):
            continue
        for line in open(os.path.join(VECTORS, name)):
            v = json.loads(line)
            raw = bytes.fromhex(v["raw_hex"])
            kind = v["input_kind"]
            if kind in ("adv_data", "adv_data_parts", "ad_structure"):
                seeds["ad_structures"].add(raw)
                for t, data in ad_structures(raw):
                    if t == 0xFF:
                        seeds["ibeacon"].add(data)
                        seeds["altbeacon"].add(data)
                    if t == 0x16 and data[:2] == b"\xaa\xfe":
                        seeds["eddystone"].add(data[2:])
                        if data[2:3] == b"\x10":
                            seeds["eddystone_url"].add(data[4:])
            elif kind == "manufacturer_data":
                seeds["ibeacon"].add(raw)
            elif kind == "service_data_feaa":
                seeds["eddystone"].add(raw)
            elif kind == "eddystone_url_scheme_and_body":
                seeds["eddystone_url"].add(raw)
            elif kind == "gatt_characteristic_value":
                seeds["heart_rate"].add(raw)
    doc = open(os.path.join(ROOT, "docs", "wire-format.md")).read()
    block = doc.split("<!-- worked-example-hex: begin -->")[1].split("<!-- worked-example-hex: end -->")[0]
    hexits = "".join(re.sub(r"[^0-9a-fA-F]", "", l.split("#")[0]) for l in block.splitlines()
                     if not l.strip().startswith("```"))
    frame = bytes.fromhex(hexits)
    seeds["frame_verify"].add(frame)
    seeds["frame_roundtrip"].add(frame[:-8])
    for target, items in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(sorted(items)):
            with open(os.path.join(d, "seed-%03d" % i), "wb") as f:
                f.write(data)
    print("seeds: " + ", ".join("%s %d" % (t, len(s)) for t, s in seeds.items()))


if __name__ == "__main__":
    main(sys.argv[1])
