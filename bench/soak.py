"""Soak of the embedded platform (issue 11 §7): `make run` with 16 concurrent clients for 10
minutes; no process may exit and every request must answer.

    PYTHONPATH=$PWD .venv/bin/python -m bench.soak                  # 16 clients, 600 s
    PYTHONPATH=$PWD .venv/bin/python -m bench.soak --clients 4 --seconds 60

Starts scripts/run.py (anvil, web, worker and beat on the embedded SQLite broker) on free ports
with a private instance directory, then each client loops over what a visitor does: the town
page, the shop's listings, an NFT's metadata and image, /healthz, and now and then a sign-up
(which grants welcome points: an outbox row and a task message through the broker). At the end
it prints latencies, errors, how many processes exited (run.py's "exited (code" lines) and how
many welcome grants the worker confirmed, then stops the platform with Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
READS = (
    "/towns/sarabetsu",
    "/api/shop/towns/sarabetsu/listings",
    "/meta/sarabetsu/ambassador/image.svg",
    "/meta/sarabetsu/resident/image.svg",
    "/healthz",
)
SIGNUP_EVERY = 25  # requests between two sign-ups of one client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client(threading.Thread):
    def __init__(self, base: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.stop = base, stop
        self._new_session()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.signups = 0

    def _new_session(self) -> None:
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def _call(self, path: str, body: dict[str, Any] | None = None, token: str = "") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "X-CSRFToken": token} if body else {}
        req = urllib.request.Request(self.base + path, data, headers)  # noqa: S310
        started = time.monotonic()
        try:
            with self.opener.open(req, timeout=30) as resp:
                payload = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            payload, status = exc.read(), exc.code
        except OSError as exc:
            self.errors.append(f"{path}: {type(exc).__name__}")
            return None
        finally:
            self.latencies.append(time.monotonic() - started)
        if status >= 500 and not (path == "/healthz" and status == 503):
            self.errors.append(f"{path}: HTTP {status}")
        return payload

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            if n % SIGNUP_EVERY == 0:
                token = json.loads(self._call("/api/csrf") or b"{}").get("csrf_token", "")
                email = f"soak-{uuid.uuid4().hex[:12]}@example.com"
                body = {"email": email, "password": "correct horse battery"}
                if self._call("/api/accounts/signup", body, token) is not None:
                    self.signups += 1
                self._new_session()  # the next sign-up starts signed out, like a new visitor
            else:
                self._call(READS[n % len(READS)])


def _exits(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " exited (code " in line]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=600)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="furusato-soak-"))
    port, anvil_port = _free_port(), _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RPC_URL")
    }
    env.update(
        PORT=str(port),
        ANVIL_PORT=str(anvil_port),
        INSTANCE_PATH=str(work / "instance"),
        DEPLOYMENTS_DIR=str(work / "deployments"),
        PYTHONPATH=str(ROOT),
    )
    log = work / "run.log"
    with open(log, "wb") as out:
        run = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while "furusato is running" not in log.read_text():
            if run.poll() is not None or time.monotonic() > deadline:
                print(log.read_text()[-3000:])
                return 1
            time.sleep(0.5)
        print(f"platform up ({work}); {args.clients} clients for {args.seconds:.0f} s", flush=True)
        stop = threading.Event()
        clients = [Client(f"http://127.0.0.1:{port}", stop) for _ in range(args.clients)]
        started = time.monotonic()
        for c in clients:
            c.start()
        while time.monotonic() - started < args.seconds:
            time.sleep(min(30.0, args.seconds))
            done = sum(len(c.latencies) for c in clients)
            elapsed = time.monotonic() - started
            print(
                f"  {elapsed:5.0f} s  {done} requests  exits so far: {len(_exits(log))}", flush=True
            )
        stop.set()
        for c in clients:
            c.join(60)
        elapsed = time.monotonic() - started
        lat = sorted(x for c in clients for x in c.latencies)
        errors = [e for c in clients for e in c.errors]
        signups = sum(c.signups for c in clients)
        time.sleep(15)  # let the worker finish the last grants
        con = sqlite3.connect(work / "instance" / "furusato.db")
        by_status = dict(con.execute("SELECT state, count(*) FROM outbox_txs GROUP BY state"))
        con.close()
        broker_rows = sqlite3.connect(work / "instance" / "broker.db").execute(
            "SELECT visible, count(*) FROM kombu_message GROUP BY visible"
        )
        result = {
            "clients": args.clients,
            "seconds": round(elapsed),
            "requests": len(lat),
            "requests_per_s": round(len(lat) / elapsed, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 1),
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1),
            "errors": len(errors),
            "error_kinds": sorted(set(errors))[:10],
            "signups": signups,
            "outbox_by_state": by_status,
            "broker_rows_by_visible": dict(broker_rows),
            "process_exits": _exits(log),
            "platform_alive": run.poll() is None,
        }
        print(json.dumps(result, indent=2))
        return 0 if not result["process_exits"] and result["platform_alive"] else 1
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            run.wait(60)


if __name__ == "__main__":
    sys.exit(main())
