"""The MQTT contract, proved on real traffic: the gateway binary replays a simulated boutique day
through its durable outbox to a real Mosquitto; MQTT 5 subscribers (paho-mqtt) record every
message, and each one is checked against docs/schemas, docs/mqtt.md's topic layout and MQTT 5
properties. Also: retained state for late subscribers, the last will after a kill -9, and no raw
identifier from the air in any published byte."""

from __future__ import annotations

import json
import pathlib
import re
import socket
import subprocess
import time
import tomllib

import pytest

from footfall_mqtt import REPO, Observer, Received, footfall_bin

STORE_FILE = REPO / "docs" / "examples" / "boutique.toml"
PREFIX = "footfall/v1"
SENTINEL = f"{PREFIX}/_contract-test/sentinel"
MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b", re.IGNORECASE)
HEX = re.compile(r"^[0-9a-fA-F]{8,}$")


def write_config(path: pathlib.Path, port: int, gateway_id: str, state_dir: pathlib.Path) -> dict:
    text = STORE_FILE.read_text() + (
        f'\n[gateway]\ngateway_id = "{gateway_id}"\nstate_dir = "{state_dir}"\n'
        f'\n[broker]\nurl = "mqtt://127.0.0.1:{port}"\n'
    )
    path.write_text(text)
    return tomllib.loads(text)


class ReplayRun:
    """One replay of a simulated recording, published to the broker and observed."""

    def __init__(self, broker, workdir: pathlib.Path):
        self.workdir = workdir
        self.config_path = workdir / "store.toml"
        self.config = write_config(self.config_path, broker.port, "gw-contract", workdir / "state")
        self.store = self.config["store"]["store_id"]
        self.recording = workdir / "recording.jsonl"
        exe = str(footfall_bin())
        subprocess.run([exe, "simulate", "--store", str(STORE_FILE), "--minutes", "4", "--seed", "11",
                        "--out", str(self.recording)], check=True, timeout=120, capture_output=True)

        live = Observer(broker.port, "contract-live").subscribe(f"{PREFIX}/#")
        try:
            proc = subprocess.run(
                [exe, "replay", str(self.recording), "--config", str(self.config_path), "--mqtt",
                 "--quiet", "--speed", "1000000", "--drain-s", "180"],
                timeout=300, capture_output=True, text=True)
            assert proc.returncode == 0, f"replay failed:\n{proc.stderr}"
            self.replay_stderr = proc.stderr
            # A clean shutdown ends with the gateway's own offline status: everything before it
            # on this connection has been delivered.
            live.wait_for(lambda m: m.topic.endswith("/gateway/gw-contract/status")
                          and m.json()["data"]["online"] is False, what="offline status")
        finally:
            live.close()
        self.live: list[Received] = list(live.messages)

        # A subscriber arriving afterwards sees only retained state; the sentinel (published
        # after its SUBACK, not retained) marks the end of the retained burst.
        late = Observer(broker.port, "contract-late").subscribe(f"{PREFIX}/#")
        try:
            late.publish(SENTINEL, b"end")
            late.wait_for(lambda m: m.topic == SENTINEL, what="sentinel")
        finally:
            late.close()
        self.retained = [m for m in late.messages if m.topic != SENTINEL]


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> ReplayRun:
    return ReplayRun(broker, tmp_path_factory.mktemp("replay"))


def by_type(messages: list[Received]) -> dict[str, list[Received]]:
    out: dict[str, list[Received]] = {}
    for m in messages:
        out.setdefault(m.json()["type"], []).append(m)
    return out


def test_the_run_published_every_kind_of_event(run):
    types = by_type(run.live)
    for t in ("footfall.zone.enter", "footfall.zone.dwell", "footfall.zone.exit", "footfall.occupancy",
              "footfall.campaign.trigger", "footfall.node.status", "footfall.gateway.status"):
        assert types.get(t), f"no {t} in {sorted(types)}"


