"""Confirmation in seconds (issue 16 §2): click -> "pending" and click -> paid / owned, with the
worker's block watcher (BLOCK_WATCH_INTERVAL=0.25) and without it (beat ticks only, the
baseline), in the same run on the same platform.

    PYTHONPATH=$PWD .venv/bin/python -m bench.confirm                  # make run's stack
    PYTHONPATH=$PWD .venv/bin/python -m bench.confirm --db postgres --broker redis
    PYTHONPATH=$PWD .venv/bin/python -m bench.confirm --db postgres --broker redis --scale
    make bench-confirm                                      # the first and the third

`--scale` (issue 16 §4) measures the same journeys with the watcher on, on 1 web process (a
gunicorn of 2 workers) + 1 Celery worker against 2 + 2: each visitor's requests alternate
between the web processes (sessions, CSRF tokens and polls cross them), the workers share the
queue; the ratio printed is 2+2 over 1+1 (the 8 tourists' charges/s, the p95s).

The platform is what `make run` starts (bench/confirm_platform.py): anvil with a block a second,
CONFIRMATIONS=2, the demo towns, gunicorn, beat and one real solo worker; only the worker is
restarted to switch modes, and the modes alternate round by round. Journeys, over HTTP as the
pages make them (JSON API, session cookie, CSRF header):

- points purchase: a person buys 更別村's cheapest points listing (POST /api/shop/orders);
  "pending" is that answer (status processing); "owned" is the first poll of the order page's
  endpoint (GET /api/shop/orders/<id>) that says completed, the token then in
  GET /api/shop/my/collection (checked, not timed).
- customer pays: the shop's clerk makes a 10-point charge and keeps its screen open (polling
  GET /api/merchants/<id>/charges/<id>), the customer pays 0.5-1.5 s later (POST /api/pay/<code>);
  "pending" is the payment's answer (paying), "paid" the first poll of the shop's screen that
  says paid.
- 8 tourists: each pays a new charge as soon as the shop's screen showed the last one paid, for
  --seconds; charges/s is paid charges over the time.

The polls keep the pages' pace (webui/static/js/poll.js: every 500 ms after an answer, slower
after 15 s), so "paid" includes what a person waits for the screen, not only for the server.
The breakdown splits a payment at the outbox's "sent" and the charge's paid_at: click -> sent,
sent -> paid (the block, the confirmations, the watcher or beat, the indexer), paid -> shown.
Target: p95 <= (CONFIRMATIONS + 1) x block time + 1 s = 4 s; pending <= 300 ms.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import itertools
import json
import math
import platform as host
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bench.confirm_platform import Platform

WATCH_INTERVAL = 0.25
MODES = {"watcher": WATCH_INTERVAL, "beat": 0.0}
# --scale (issue 16 §4): the same journeys, watcher on, on 1 web process + 1 worker and on 2 + 2;
# mode -> (web processes, workers).
SCALE_MODES = {"1+1": (1, 1), "2+2": (2, 2)}
POLL_FAST, POLL_FAST_FOR, POLL_SLOW = 0.5, 15.0, 5.0  # webui/static/js/poll.js
CHARGE_POINTS = 10
GIVE_UP = 120.0  # seconds: a journey not done by then counts as failed
_ADDRESSES = itertools.count(1)


class Visitor:
    """One browser: a cookie jar, an address of its own (X-Forwarded-For), the CSRF token.
    With several web processes in `webs` (--scale), each request goes to the next one: the
    session, the CSRF token and every poll cross processes, as behind a load balancer."""

    def __init__(self, webs: list[str]) -> None:
        self.webs = webs  # the base URLs it uses; main() changes them with the mode measured
        self.calls = 0
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        n = next(_ADDRESSES)
        self.address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        self.token = ""

    def call(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"X-Forwarded-For": self.address, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.update({"Content-Type": "application/json", "X-CSRFToken": self.token})
        base = self.webs[self.calls % len(self.webs)]
        self.calls += 1
        req = urllib.request.Request(base + path, data, headers)  # noqa: S310
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw or b"null")
            except ValueError:
                return exc.code, raw[:200]

    def sign_in(self, email: str, password: str) -> Visitor:
        self.token = self.call("/api/csrf")[1]["csrf_token"]
        status, body = self.call("/api/auth/login", {"email": email, "password": password})
        if status != 200:
            raise SystemExit(f"sign-in of {email}: HTTP {status} {body}")
        self.token = self.call("/api/csrf")[1]["csrf_token"]  # sign-in rotates the session
        return self


@dataclass
class Sample:
    journey: str
    mode: str
    pending_s: float = math.nan
    done_s: float = math.nan
    ok: bool = False
    answer: str = ""  # the status in the click's answer
    ref: str = ""  # order public id or charge id
    clicked_at: float = 0.0  # wall clock (time.time) of the click
    shown_at: float = 0.0
    note: str = ""


def page_poll(fetch: Any, since: float, stop: threading.Event | None = None) -> float | None:
    """Poll as poll.js does from `since` (monotonic): `fetch()` True when final. Returns the
    monotonic time of the answer that was final, None after GIVE_UP or `stop`."""
    delay = POLL_FAST
    stop = stop or threading.Event()
    while time.monotonic() - since < GIVE_UP:
        if stop.wait(delay):
            return None
        if fetch():
            return time.monotonic()
        fast = time.monotonic() - since < POLL_FAST_FOR
        delay = POLL_FAST if fast else min(POLL_SLOW, delay * 1.5)
    return None


def purchase(buyer: Visitor, listing_id: int, mode: str) -> Sample:
    s = Sample("purchase", mode)
    s.clicked_at, t0 = time.time(), time.monotonic()
    status, body = buyer.call(
        "/api/shop/orders",
        {"listing_id": listing_id, "quantity": 1, "idempotency_key": uuid.uuid4().hex},
    )
    answered = time.monotonic()
    s.pending_s = answered - t0
    if status not in (200, 201):
        s.note = f"order: HTTP {status} {body}"
        return s
    order = body["order"]
    s.answer, s.ref = order["status"], order["id"]
    seen: dict[str, Any] = {}

    def fetch() -> bool:
        code, got = buyer.call(f"/api/shop/orders/{order['id']}")
        if code == 200:
            seen.update(got["order"])
        return code == 200 and got["order"]["status"] not in ("processing", "pending_payment")

    done = page_poll(fetch, answered)
    if done is None or seen.get("status") != "completed":
        s.note = f"order ended {seen.get('status')}: {seen.get('error')}"
        return s
    s.done_s, s.shown_at = done - t0, s.clicked_at + (done - t0)
    code, mine = buyer.call("/api/shop/my/collection")
    tokens = {t["token_id"] for t in mine.get("tokens", [])} if code == 200 else set()
    s.ok = seen.get("first_token_id") in tokens
    if not s.ok:
        s.note = "completed but not in my collection"
    return s


def charge(
    clerk: Visitor, customer: Visitor, merchant_id: int, mode: str, wait: float | None = None
) -> Sample:
    s = Sample("charge", mode)
    status, body = clerk.call(
        f"/api/merchants/{merchant_id}/charges",
        {"amount": CHARGE_POINTS, "idempotency_key": uuid.uuid4().hex},
    )
    if status != 201:
        s.note = f"charge: HTTP {status} {body}"
        return s
    screen_since = time.monotonic()
    c = body["charge"]
    s.ref = str(c["id"])
    shown: dict[str, float] = {}
    state: dict[str, str] = {}

    def fetch() -> bool:
        code, got = clerk.call(f"/api/merchants/{merchant_id}/charges/{c['id']}")
        if code == 200:
            state["status"] = got["charge"]["status"]
        return state.get("status") in ("paid", "expired", "failed", "cancelled")

    closed = threading.Event()

    def screen() -> None:  # the shop's screen, open since the charge was made
        done = page_poll(fetch, screen_since, closed)
        if done is not None:
            shown["at"] = done

    watcher = threading.Thread(target=screen, daemon=True)
    watcher.start()
    time.sleep(random.uniform(0.5, 1.5) if wait is None else wait)  # noqa: S311 - not security
    s.clicked_at, t0 = time.time(), time.monotonic()
    status, body = customer.call(f"/api/pay/{c['code']}", {})
    s.pending_s = time.monotonic() - t0
    if status != 200:
        closed.set()
        s.note = f"pay: HTTP {status} {body}"
        return s
    s.answer = body["charge"]["status"]
    watcher.join(GIVE_UP + 10)
    if state.get("status") != "paid" or "at" not in shown:
        s.note = f"charge ended {state.get('status')}"
        return s
    s.done_s = shown["at"] - t0
    s.shown_at = s.clicked_at + s.done_s
    s.ok = True
    return s


@dataclass
class Load:
    mode: str
    seconds: float = 0.0
    paid: int = 0
    failed: int = 0
    samples: list[Sample] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.paid / self.seconds if self.seconds else 0.0


def tourists(
    clerk_login: tuple[str, str],
    people: list[Visitor],
    webs: list[str],
    merchant_id: int,
    mode: str,
    seconds: float,
) -> Load:
    """Each tourist pays a new charge as soon as the shop's screen showed the last one paid
    (one till, i.e. clerk session, per tourist). Counted: charges whose screen said paid within
    `seconds` of the start, over `seconds`."""
    load = Load(mode, seconds=seconds)
    lock = threading.Lock()
    tills = [Visitor(webs).sign_in(*clerk_login) for _ in people]
    end = time.time() + seconds

    def run(till: Visitor, tourist: Visitor) -> None:
        while time.time() < end:
            sample = charge(till, tourist, merchant_id, mode, wait=0.0)
            with lock:
                load.samples.append(sample)
                if sample.ok and sample.shown_at <= end:
                    load.paid += 1
                elif not sample.ok:
                    load.failed += 1

    pairs = zip(tills, people, strict=True)
    threads = [threading.Thread(target=run, args=pair, daemon=True) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + GIVE_UP + 30)
    return load


# ---------------------------------------------------------------- figures


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1), nearest rank."""
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return math.nan
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def summary(samples: list[Sample]) -> dict[str, Any]:
    ok = [s for s in samples if s.ok]
    return {
        "n": len(samples),
        "ok": len(ok),
        "pending_p50_ms": round(pct([s.pending_s for s in samples], 0.5) * 1000),
        "pending_p95_ms": round(pct([s.pending_s for s in samples], 0.95) * 1000),
        "done_p50_s": round(pct([s.done_s for s in ok], 0.5), 2),
        "done_p95_s": round(pct([s.done_s for s in ok], 0.95), 2),
        "done_max_s": round(max((s.done_s for s in ok), default=math.nan), 2),
        "answers": sorted({s.answer for s in samples}),
        "notes": sorted({s.note for s in samples if s.note})[:5],
    }


