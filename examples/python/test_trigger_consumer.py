"""The example consumer against a real Mosquitto and a local webhook: every trigger reaches the
webhook exactly once, duplicates and expired triggers never do, triggers published while the
consumer is away are delivered when it returns, and a shared subscription splits the work."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import trigger_consumer  # noqa: E402

SOURCE = "/footfall/store-042/gateway/gw-1"


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(t * 1000) % 1000:03d}Z"


def trigger(n: int, expires_in_s: float = 300.0, campaign: str = "wine-promo") -> dict:
    """A synthetic trigger shaped exactly like the gateway's (checked against the schema)."""
    now = time.time()
    return {
        "specversion": "1.0",
        "id": f"{0xfeed0000 + n:032x}",
        "source": SOURCE,
        "type": "footfall.campaign.trigger",
        "time": rfc3339(now),
        "subject": campaign,
        "datacontenttype": "application/json",
        "data": {
            "store": "store-042", "campaign": campaign, "zone": "wine",
            "person": f"c-{n:032x}", "device_kind": "phone", "confidence": 0.9,
            "dwell_ms": 30000, "engagement": None, "reason": {"rule": "campaign", "nodes": [1, 2]},
            "expires_at": rfc3339(now + expires_in_s), "payload": {"offer": "wine-10"}, "seq": n,
        },
    }


class Publisher:
    def __init__(self, port: int):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-gateway",
                                  protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, event: dict, expiry_s: int | None = 300) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/cloudevents+json"
        if expiry_s is not None:
            props.MessageExpiryInterval = expiry_s
        topic = f"footfall/v1/store-042/campaigns/{event['data']['campaign']}"
        info = self.client.publish(topic, json.dumps(event).encode(), qos=1, properties=props)
        info.wait_for_publish(timeout=5)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Consumer:
    """The example run as a separate process, as a user would run it."""

    def __init__(self, port: int, webhook_url: str, client_id: str = "consumer-1"):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "trigger_consumer.py"), "--port", str(port),
             "--webhook", webhook_url, "--client-id", client_id],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.expect("subscribed ")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout_s: float = 20.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line starting {prefix!r}; saw {self.seen}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())


@pytest.fixture
def consumers():
    started: list[Consumer] = []
    yield started
    for c in started:
        c.stop()


def test_synthetic_triggers_match_the_contract(trigger_validator):
    trigger_validator.validate(trigger(1))
    trigger_validator.validate(trigger(2, expires_in_s=-5))


def test_each_trigger_reaches_the_webhook_exactly_once(mosquitto, webhook, consumers, trigger_validator):
    consumer = Consumer(mosquitto.port, webhook.url)
    consumers.append(consumer)
    pub = Publisher(mosquitto.port)
    try:
        t1, t2, t3, t4, last = trigger(1), trigger(2), trigger(3, expires_in_s=-1), trigger(4), trigger(99)
        for t in (t1, t2, t3, t4, last):
            trigger_validator.validate(t)
        webhook.fail_first[t2["id"]] = 2  # the webhook is briefly down for t2: retried

        pub.publish(t1)
        pub.publish(t1)  # a redelivery: same id
        pub.publish(t2)
        pub.publish(t3)  # data.expires_at already passed
        pub.publish(t4, expiry_s=None)  # no MQTT expiry: data.expires_at alone still counts
        pub.publish(t1)  # late duplicate
        pub.publish(last)
        webhook.wait_accepted(last["id"])
        consumer.expect(f"posted {last['id']}")
    finally:
        pub.close()

    # One consumer handles messages in order: once `last` is accepted, everything before it
    # has been decided.
    assert webhook.accepted == [t1["id"], t2["id"], t4["id"], last["id"]]
    assert sum(1 for p in webhook.posts if p["event"]["id"] == t2["id"]) == 3  # 2 refusals + 1
    assert all(p["event"]["id"] != t3["id"] for p in webhook.posts)
    assert all(p["content_type"] == "application/cloudevents+json" for p in webhook.posts)
    assert all(p["idempotency_key"] == p["event"]["id"] for p in webhook.posts)
    assert webhook.posts[0]["event"] == t1  # the CloudEvent is forwarded unchanged
    outcomes = [line.split()[0] for line in consumer.seen if not line.startswith("subscribed")]
    assert outcomes.count("duplicate") == 2
    assert outcomes.count("expired") == 1


def test_triggers_queued_while_away_are_delivered_unless_expired(mosquitto, webhook, consumers):
    first = Consumer(mosquitto.port, webhook.url, client_id="consumer-restarts")
    first.stop()  # clean exit; the persistent session stays on the broker

    pub = Publisher(mosquitto.port)
    try:
        short, kept = trigger(10), trigger(11)
        pub.publish(short, expiry_s=1)  # the broker drops it after 1 s
        pub.publish(kept, expiry_s=300)
        time.sleep(2.2)  # let `short` expire in the broker's queue (an expiry, not a timing check)
    finally:
        pub.close()

    back = Consumer(mosquitto.port, webhook.url, client_id="consumer-restarts")
    consumers.append(back)
    webhook.wait_accepted(kept["id"])
    assert webhook.accepted == [kept["id"]]


def test_shared_subscription_splits_triggers_between_consumers(mosquitto, webhook, consumers):
    a = Consumer(mosquitto.port, webhook.url, client_id="consumer-a")
    b = Consumer(mosquitto.port, webhook.url, client_id="consumer-b")
    consumers.extend([a, b])
    pub = Publisher(mosquitto.port)
    ids = []
    try:
        for n in range(20, 40):
            t = trigger(n)
            ids.append(t["id"])
            pub.publish(t)
        for i in ids:
            webhook.wait_accepted(i)
    finally:
        pub.close()
    a.stop()
    b.stop()
    assert sorted(webhook.accepted) == sorted(ids)  # each exactly once across the group
    posted_by = [sum(1 for line in c.seen if line.startswith("posted ")) for c in (a, b)]
    assert sum(posted_by) == len(ids)
    assert all(n > 0 for n in posted_by), f"one consumer got everything: {posted_by}"


class FakeClock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_expiry_property_and_invalid_payloads_without_a_broker():
    c = trigger_consumer.TriggerConsumer("http://127.0.0.1:9/never", clock=FakeClock(time.time()))
    assert c.handle(b"not json", None).action == "invalid"
    assert c.handle(json.dumps({"type": "footfall.zone.enter"}).encode(), None).action == "invalid"
    # The broker says 0 s are left: expired without any HTTP request.
    assert c.handle(json.dumps(trigger(5)).encode(), 0).action == "expired"
    # An id decided once is a duplicate afterwards.
    assert c.handle(json.dumps(trigger(5)).encode(), 300).action == "duplicate"


def test_seen_ids_forget_after_ttl():
    clock = FakeClock(100.0)
    seen = trigger_consumer.SeenIds(ttl_s=10, clock=clock)
    seen.add(("s", "a"))
    clock.t = 105
    seen.add(("s", "b"))
    assert ("s", "a") in seen and ("s", "b") in seen
    clock.t = 111
    assert ("s", "a") not in seen and ("s", "b") in seen
