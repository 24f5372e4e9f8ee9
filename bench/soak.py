"""Soak of the embedded platform (issue 11 §7): `make run` with 16 concurrent clients for 10
minutes; no process may exit and every request must answer.

    PYTHONPATH=$PWD .venv/bin/python -m bench.soak                  # 16 clients, 600 s
    PYTHONPATH=$PWD .venv/bin/python -m bench.soak --clients 4 --seconds 60

Starts scripts/run.py (anvil, web, worker and beat on the embedded SQLite broker) on free ports
with a private instance directory, SMTP_HOST unset (each mail is a file under instance/mail/) and
PROXY_HOPS=1. Each client is a stream of visitors: it loops over what a visitor does (the town
page, the shop's listings, an NFT's metadata and image, /healthz) and now and then a new visitor
signs up from the town's page (/signup?town=sarabetsu), opens the verification link from the mail
file and looks at /me. Opening the link grants the town's welcome points: a points_grants
row, an outbox row, a task through the broker, the worker's transaction on anvil, the indexer's
confirmation. Every visitor comes from its own address (X-Forwarded-For, as behind one proxy), as
real sign-ups do, so the per-address sign-up limit (5/minute, 30/hour) is not what is measured.
At the end it waits for the outbox to drain (up to 180 s), then prints latencies, errors, how
many processes exited (run.py's "exited (code" lines), sign-ups, verifications, welcome grants
by status and outbox rows by state, then stops the platform with Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import itertools
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
READS = (
    "/towns/sarabetsu",
    "/api/shop/towns/sarabetsu/listings",
    "/meta/sarabetsu/ambassador/image.svg",
    "/meta/sarabetsu/resident/image.svg",
    "/healthz",
)
SIGNUP_EVERY = 25  # requests between two sign-ups of one client
TOWN = "sarabetsu"
_ADDRESSES = itertools.count(1)  # one client address (X-Forwarded-For) per visitor
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LINK = re.compile(r"/verify-email/([A-Za-z0-9_-]+)")
_TO = re.compile(r"^To: *(\S+)", re.M)


class Mailbox:
    """The mails the web process wrote under instance/mail/, by recipient (read once each)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: set[str] = set()
        self.links: dict[str, str] = {}
        self.lock = threading.Lock()

    def link_for(self, email: str) -> str | None:
        with self.lock:
            if email not in self.links and self.folder.is_dir():
                for name in os.listdir(self.folder):
                    if name in self.seen:
                        continue
                    self.seen.add(name)
                    text = (self.folder / name).read_text(errors="replace")
                    to, link = _TO.search(text), _LINK.search(text)
                    if to and link:
                        self.links[to.group(1).lower()] = link.group(1)
            return self.links.pop(email.lower(), None)


class Client(threading.Thread):
    def __init__(self, base: str, stop: threading.Event, mailbox: Mailbox) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.mailbox = base, stop, mailbox
        self._new_session()
        self.latencies: list[float] = []
        self.errors: list[str] = []  # 5xx (but a 503 from /healthz) and connection failures
        self.refused: list[str] = []  # 4xx: a visitor's action refused (e.g. 429)
        self.signups = 0
        self.verified = 0

    def _new_session(self) -> None:
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        n = next(_ADDRESSES)
        self.address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"

    def _call(
        self, path: str, body: dict[str, Any] | None = None, token: str = "", form: bool = False
    ) -> Any:
        headers = {"X-Forwarded-For": self.address}
        data = None
        if body is not None and form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers.update({"Content-Type": "application/json", "X-CSRFToken": token})
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
        elif status >= 400:
            self.refused.append(f"{path.split('?')[0].split('/')[1]}: HTTP {status}")
        return payload

    def _sign_up_and_verify(self) -> None:
        """A new visitor signs up from the town's page, opens the mailed link, looks at /me."""
        self._new_session()
        page = self._call(f"/signup?town={TOWN}") or b""
        token = _CSRF.search(page.decode(errors="replace"))
        if token is None:
            self.errors.append("signup: no csrf_token in the form")
            return
        email = f"soak-{uuid.uuid4().hex[:12]}@example.com"
        body = {
            "csrf_token": token.group(1),
            "email": email,
            "display_name": "",
            "password": "correct horse battery",
        }
        if self._call(f"/signup?town={TOWN}", body, form=True) is None:
            return
        self.signups += 1
        link = None
        for _ in range(20):  # the mail is written in the sign-up request; allow for a slow disk
            link = self.mailbox.link_for(email)
            if link:
                break
            time.sleep(0.25)
        if link is None:
            self.errors.append("verify: no mail with a link")
            return
        if self._call(f"/verify-email/{link}") is not None:
            self.verified += 1
        self._call("/me")

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            if n % SIGNUP_EVERY == 0:
                self._sign_up_and_verify()
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
    port, anvil_port = free_port(), free_port()
    unset = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RPC_URL", "SMTP_HOST")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        PORT=str(port),
        ANVIL_PORT=str(anvil_port),
        INSTANCE_PATH=str(work / "instance"),
        DEPLOYMENTS_DIR=str(work / "deployments"),
        PYTHONPATH=str(ROOT),
        PROXY_HOPS="1",
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
        mailbox = Mailbox(work / "instance" / "mail")
        base = f"http://127.0.0.1:{port}"
        clients = [Client(base, stop, mailbox) for _ in range(args.clients)]
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
        refused = [e for c in clients for e in c.refused]
        signups = sum(c.signups for c in clients)
        verified = sum(c.verified for c in clients)
        con = sqlite3.connect(work / "instance" / "furusato.db")
        drain_deadline = time.monotonic() + 180  # let the worker and indexer finish the grants
        while time.monotonic() < drain_deadline:
            pending = con.execute(
                "SELECT count(*) FROM points_grants WHERE status = 'pending'"
            ).fetchone()[0]
            if not pending:
                break
            time.sleep(5)
        drained_after = round(time.monotonic() - started - elapsed)
        by_status = dict(con.execute("SELECT state, count(*) FROM outbox_txs GROUP BY state"))
        grants = dict(con.execute("SELECT status, count(*) FROM points_grants GROUP BY 1"))
        soak_confirmed = con.execute(  # the visitors' grants, without the demo resident's
            "SELECT count(*) FROM points_grants g JOIN users u ON u.id = g.user_id"
            " WHERE g.status = 'confirmed' AND u.email LIKE 'soak-%'"
        ).fetchone()[0]
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
            "refused_4xx": len(refused),
            "refused_kinds": sorted(set(refused))[:10],
            "signups": signups,
            "verified": verified,
            "welcome_grants_by_status": grants,
            "visitors_grants_confirmed": soak_confirmed,
            "drain_wait_s": drained_after,
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
