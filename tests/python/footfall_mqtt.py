"""Helpers for the Python end-to-end tests: the gateway binary, a real Mosquitto on a free
127.0.0.1 port, and MQTT 5 observers. (A module of its own, not conftest.py, so that tests can
import it by a unique name.)"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import paho.mqtt.client as mqtt

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"

SCHEMA_BY_TYPE = {
    "footfall.zone.enter": "zone-enter.json",
    "footfall.zone.dwell": "zone-dwell.json",
    "footfall.zone.exit": "zone-exit.json",
    "footfall.engagement": "engagement.json",
    "footfall.occupancy": "occupancy.json",
    "footfall.campaign.trigger": "campaign-trigger.json",
    "footfall.node.status": "node-status.json",
    "footfall.gateway.status": "gateway-status.json",
}


def footfall_bin() -> pathlib.Path:
    """The gateway binary: $FOOTFALL_BIN, else $CARGO_TARGET_DIR/debug/footfall, else target/."""
    env = os.environ.get("FOOTFALL_BIN")
    if env:
        path = pathlib.Path(env)
    else:
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "debug" / "footfall"
    if not path.exists():
        raise RuntimeError(f"{path} not found: run `cargo build -p footfall-gateway` first "
                           "(scripts/test.d/70-python.sh does)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, workdir: pathlib.Path):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not pathlib.Path(exe).exists():
            raise RuntimeError("mosquitto is not installed: run `bash scripts/setup.sh test`")
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nmax_queued_messages 100000\n")
        self.log = open(workdir / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("mosquitto did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    content_type: Optional[str]
    expiry: Optional[int]

    def json(self) -> dict:
        return json.loads(self.payload)


@dataclass
class Observer:
    """An MQTT 5 subscriber that records everything it receives."""

    port: int
    client_id: str
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.subscribed.set()

    def _on_message(self, _c, _u, msg) -> None:
        props = msg.properties
        rec = Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos,
                       getattr(props, "ContentType", None) if props else None,
                       getattr(props, "MessageExpiryInterval", None) if props else None)
        with self.cond:
            self.messages.append(rec)
            self.cond.notify_all()

    def subscribe(self, *filters: str) -> "Observer":
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        for f in filters:
            self.subscribed.clear()
            self.client.subscribe(f, options=mqtt.SubscribeOptions(qos=1))
            if not self.subscribed.wait(10):
                raise TimeoutError(f"no SUBACK for {f}")
        return self

    def wait_for(self, predicate, timeout_s: float = 30.0, what: str = "message") -> Received:
        with self.cond:
            found: list[Received] = []

            def check() -> bool:
                found[:] = [m for m in self.messages if predicate(m)]
                return bool(found)

            if not self.cond.wait_for(check, timeout=timeout_s):
                raise TimeoutError(f"no {what} within {timeout_s} s; got {len(self.messages)} messages")
            return found[0]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