def test_every_published_message_validates_against_its_schema(run, validators):
    assert len(run.live) > 50
    for m in run.live + run.retained:
        event = m.json()
        assert event.get("type") in validators, f"{m.topic}: unknown type {event.get('type')}"
        errors = [f"{e.json_path}: {e.message}" for e in validators[event["type"]].iter_errors(event)]
        assert not errors, f"{m.topic}:\n" + "\n".join(errors) + f"\n{json.dumps(event, indent=1)}"
        assert validators["envelope"].is_valid(event)


def test_topics_follow_the_contract(run):
    root = f"{PREFIX}/{run.store}"
    for m in run.live:
        e = m.json()
        d = e["data"]
        t = e["type"]
        expected = {
            "footfall.zone.enter": f"{root}/zones/{d.get('zone')}/enter",
            "footfall.zone.dwell": f"{root}/zones/{d.get('zone')}/dwell",
            "footfall.zone.exit": f"{root}/zones/{d.get('zone')}/exit",
            "footfall.engagement": f"{root}/zones/{d.get('zone')}/engagement" if d.get("zone") else f"{root}/engagement",
            "footfall.occupancy": f"{root}/occupancy/{d.get('zone')}",
            "footfall.campaign.trigger": f"{root}/campaigns/{d.get('campaign')}",
            "footfall.node.status": f"{root}/nodes/{d.get('node')}/status",
            "footfall.gateway.status": f"{root}/gateway/{d.get('gateway')}/status",
        }[t]
        assert m.topic == expected, f"{t} on {m.topic}"
        assert e["source"] == f"/footfall/{run.store}/gateway/gw-contract"
        assert d["store"] == run.store
        assert m.qos == 1, f"{m.topic} delivered at QoS {m.qos}"


def test_mqtt5_content_type_and_trigger_expiry(run):
    expiry = {c["id"]: c.get("expiry_s", 300) for c in run.config["engine"].get("campaigns", [])}
    for m in run.live:
        assert m.content_type == "application/cloudevents+json", f"{m.topic}: content type {m.content_type!r}"
        e = m.json()
        if e["type"] == "footfall.campaign.trigger":
            configured = expiry[e["data"]["campaign"]]
            assert m.expiry is not None, f"{m.topic}: trigger without message expiry"
            assert 0 < m.expiry <= configured, f"{m.topic}: expiry {m.expiry} vs configured {configured}"
            assert "expires_at" in e["data"]
        else:
            assert m.expiry is None, f"{m.topic}: unexpected expiry {m.expiry}"


def test_ids_are_stable_identities(run):
    """Redelivery is allowed, but one id always means one event."""
    seen: dict[str, bytes] = {}
    for m in run.live:
        i = m.json()["id"]
        assert seen.setdefault(i, m.payload) == m.payload, f"id {i} names two different events"


def test_late_subscribers_get_retained_state(run):
    retained = by_type(run.retained)
    assert all(m.retain for m in run.retained), "late subscriber got a non-retained message"
    assert set(retained) <= {"footfall.occupancy", "footfall.node.status", "footfall.gateway.status"}, sorted(retained)

    # The latest occupancy of every zone that reported, the latest status of every node.
    last_live: dict[str, bytes] = {}
    for m in run.live:
        if m.json()["type"] in ("footfall.occupancy", "footfall.node.status", "footfall.gateway.status"):
            last_live[m.topic] = m.payload
    assert {m.topic: m.payload for m in run.retained} == last_live

    status = retained["footfall.gateway.status"]
    assert len(status) == 1 and status[0].json()["data"]["online"] is False


