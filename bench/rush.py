"""A sale rush (issue 16 §3) on the platform as several hosts run it (issue 16 §4).

    PYTHONPATH=$PWD .venv/bin/python -m bench.rush                 # make bench-rush
    PYTHONPATH=$PWD .venv/bin/python -m bench.rush --configs 1+1 --buyers 60 --seconds 15

For each configuration "W+M" (W web processes of 2 gunicorn workers, M Celery workers, one beat;
bench/rush_env.py) on a fresh chain, database and Redis: `--buyers` people with built-in wallets
and 5,000 points each, signed in beforehand, arrive at random moments spread over `--seconds`
at Sarabetsu's ambassador card (points, supply 200). Each POSTs a purchase to one web process
(buyer i to web i mod W, as a load balancer would) and polls its order on the next one until it
says completed, then reads its collection there until the token is in it, or failed.

Recorded per configuration:
- answers 5xx and connection failures (must be 0);
- oversell: the listing's `sold` on chain <= its supply, and completed orders = what was sold;
- "told": seconds from a buyer's arrival to the answer of its POST (201 processing: it holds a
  unit; 409 sold out), p50 / p95 / max (target <= 10 s);
- "in my collection": seconds from arrival to the token in /api/shop/my/collection, p50 / p95
  / max, for the buyers who got one;
- reads/s of the buyers' own pages (order, collection) by `--read-clients` closed-loop clients
  for `--read-seconds` after the sale: the throughput compared between configurations.
The last line is the throughput ratio of the last configuration to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import random
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.rush_env import Buyer, Platform

TOLD_TARGET = 10.0  # seconds: every buyer told got-it or sold-out within this


@dataclass
class Outcome:
    index: int
    answer: str = "none"  # got | sold_out | refused:<status> <code> | 5xx:<status> | error:<type>
    told: float | None = None  # seconds from arrival to the POST's answer
    owned: float | None = None  # seconds from arrival to the token in my collection
    final: str = ""  # completed | failed | timeout | ""
    order_id: str = ""
    server_errors: list[str] = field(default_factory=list)  # every 5xx or failed connection


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def _get(b: Buyer, url: str, out: Outcome) -> dict[str, Any] | None:
    try:
        r = b.session.get(url, headers={"X-Forwarded-For": b.client_ip}, timeout=60)
    except requests.RequestException as exc:
        out.server_errors.append(f"GET {type(exc).__name__}")
        return None
    if r.status_code >= 500:
        out.server_errors.append(f"GET {r.status_code}")
        return None
    return r.json() if r.status_code == 200 else None


def buy(
    b: Buyer, post_url: str, poll_url: str, listing: int, at: float, poll: float, give_up: float
) -> Outcome:
    """One buyer: wait for its moment, buy, then poll until owned (or failed)."""
    out = Outcome(b.index)
    time.sleep(max(0.0, at - time.monotonic()))
    arrived = time.monotonic()
    headers = {"X-Forwarded-For": b.client_ip, "X-CSRFToken": b.token}
    body = {"listing_id": listing, "quantity": 1, "idempotency_key": f"rush-{b.index:06d}"}
    try:
        r = b.session.post(f"{post_url}/api/shop/orders", json=body, headers=headers, timeout=60)
    except requests.RequestException as exc:
        out.answer = f"error:{type(exc).__name__}"
        out.server_errors.append(out.answer)
        return out
    out.told = time.monotonic() - arrived
    code = (r.json().get("error") or {}).get("code", "") if r.status_code >= 400 else ""
    if r.status_code >= 500:
        out.answer = f"5xx:{r.status_code}"
        out.server_errors.append(out.answer)
        return out
    if r.status_code == 409 and code == "sold_out":
        out.answer = "sold_out"
        return out
    if r.status_code not in (200, 201):
        out.answer = f"refused:{r.status_code} {code}"
        return out
    out.answer = "got"
    order_id = out.order_id = r.json()["order"]["id"]
    completed = False
    while time.monotonic() - arrived < give_up:
        time.sleep(poll)
        if not completed:
            got = _get(b, f"{poll_url}/api/shop/orders/{order_id}", out)
            status = (got or {}).get("order", {}).get("status")
            if status in ("failed", "refunded", "declined"):
                out.final = "failed"
                return out
            completed = status == "completed"
            if not completed:
                continue
        mine = _get(b, f"{poll_url}/api/shop/my/collection", out)
        if mine and mine.get("tokens"):
            out.owned = time.monotonic() - arrived
            out.final = "completed"
            return out
    out.final = "timeout"
    return out


def rush(p: Platform, seconds: float, poll: float, seed: int) -> tuple[list[Outcome], float]:
    rng = random.Random(seed)
    start = time.monotonic() + 1.0
    moments = sorted(start + rng.uniform(0, seconds) for _ in p.buyers)
    order = list(p.buyers)
    rng.shuffle(order)
    results: list[Outcome | None] = [None] * len(order)
    n = len(p.urls)

    def run(slot: int, b: Buyer) -> None:
        results[slot] = buy(
            b,
            p.urls[b.index % n],
            p.urls[(b.index + 1) % n],
            p.listing_id,
            moments[slot],
            poll,
            give_up=seconds + 240,
        )

    threads = [threading.Thread(target=run, args=(i, b), daemon=True) for i, b in enumerate(order)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    return [r for r in results if r is not None], wall


def reads(p: Platform, outcomes: list[Outcome], clients: int, seconds: float) -> dict[str, Any]:
    """Closed-loop reads of the buyers' own pages (their order, their collection) on every web
    process in turn: requests per second and latencies."""
    owners = [(p.buyers[o.index], o.order_id) for o in outcomes if o.final == "completed"]
    if not owners:
        return {"requests": 0, "rate": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "errors": 0}
    stop = time.monotonic() + seconds
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        i = c
        mine: list[float] = []
        bad: list[str] = []
        while time.monotonic() < stop:
            b, order_id = owners[i % len(owners)]
            url = p.urls[i % len(p.urls)]
            path = f"/api/shop/orders/{order_id}" if i % 2 else "/api/shop/my/collection"
            t0 = time.monotonic()
            try:
                r = b.session.get(url + path, headers={"X-Forwarded-For": b.client_ip}, timeout=60)
                if r.status_code >= 500:
                    bad.append(str(r.status_code))
            except requests.RequestException as exc:
                bad.append(type(exc).__name__)
            mine.append(time.monotonic() - t0)
            i += clients
        with lock:
            lat.extend(mine)
            errors.extend(bad)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {
        "requests": len(lat),
        "rate": len(lat) / wall,
        "p50_ms": 1000 * (_pct(lat, 50) or 0),
        "p95_ms": 1000 * (_pct(lat, 95) or 0),
        "errors": len(errors),
    }


def summarise(p: Platform, outcomes: list[Outcome], wall: float) -> dict[str, Any]:
    answers: dict[str, int] = {}
    for o in outcomes:
        answers[o.answer] = answers.get(o.answer, 0) + 1
    told = [o.told for o in outcomes if o.told is not None]
    owned = [o.owned for o in outcomes if o.owned is not None]
    sold = p.sold_on_chain()
    states = p.order_states()
    return {
        "buyers": len(outcomes),
        "answers": answers,
        "server_errors": sum(len(o.server_errors) for o in outcomes),
        "sold_on_chain": sold,
        "supply": p.supply,
        "oversold": sold > p.supply,
        "orders": states,
        "completed_equals_sold": states.get("completed", 0) == sold,
        "finals": {
            k: sum(1 for o in outcomes if o.final == k) for k in ("completed", "failed", "timeout")
        },
        "told_p50": _pct(told, 50),
        "told_p95": _pct(told, 95),
        "told_max": max(told) if told else None,
        "told_over_target": sum(1 for t in told if t > TOLD_TARGET),
        "owned_p50": _pct(owned, 50),
        "owned_p95": _pct(owned, 95),
        "owned_max": max(owned) if owned else None,
        "wall_s": wall,
    }


def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), ""
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model or host.processor(),
        "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def print_table(rows: dict[str, dict[str, Any]]) -> None:
    keys = [
        ("buyers", "buyers"),
        ("answers", "answers"),
        ("server_errors", "5xx + failed connections"),
        ("sold_on_chain", "sold on chain"),
        ("supply", "supply"),
        ("oversold", "oversold"),
        ("orders", "orders by state"),
        ("told_p50", "told p50 (s)"),
        ("told_p95", "told p95 (s)"),
        ("told_max", "told max (s)"),
        ("told_over_target", f"told after {TOLD_TARGET:.0f} s"),
        ("owned_p50", "in my collection p50 (s)"),
        ("owned_p95", "in my collection p95 (s)"),
        ("owned_max", "in my collection max (s)"),
        ("reads_rate", "reads/s after the sale"),
        ("reads_p95_ms", "reads p95 (ms)"),
        ("setup_s", "setup (s)"),
        ("load_after", "load average after"),
    ]
    names = list(rows)
    print("\n" + " | ".join(["", *names]))
    for key, label in keys:
        print(" | ".join([label, *(_fmt(rows[n].get(key)) for n in names)]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", default="1+1,2+2", help="web+worker processes, comma-separated")
    ap.add_argument("--buyers", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=60.0, help="arrivals spread over this")
    ap.add_argument("--poll", type=float, default=1.0, help="a buyer's polling interval (s)")
    ap.add_argument("--read-clients", type=int, default=16)
    ap.add_argument("--read-seconds", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = ap.parse_args(argv)
    print("machine:", machine())
    rows: dict[str, dict[str, Any]] = {}
    failed = False
    for config in args.configs.split(","):
        webs, workers = (int(x) for x in config.split("+"))
        tmp = Path(tempfile.mkdtemp(prefix=f"rush-{webs}x{workers}-"))
        p = Platform(tmp, webs, workers, args.buyers)
        t0 = time.monotonic()
        try:
            p.start()
            setup = time.monotonic() - t0
            print(f"{config}: ready in {setup:.0f} s (logs: {tmp / 'logs'}); the sale starts")
            outcomes, wall = rush(p, args.seconds, args.poll, args.seed)
            p.check_alive()
            row = summarise(p, outcomes, wall)
            r = reads(p, outcomes, args.read_clients, args.read_seconds)
            row.update(
                setup_s=setup,
                reads_rate=r["rate"],
                reads_p95_ms=r["p95_ms"],
                reads_errors=r["errors"],
                load_after=tuple(round(x, 1) for x in os.getloadavg()),
                outcomes=[asdict(o) for o in outcomes],
            )
            row["server_errors"] += r["errors"]
            rows[config] = row
            failed |= bool(
                row["server_errors"] or row["oversold"] or not row["completed_equals_sold"]
            )
        finally:
            try:
                codes = p.stop()
                if any(codes.values()):
                    print(f"{config}: processes exited with {codes}")
            finally:
                if not args.keep:
                    shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)
    if len(rows) > 1:
        first, last = list(rows)[0], list(rows)[-1]
        ratio = rows[last]["reads_rate"] / rows[first]["reads_rate"]
        print(f"\nthroughput ratio {last} / {first} (reads/s): {ratio:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "rows": rows}, indent=2, default=str)
        )
    print("\nPASS" if not failed else "\nFAIL: 5xx, oversell or completed orders != sold")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
