"""Web benchmarks on the whole platform: its own anvil, a database (SQLite by default,
`--db postgresql`), the demo towns with real activity, gunicorn with 2 workers as `make run`.

    .venv/bin/python -m bench.web                  # every scenario (make bench-pages)
    .venv/bin/python -m bench.web pages            # only these scenarios
    .venv/bin/python -m bench.web --seconds 20 --connections 16 --db postgresql --json out.json

Scenarios are functions registered with `@scenario("name")`: each gets the running `WebEnv`
(bench/web_env.py: URL, people's session cookies, ids, `drive()` for the worker's beat,
`node_calls()`) and the parsed options, prints its table and returns rows for --json. A new
benchmark of the web platform (confirmation latency, a sale rush) is one more function here or
in a module this one imports.

`pages` (issue 16 §1): each page read from the projection at N connections, next to a static
file served by the same gunicorn in the same run: req/s, ratio to the static file, p50 / p99,
failures, and the JSON-RPC calls the node served meanwhile (anvil's log: none is expected).
Targets: each page >= 0.5x the static file's req/s, p99 < 150 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import LoadResult, run_load
from bench.web_env import WebEnv, web_env

Scenario = Callable[[WebEnv, argparse.Namespace], list[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    """Register a scenario under `name` (run in registration order)."""

    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


# ---------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    person: str | None  # whose session cookie (None: signed out)


def pages_of(env: WebEnv) -> list[Page]:
    """The static baseline first, then the pages issue 16 §1 names."""
    merchant, proposal = env.ids["merchant"], env.ids["proposal"]
    return [
        Page("static file (baseline)", "/static/shop.css", None),
        Page("shop page", "/towns/sarabetsu", None),
        Page("shop page, signed in", "/towns/sarabetsu", "fan"),
        Page("listings JSON", "/api/shop/towns/sarabetsu/listings", None),
        Page("/points, signed in", "/points", "resident"),
        Page("my collection", "/my/collection", "fan"),
        Page("proposal page, signed in", f"/towns/sarabetsu/dao/proposals/{proposal}", "fan"),
        Page("merchant's sales (desk)", f"/merchants/{merchant}", "clerk"),
        Page("merchant's sales JSON", f"/api/merchants/{merchant}/sales", "clerk"),
    ]


def _merge(results: list[LoadResult]) -> LoadResult:
    out = LoadResult(results[0].url, sum(r.seconds for r in results))
    for r in results:
        out.latencies += r.latencies
        out.statuses.update(r.statuses)
        out.errors.update(r.errors)
    return out


def _row(page: Page, runs: list[LoadResult], statics: list[LoadResult], calls: int) -> dict:
    """One page's figures over every round: req/s over the whole time, the median of the
    rounds' ratios to the static file measured in the same round, latencies of all rounds."""
    r = _merge(runs)
    ratios = [a.rate / b.rate for a, b in zip(runs, statics, strict=True) if b.rate]
    return {
        "page": page.name,
        "path": page.path,
        "requests": r.ok,
        "failed": r.failed,
        "req_per_s": round(r.rate, 1),
        "ratio": round(statistics.median(ratios), 2) if ratios else None,
        "ratios": [round(x, 2) for x in ratios],
        "p50_ms": round(r.percentile(50), 1),
        "p99_ms": round(r.percentile(99), 1),
        "node_calls": calls,
    }


def _verdict(row: dict[str, Any], target_ratio: float, target_p99: float) -> str:
    ok = (row["ratio"] or 0) >= target_ratio and row["p99_ms"] < target_p99 and not row["failed"]
    return "PASS" if ok else "FAIL"


@scenario("pages")
def pages(env: WebEnv, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every page in turn, `args.rounds` times (so the machine's moods of a shared host fall
    on every page alike), the static file first in each round."""
    all_pages = pages_of(env)
    runs: dict[str, list[LoadResult]] = {p.name: [] for p in all_pages}
    calls = dict.fromkeys(runs, 0)
    print(
        f"\npages: {args.connections} connections, {args.rounds} rounds of {args.seconds:g} s "
        f"per page (+{args.warmup:g} s warm-up each), gunicorn {args.workers} workers, {env.db}"
    )
    for _ in range(args.rounds):
        for page in all_pages:
            before = env.node_calls()
            runs[page.name].append(
                run_load(
                    env.url + page.path,
                    seconds=args.seconds,
                    connections=args.connections,
                    cookie=env.cookies.get(page.person) if page.person else None,
                    warmup=args.warmup,
                )
            )
            calls[page.name] += env.node_calls() - before
    statics = runs[all_pages[0].name]
    cols = ("req/s", "x static", "p50 ms", "p99 ms")
    print(f"{'page':28} " + " ".join(f"{c:>8}" for c in cols) + f" {'fail':>5} {'rpc':>4}")
    rows = []
    for i, page in enumerate(all_pages):
        row = _row(page, runs[page.name], statics, calls[page.name])
        row["verdict"] = _verdict(row, args.target_ratio, args.target_p99) if i else ""
        rows.append(row)
        print(
            f"{page.name:28} {row['req_per_s']:8.1f} {row['ratio']:8.2f} {row['p50_ms']:8.1f} "
            f"{row['p99_ms']:8.1f} {row['failed']:5d} {row['node_calls']:4d} {row['verdict']}"
        )
    print(
        f"x static: the median over the rounds of the page's req/s over the static file's in the"
        f" same round; targets >= {args.target_ratio}x and p99 < {args.target_p99:g} ms; rpc:"
        " JSON-RPC calls anvil served while the page was loaded (all rounds)"
    )
    return rows


# ---------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip()
        except OSError:
            return ""

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": run("date", "-u", "+%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "load": os.getloadavg(),
        "python": platform.python_version(),
        "commit": run("git", "rev-parse", "--short", "HEAD"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--seconds", type=float, default=5.0, help="load per page and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds over every page")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--fans", type=int, default=10, help="people who bought a card")
    p.add_argument("--sales", type=int, default=40, help="payments at the demo shop")
    p.add_argument("--target-ratio", type=float, default=0.5)
    p.add_argument("--target-p99", type=float, default=150.0)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    chosen = args.scenarios or list(SCENARIOS)
    info = machine()
    print(
        f"bench.web {info['date']}, {info['nproc']} cores ({info['cpu']}), load "
        f"{' '.join(f'{x:.1f}' for x in info['load'])}, commit {info['commit']}"
    )
    results: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    with web_env(args.db, args.workers, args.fans, args.sales, args.keep) as env:
        print(f"seeded: {args.fans} card buyers, {args.sales} shop payments; serving {env.url}")
        for name in chosen:
            results[name] = SCENARIOS[name](env, args)
    results["machine"]["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