BREAKDOWN = {
    # journey: (table, its id column, when it was done, its outbox row)
    "charge": ("merchant_charges", "id", "paid_at", "outbox_tx_id"),
    "purchase": ("payment_orders", "public_id", "updated_at", "outbox_tx_id"),
}


def breakdown(database_url: str, samples: list[Sample], journey: str) -> dict[str, float]:
    """Medians, in seconds, of click -> the outbox row "sent", sent -> done in the database
    (the charge's paid_at, the order's completion: the block, the confirmations, the worker
    and the indexer) and done -> the page showed it."""
    by_ref = {s.ref: s for s in samples if s.ok and s.journey == journey}
    if not by_ref:
        return {}
    table, key, done, tx = BREAKDOWN[journey]
    q = sa.text(
        f"SELECT x.{key}, x.{done}, min(e.at) FROM {table} x JOIN outbox_tx_events e"  # noqa: S608
        f" ON e.tx_id = x.{tx} AND e.to_state = 'sent' WHERE x.{key} IN :refs"
        f" GROUP BY x.{key}, x.{done}"
    ).bindparams(sa.bindparam("refs", expanding=True))
    refs = [int(r) if journey == "charge" else r for r in by_ref]
    parts: dict[str, list[float]] = {"click_to_sent": [], "sent_to_done": [], "done_to_shown": []}
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        for ref, done_at, sent_at in conn.execute(q, {"refs": refs}):
            s = by_ref[str(ref)]
            finished, sent = _epoch(done_at), _epoch(sent_at)
            parts["click_to_sent"].append(sent - s.clicked_at)
            parts["sent_to_done"].append(finished - sent)
            parts["done_to_shown"].append(s.shown_at - finished)
    engine.dispose()
    return {k: round(statistics.median(v), 2) for k, v in parts.items() if v}


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


