"""Fixtures for the Python end-to-end tests (helpers live in footfall_mqtt.py)."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from footfall_mqtt import SCHEMA_BY_TYPE, SCHEMAS, Mosquitto


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def validators():
    """{cloudevents type: validator}, plus "envelope", with $refs served from docs/schemas."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    docs = {p.name: json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))}
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs.values())

    def make(name: str) -> Draft202012Validator:
        return Draft202012Validator(docs[name], registry=registry,
                                    format_checker=Draft202012Validator.FORMAT_CHECKER)

    out = {t: make(f) for t, f in SCHEMA_BY_TYPE.items()}
    out["envelope"] = make("cloudevent.json")
    return out
