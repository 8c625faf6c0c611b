#!/usr/bin/env python3
"""Decodes the corpus (theengs.jsonl from corpus.py) with TheengsDecoder, N rounds, and prints
one line: `theengs <adverts> <seconds> <adverts/s> <recognised per round>`."""

from __future__ import annotations

import json
import sys
import time

from TheengsDecoder import decodeBLE


def main() -> int:
    corpus_path, rounds = sys.argv[1], int(sys.argv[2])
    items = [json.loads(l) for l in open(corpus_path) if l.strip()]
    inputs = [json.dumps(i["input"]) for i in items]  # what a host stack passes in: a JSON string
    recognised = {}
    for item, s in zip(items, inputs):
        out = decodeBLE(s)
        if out is not None and "model_id" in json.loads(out):
            recognised[item["kind"]] = recognised.get(item["kind"], 0) + 1
    decode = decodeBLE
    t0 = time.perf_counter()
    for _ in range(rounds):
        for s in inputs:
            decode(s)
    dt = time.perf_counter() - t0
    n = rounds * len(inputs)
    print(f"theengs {n} {dt:.3f} {n / dt:.0f} {sum(recognised.values())}/{len(inputs)} {json.dumps(recognised, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