# ---------------------------------------------------------------- the run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=15, help="per journey, mode and round")
    ap.add_argument("--rounds", type=int, default=2, help="watcher, beat, watcher, beat, ...")
    ap.add_argument("--tourists", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0, help="of the tourists' load")
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--broker", choices=("embedded", "redis"), default="embedded")
    ap.add_argument(
        "--scale",
        action="store_true",
        help="1 web + 1 worker against 2 + 2, watcher on (with --db postgres --broker redis)",
    )
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    modes: dict[str, tuple[float, int, int]] = (
        {m: (WATCH_INTERVAL, webs, workers) for m, (webs, workers) in SCALE_MODES.items()}
        if args.scale
        else {m: (interval, 1, 1) for m, interval in MODES.items()}
    )
    buys = args.samples * args.rounds * len(modes)
    buyers_needed = math.ceil(buys / 5)  # the listing's wallet cap is 5
    p = Platform(db=args.db, broker=args.broker, webs=max(w for _, w, _ in modes.values()))
    print(f"platform in {p.work} ({args.db}, {args.broker} broker)", flush=True)
    started, load_before = time.time(), _loadavg()
    ok = False
    try:
        p.up()
        p.worker(MODES["watcher"])
        setup = p.setup(args.tourists + buyers_needed, 3000)
        base, login = p.url, (setup["merchant_email"], setup["merchant_password"])
        people = [Visitor([base]).sign_in(e, setup["password"]) for e in setup["people"]]
        crowd, buyers = people[: args.tourists], people[args.tourists :]
        buyer_turns = itertools.cycle(b for b in buyers for _ in range(5))
        clerk = Visitor([base]).sign_in(*login)
        samples: list[Sample] = []
        loads: list[Load] = []
        for r in range(args.rounds):
            for mode, (interval, webs, workers) in modes.items():
                p.worker(interval, count=workers)
                urls = p.urls[:webs]
                for visitor in [*people, clerk]:
                    visitor.webs = urls
                print(
                    f"round {r + 1}, {mode}: {webs} web, {workers} worker,"
                    f" BLOCK_WATCH_INTERVAL={interval}",
                    flush=True,
                )
                time.sleep(3)  # let the restarted worker catch up with what the last one left
                for i in range(args.samples):
                    samples.append(purchase(next(buyer_turns), setup["listing_id"], mode))
                    samples.append(charge(clerk, crowd[i % len(crowd)], setup["merchant_id"], mode))
                loads.append(tourists(login, crowd, urls, setup["merchant_id"], mode, args.seconds))
                print(f"  {mode}: {summary([s for s in samples if s.mode == mode])}", flush=True)
        exits = p.exits()
        result = report(args, list(modes), samples, loads, p.database_url, started)
        result["load_average_1_5_15_min"] = {"before": load_before, "after": _loadavg()}
        result["process_exits"] = exits
        print(json.dumps(result, indent=2, ensure_ascii=False))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2, ensure_ascii=False)
        ok = not exits
        return 0 if ok else 1
    finally:
        p.down(keep=not ok)


