#!/usr/bin/env python3
"""Consume Footfall campaign triggers and hand each one to a webhook, once.

A starting point for a marketing platform's integration (see docs/mqtt.md):

* MQTT 5 shared subscription ``$share/<group>/<prefix>/+/campaigns/#``: run several copies with
  the same ``--group`` and the broker gives each trigger to one of them.
* Persistent session (clean start off, session expiry) and manual QoS 1 acknowledgements: a
  trigger is acknowledged only after the webhook accepted it (or it expired), so a consumer that
  crashes mid-way gets it again.
* Honours expiry: the MQTT 5 message expiry the broker forwards and the trigger's
  ``data.expires_at``; an expired trigger is never posted.
* De-duplicates by CloudEvents (source, id): the gateway delivers at least once.
* POSTs the CloudEvent unchanged (CloudEvents HTTP binding, structured mode) and retries with
  backoff until the webhook answers 2xx or the trigger expires.

Run:  python trigger_consumer.py --host 127.0.0.1 --port 1883 --webhook http://127.0.0.1:8080/hook

Needs only paho-mqtt (>= 2) and the standard library.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import logging
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TRIGGER_TYPE = "footfall.campaign.trigger"
log = logging.getLogger("trigger_consumer")


def parse_time(s: str) -> float:
    """RFC 3339 (as Footfall writes it: UTC, 'Z', milliseconds) -> Unix seconds."""
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class SeenIds:
    """Ids handled recently, forgotten after ``ttl_s`` (longer than any redelivery delay)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.clock = clock
        self._ids: "collections.OrderedDict[tuple[str, str], float]" = collections.OrderedDict()

    def __contains__(self, key: tuple[str, str]) -> bool:
        self._expire()
        return key in self._ids

    def add(self, key: tuple[str, str]) -> None:
        self._expire()
        self._ids[key] = self.clock() + self.ttl_s
        self._ids.move_to_end(key)

    def _expire(self) -> None:
        now = self.clock()
        while self._ids:
            key, until = next(iter(self._ids.items()))
            if until > now:
                break
            self._ids.popitem(last=False)


@dataclass
class Outcome:
    """What happened to one message (for logs and tests)."""

    action: str  # "posted", "duplicate", "expired", "invalid", "refused", "interrupted"
    event_id: Optional[str] = None


