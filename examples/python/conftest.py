"""Fixtures for the example consumer's tests: a real Mosquitto broker and a local webhook, both on
127.0.0.1 ports chosen by the OS, both stopped at the end of each test."""

from __future__ import annotations

import http.server
import json
import pathlib
import shutil
import socket
import subprocess
import threading
import time
from typing import Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


class Mosquitto:
    def __init__(self, workdir: pathlib.Path):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not pathlib.Path(exe).exists():
            raise RuntimeError("mosquitto is not installed: run `bash scripts/setup.sh test`")
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 10000\n"
            "log_dest stderr\n"
        )
        self.log = open(workdir / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def mosquitto(tmp_path: pathlib.Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


class Webhook:
    """Records every POST. ``fail_first[id] = n`` answers 503 to the first n POSTs of that id."""

    def __init__(self) -> None:
        self.posts: list[dict] = []  # every request, including refused ones
        self.accepted: list[str] = []  # ids answered 2xx, in order
        self.fail_first: dict[str, int] = {}
        self.cond = threading.Condition()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                event = json.loads(body)
                with hook.cond:
                    hook.posts.append({"event": event, "content_type": self.headers.get("Content-Type"),
                                       "idempotency_key": self.headers.get("Idempotency-Key")})
                    left = hook.fail_first.get(event["id"], 0)
                    if left > 0:
                        hook.fail_first[event["id"]] = left - 1
                        status = 503
                    else:
                        hook.accepted.append(event["id"])
                        status = 204
                    hook.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_accepted(self, event_id: str, timeout_s: float = 20.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: event_id in self.accepted, timeout=timeout_s):
                raise TimeoutError(f"webhook never accepted {event_id}; accepted {self.accepted}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.stop()


@pytest.fixture(scope="session")
def trigger_validator():
    """Validates against docs/schemas/campaign-trigger.json (with its $refs served from disk)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    docs = [json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
    schema = json.loads((SCHEMAS / "campaign-trigger.json").read_text())
    return Draft202012Validator(schema, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)