def report(
    args: argparse.Namespace,
    modes: list[str],
    samples: list[Sample],
    loads: list[Load],
    db: str,
    started: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "when": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{host.node()}, {_cpus()} cores, {host.platform()}",
        "stack": f"{args.db}, {args.broker} broker, anvil 1-s blocks, CONFIRMATIONS=2",
        "target": "pending <= 300 ms; paid/owned p95 <= (2 + 1) x 1 s + 1 s = 4 s",
        "modes": {},
    }
    for mode in modes:
        mode_loads = [x for x in loads if x.mode == mode]
        paid = sum(x.paid for x in mode_loads)
        secs = sum(x.seconds for x in mode_loads)
        load_samples = [s for x in mode_loads for s in x.samples]
        out["modes"][mode] = {
            "purchase": summary([s for s in samples if s.mode == mode and s.journey == "purchase"]),
            "charge": summary([s for s in samples if s.mode == mode and s.journey == "charge"]),
            "breakdown_median_s": {
                j: breakdown(db, [s for s in samples if s.mode == mode], j) for j in BREAKDOWN
            },
            "tourists": {
                "tourists": args.tourists,
                "charges_per_s": round(paid / secs, 2) if secs else 0.0,
                "paid": paid,
                "failed": sum(x.failed for x in mode_loads),
                "done_p50_s": round(pct([s.done_s for s in load_samples if s.ok], 0.5), 2),
                "done_p95_s": round(pct([s.done_s for s in load_samples if s.ok], 0.95), 2),
            },
        }
    if args.scale:
        one, two = out["modes"]["1+1"], out["modes"]["2+2"]
        out["ratios_2x2_over_1x1"] = {
            "tourist_charges_per_s": _ratio(
                two["tourists"]["charges_per_s"], one["tourists"]["charges_per_s"]
            ),
            "purchase_p95": _ratio(two["purchase"]["done_p95_s"], one["purchase"]["done_p95_s"]),
            "charge_p95": _ratio(two["charge"]["done_p95_s"], one["charge"]["done_p95_s"]),
        }
        return out
    w, b = out["modes"]["watcher"], out["modes"]["beat"]
    out["ratios_beat_over_watcher"] = {
        "purchase_p50": _ratio(b["purchase"]["done_p50_s"], w["purchase"]["done_p50_s"]),
        "purchase_p95": _ratio(b["purchase"]["done_p95_s"], w["purchase"]["done_p95_s"]),
        "charge_p50": _ratio(b["charge"]["done_p50_s"], w["charge"]["done_p50_s"]),
        "charge_p95": _ratio(b["charge"]["done_p95_s"], w["charge"]["done_p95_s"]),
        "tourist_charges_per_s_watcher_over_beat": _ratio(
            w["tourists"]["charges_per_s"], b["tourists"]["charges_per_s"]
        ),
    }
    return out


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _loadavg() -> str:
    """The machine's load (it may be shared: the figures depend on it)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