class TriggerConsumer:
    """The decisions, separate from the MQTT plumbing so they can be tested on their own."""

    def __init__(self, webhook: str, dedup_ttl_s: float = 3600.0, http_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.time):
        self.webhook = webhook
        self.seen = SeenIds(dedup_ttl_s)
        self.http_timeout_s = http_timeout_s
        self.clock = clock
        self.stopping = threading.Event()

    def handle(self, payload: bytes, expiry_interval_s: Optional[int]) -> Outcome:
        received = self.clock()
        try:
            event = json.loads(payload)
            if event.get("type") != TRIGGER_TYPE:
                return Outcome("invalid")
            key = (str(event["source"]), str(event["id"]))
            data = event["data"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return Outcome("invalid")
        if key in self.seen:
            return Outcome("duplicate", key[1])

        # The deadline: the earliest of the broker's remaining expiry and data.expires_at.
        deadline = float("inf")
        if expiry_interval_s is not None:
            deadline = received + expiry_interval_s
        if "expires_at" in data:
            try:
                deadline = min(deadline, parse_time(data["expires_at"]))
            except (TypeError, ValueError):
                return Outcome("invalid", key[1])
        if self.clock() >= deadline:
            self.seen.add(key)
            return Outcome("expired", key[1])

        result = self._post(payload, key[1], deadline)
        if result != "interrupted":
            self.seen.add(key)
        return Outcome(result, key[1])

    def _post(self, body: bytes, event_id: str, deadline: float) -> str:
        """POSTs until 2xx ("posted"), a permanent 4xx ("refused"), the deadline ("expired") or
        shutdown ("interrupted")."""
        backoff = 0.2
        while not self.stopping.is_set():
            req = urllib.request.Request(
                self.webhook, data=body, method="POST",
                headers={"Content-Type": "application/cloudevents+json", "Idempotency-Key": event_id})
            try:
                with urllib.request.urlopen(req, timeout=self.http_timeout_s) as resp:
                    if 200 <= resp.status < 300:
                        return "posted"
                    log.warning("webhook answered %s for %s, retrying", resp.status, event_id)
            except urllib.error.HTTPError as e:
                if 400 <= e.code < 500 and e.code not in (408, 429):
                    log.error("webhook refused %s with %s: not retried", event_id, e.code)
                    return "refused"
                log.warning("webhook answered %s for %s, retrying", e.code, event_id)
            except (urllib.error.URLError, OSError) as e:
                log.warning("webhook unreachable for %s (%s), retrying", event_id, e)
            left = deadline - self.clock()
            if left <= 0:
                log.warning("trigger %s expired before the webhook accepted it", event_id)
                return "expired"
            if self.stopping.wait(min(backoff, left)):
                break
            backoff = min(backoff * 2, 10.0)
        return "interrupted"


def run(args: argparse.Namespace) -> int:
    consumer = TriggerConsumer(args.webhook, dedup_ttl_s=args.dedup_ttl_s)
    topic = f"$share/{args.group}/{args.topic_prefix}/+/campaigns/#"

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         protocol=mqtt.MQTTv5)
    if args.username:
        client.username_pw_set(args.username, args.password)
    if args.ca_file:
        client.tls_set(ca_certs=args.ca_file)
    # Acknowledge only after the trigger is handled: at least once, end to end.
    client.manual_ack_set(True)
    done = threading.Event()

    def on_connect(c, _userdata, _flags, reason_code, _props):
        if reason_code.is_failure:
            log.error("connect refused: %s", reason_code)
            return
        c.subscribe(topic, options=mqtt.SubscribeOptions(qos=1))

    def on_subscribe(_c, _userdata, _mid, reason_codes, _props):
        if any(rc.is_failure for rc in reason_codes):
            log.error("subscription refused: %s", reason_codes)
            done.set()
            return
        print(f"subscribed {topic}", flush=True)

    def on_message(c, _userdata, msg):
        expiry = getattr(msg.properties, "MessageExpiryInterval", None) if msg.properties else None
        outcome = consumer.handle(msg.payload, expiry)
        print(f"{outcome.action} {outcome.event_id or '-'} {msg.topic}", flush=True)
        # "interrupted" (shutting down mid-retry) stays unacknowledged: the broker keeps it in
        # this client's session and redelivers it when the consumer comes back.
        if outcome.action != "interrupted":
            c.ack(msg.mid, msg.qos)

    def on_disconnect(_c, _userdata, _flags, reason_code, _props):
        if done.is_set():
            return
        log.warning("disconnected (%s); reconnecting", reason_code)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    client.reconnect_delay_set(min_delay=1, max_delay=30)

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = args.session_expiry_s
    client.connect(args.host, args.port, keepalive=30, clean_start=False, properties=props)

    def stop(_signum, _frame):
        consumer.stopping.set()
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client.loop_start()
    try:
        done.wait()
    finally:
        client.disconnect()
        client.loop_stop()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    p.add_argument("--ca-file", help="CA certificate: connect with TLS")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--group", default="marketing", help="shared subscription group (default marketing)")
    p.add_argument("--topic-prefix", default="footfall/v1", help="the gateways' topic prefix")
    p.add_argument("--client-id", default="trigger-consumer-1",
                   help="MQTT client id: unique per consumer, stable across restarts (persistent session)")
    p.add_argument("--session-expiry-s", type=int, default=3600,
                   help="how long the broker keeps triggers for this consumer while it is away")
    p.add_argument("--dedup-ttl-s", type=float, default=3600.0, help="how long handled ids are remembered")
    p.add_argument("--webhook", required=True, help="URL to POST each trigger to")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