def test_no_raw_identifier_in_any_published_byte(run):
    """Addresses, beacon ids and keys from the air and the config never leave the gateway."""
    needles: set[str] = set()
    for line in run.recording.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") != "device":
            continue
        stack = [rec]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
            elif isinstance(v, str) and (MAC.fullmatch(v) or HEX.match(v)):
                needles.add(v.lower())
                needles.add(v.lower().replace(":", ""))
    privacy = run.config["engine"].get("privacy", {})
    for key in ("secret",):
        if privacy.get(key):
            needles.add(privacy[key].lower())
    for key in ("opted_in_beacons", "opted_in_irks", "tag_keys"):
        needles.update(k.lower() for k in privacy.get(key, []))
    assert any(MAC.fullmatch(n) for n in needles), "the recording has addresses to look for"

    published = "\n".join(m.topic + " " + m.payload.decode() for m in run.live + run.retained).lower()
    leaks = sorted(n for n in needles if n in published)
    assert not leaks, f"raw identifiers published: {leaks[:5]}"
    assert not MAC.search(published), "something shaped like a Bluetooth address was published"


def test_last_will_marks_a_killed_gateway_offline(broker, tmp_path):
    cfg = tmp_path / "store.toml"
    write_config(cfg, broker.port, "gw-will", tmp_path / "state")
    topic = f"{PREFIX}/{tomllib.loads(cfg.read_text())['store']['store_id']}/gateway/gw-will/status"
    watch = Observer(broker.port, "will-watch").subscribe(topic)
    gateway = subprocess.Popen([str(footfall_bin()), "run", "--config", str(cfg)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        online = watch.wait_for(lambda m: m.json()["data"]["online"] is True, what="online status")
        gateway.kill()  # SIGKILL: no clean disconnect, so the broker publishes the will
        gateway.wait(timeout=10)
        will = watch.wait_for(lambda m: m.json()["data"]["online"] is False, what="last will")
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        watch.close()
    for m in (online, will):
        assert m.content_type == "application/cloudevents+json"
        assert m.json()["type"] == "footfall.gateway.status"
    assert will.json()["id"] != online.json()["id"]

    late = Observer(broker.port, "will-late").subscribe(topic)
    try:
        kept = late.wait_for(lambda m: True, what="retained will")
    finally:
        late.close()
    assert kept.retain and kept.json()["data"]["online"] is False


def test_embedded_broker_demo_publishes_valid_events(validators, tmp_path):
    """`footfall demo`: the gateway's own embedded broker (rumqttd), a simulated large store,
    an MQTT 5 subscriber on the broker's v5 port. Every message follows the schemas and topics.
    (The embedded broker gets no MQTT 5 properties; see docs/mqtt.md.)"""
    import queue
    import threading

    from footfall_mqtt import free_port

    demo = subprocess.Popen(
        [str(footfall_bin()), "demo", "--duration-s", "15", "--speed", "20", "--seed", "5",
         "--no-color", "--port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True).start()
    observer = None
    try:
        v5_port = None
        deadline = time.monotonic() + 30
        while v5_port is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            m = re.search(r"MQTT 5 clients: port (\d+)", line)
            if m:
                v5_port = int(m.group(1))
        while True:  # the banner may come before the broker listens
            try:
                socket.create_connection(("127.0.0.1", v5_port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nothing listens on {v5_port}"
                time.sleep(0.05)
        observer = Observer(v5_port, "demo-observer").subscribe(f"{PREFIX}/#")
        assert demo.wait(timeout=120) == 0, "demo failed"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if observer is not None:
            observer.close()
    messages = observer.messages
    types = {m.json()["type"] for m in messages}
    assert {"footfall.zone.enter", "footfall.zone.exit"} <= types, sorted(types)
    ids: dict[str, bytes] = {}
    for m in messages:
        event = m.json()
        errors = [f"{e.json_path}: {e.message}" for e in validators[event["type"]].iter_errors(event)]
        assert not errors, f"{m.topic}: {errors}"
        assert m.topic.startswith(f"{PREFIX}/{event['data']['store']}/")
        assert ids.setdefault(event["id"], m.payload) == m.payload
        assert not MAC.search(m.payload.decode())
