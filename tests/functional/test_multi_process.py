"""Issue 16 §4: the platform as docs/deploy-multi-host.md runs it on several hosts, here on one
box: two web processes (gunicorn, two workers each, on two ports, as two hosts behind a load
balancer), two Celery workers and exactly one beat, all real processes with the same settings
on a fresh PostgreSQL database, a Redis of their own and the session's anvil. Each process has
an instance folder of its own, so nothing is shared through local files.

- a sign-up on web A signs the person in on web B (sessions are signed cookies);
- a form's CSRF token from A is accepted by B, and a post without it is refused;
- a card purchase placed through B with A's token is paid through A, minted by the workers
  (either one: both are seen working) and shown owned on B;
- a points purchase through A (relayed: the web processes know the relayer by its address
  only) is sent by a worker and shown owned on B;
- the ticket code made on A is verified by venue staff signed in on B;
- a logout on B signs the same cookie out on A (the revocation is in the database);
- every process stops cleanly (exit code 0) on SIGTERM.

States are awaited (HTTP answers, rows, log lines), never slept for.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from eth_account import Account

from backend.chain.anvil import DEV_KEYS, AnvilNode
from backend.chain.registry import Deployments, artifact
from bench import processes
from bench.processes import Proc, RedisServer, free_port
from tests.anvil_pool import MinesMissed
from tests.chain_admin import ROLE_ADDRESSES, ROLE_PRIVATE_KEYS, role_address
from tests.conftest import ROOT, TEST_MASTER_KEY

VENV = ROOT / ".venv" / "bin"
RELAYER = DEV_KEYS[7]  # the relayer key of the test settings (tests/conftest.py base_settings)
RECIPE = (ROOT / "docs" / "deploy-multi-host.md").read_text()
TIMEOUT = 180.0  # seconds any one state may take on a loaded 2-core machine
PASSWORD = "correct horse battery"  # noqa: S105 - a test account's
VENUE = ("venue@sarabetsu.example", "furusato-demo-venue")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FORM = re.compile(r'<form method="post" action="/towns/sarabetsu/buy">(.*?)</form>', re.S)


def recipe(name: str) -> list[list[str]]:
    """The commands of a bash block of docs/deploy-multi-host.md, split as bash would."""
    m = re.search(rf"<!-- recipe: {name} -->\s*```bash\n(.*?)```", RECIPE, re.S)
    assert m, f"no recipe {name} in docs/deploy-multi-host.md"
    return [shlex.split(line) for line in m.group(1).splitlines() if line and line[0] != "#"]


def command(kind: str, **values: str) -> list[str]:
    """The recipe's command for `kind` (web, worker or beat) with option values replaced:
    this box's port for --bind, a name per worker, the beat's schedule in the test's folder."""

    def of_kind(c: list[str]) -> bool:
        if kind == "web":
            return c[0].endswith("/gunicorn")
        return c[0].endswith("/celery") and c[c.index("-A") + 2] == kind

    (cmd,) = [c for c in recipe("multi-host-processes") if of_kind(c)]
    out = list(cmd)
    for option, value in values.items():
        i = out.index(option)
        out[i + 1] = value
    return out


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    return processes.wait_for(what, check, timeout)


def _shared(
    db_url: str, redis_url: str, rpc_url: str, deployments: Path, relayer: str = RELAYER
) -> dict[str, str]:
    """What every host gets, web or worker (docs/deploy-multi-host.md, "Settings")."""
    return {
        "SECRET_KEY": "multi-process-" + uuid.uuid4().hex,
        "MASTER_KEY": TEST_MASTER_KEY,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "RPC_URL": rpc_url,
        "CHAIN_ID": "31337",
        "DEPLOYMENTS_DIR": str(deployments),
        "CONFIRMATIONS": "0",
        "ROLE_ADDRESSES": ROLE_ADDRESSES,
        "RELAYER_ADDRESSES": Account.from_key(relayer).address,
    }


def _settings(db_url: str, redis_url: str, rpc_url: str, deployments: Path) -> dict[str, str]:
    """This environment without the test run's own settings, plus the shared ones."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_KEY", "_KEYS", "_URL", "_ADDRESSES")) and not k.startswith("CELERY_")
    }
    shared = _shared(db_url, redis_url, rpc_url, deployments)
    return {**keep, "PYTHONPATH": str(ROOT), **shared}


@pytest.fixture
def deployment(
    tmp_path: Path, anvil: AnvilNode, deployed: Deployments, deployments_dir: Path, w3: Any
) -> Iterator[dict[str, Any]]:
    """A fresh database and Redis, the demo data, then 2 web processes, 2 workers and 1 beat."""
    name = f"furusato_multi_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        os.environ.get(
            "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db_url = admin.url.set(database=name).render_as_string(hide_password=False)
    redis = RedisServer(tmp_path / "redis").start()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[Proc] = []
    try:
        common = _settings(db_url, redis.url, anvil.url, deployments_dir)
        (migrate,) = recipe("multi-host-migrate")  # once per release, from one host
        done = subprocess.run(
            migrate, cwd=ROOT, env=common, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        demo = subprocess.run(
            [str(VENV / "python"), "scripts/demo_data.py"],
            cwd=ROOT,
            env={**common, "INSTANCE_PATH": str(tmp_path / "setup")},
            capture_output=True,
            text=True,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        ports = [free_port(), free_port()]
        worker_env = {
            **common,
            "ROLE_PRIVATE_KEYS": ROLE_PRIVATE_KEYS,
            "RELAYER_PRIVATE_KEYS": RELAYER,
        }
        for i in (1, 2):
            procs.append(
                Proc(
                    f"worker{i}",
                    command("worker", **{"-n": f"worker{i}@%h"}),
                    {**worker_env, "INSTANCE_PATH": str(tmp_path / f"worker{i}")},
                    logs,
                )
            )
        procs.append(
            Proc(
                "beat",
                command("beat", **{"--schedule": str(tmp_path / "celerybeat-schedule")}),
                {**common, "INSTANCE_PATH": str(tmp_path / "beat")},
                logs,
            )
        )
        for label, port in zip("ab", ports, strict=True):
            procs.append(
                Proc(
                    f"web_{label}",
                    command("web", **{"--bind": f"127.0.0.1:{port}", "--workers": "2"}),
                    {
                        **common,
                        "INSTANCE_PATH": str(tmp_path / f"web_{label}"),
                        "PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",  # the load balancer's
                    },
                    logs,
                )
            )
        web = {label: f"http://127.0.0.1:{port}" for label, port in zip("ab", ports, strict=True)}
        for url in web.values():
            wait_for(f"{url}/healthz", lambda url=url: _healthy(url, procs))
        # The processes drive the session's anvil: what its automine misses is mined by hand
        # (tests/anvil_pool.py), as the next block of a real chain would take it.
        with MinesMissed(anvil.url):
            yield {"web": web, "procs": {p.name: p for p in procs}, "db": db_url}
    finally:
        codes = {p.name: p.stop() for p in reversed(procs)}
        redis.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert codes == {p.name: 0 for p in procs}, {p.name: p.text()[-2000:] for p in procs}


def _healthy(url: str, procs: list[Proc]) -> bool:
    for p in procs:
        p.alive()
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _csrf(html: str) -> str:
    m = _CSRF.search(html)
    assert m, html[:500]
    return m.group(1)


def _json_post(s: requests.Session, url: str, token: str, body: dict[str, Any]) -> Any:
    return s.post(url, json=body, headers={"X-CSRFToken": token}, timeout=30)


def _card_form(html: str) -> dict[str, str]:
    """The fields of the shop page's "Pay by card" form (Sarabetsu's ambassador card)."""
    for form in _FORM.findall(html):
        if 'data-buy="card"' in form:
            fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form))
            return {**fields, "quantity": "1"}
    raise AssertionError("no card form on the shop page")


def _listings_open(url: str) -> bool:
    body = requests.get(f"{url}/api/shop/towns/sarabetsu/listings", timeout=10).json()
    return all(li["open"] for c in body["collections"] for li in c["listings"])


def test_every_setting_the_processes_share_is_in_the_recipe():
    """What this test gives every process is what the recipe says must match everywhere."""
    shared = _shared("postgresql+psycopg://x/y", "redis://r/0", "http://n:8545", Path("d"))
    table = RECIPE.split("## Settings", 1)[1].split("## What must be shared", 1)[0]
    for name in shared:
        assert f"`{name}`" in table, name
    assert "`ROLE_PRIVATE_KEYS`" in table and "`RELAYER_PRIVATE_KEYS`" in table
    assert [c[0] for c in recipe("multi-host-processes")] == [
        ".venv/bin/gunicorn",
        ".venv/bin/celery",
        ".venv/bin/celery",
    ]


def _completed(s: requests.Session, url: str, public_id: str, procs: dict[str, Proc]) -> bool:
    for p in procs.values():
        p.alive()
    order = s.get(f"{url}/api/shop/orders/{public_id}", timeout=10).json()["order"]
    assert order["status"] in ("processing", "completed"), order
    return bool(order["status"] == "completed")


def _listing(url: str, kind: str) -> int:
    """Sarabetsu's ambassador card listing paid by `kind`."""
    body = requests.get(f"{url}/api/shop/towns/sarabetsu/listings", timeout=10).json()
    (c,) = [c for c in body["collections"] if c["collection"]["slug"] == "ambassador"]
    return int(next(li["id"] for li in c["listings"] if li["payment_kind"] == kind))


@pytest.mark.heavy  # real web, worker and beat processes
def test_two_web_processes_and_two_workers_share_sessions_csrf_tickets_and_work(
    deployment, w3, deployed
):
    a, b = deployment["web"]["a"], deployment["web"]["b"]
    procs = deployment["procs"]
    # Demo listings reach the chain through the workers (createListing, then the indexer).
    wait_for("the demo listings on chain", lambda: _listings_open(b))

    # A sign-up on A; its session cookie signs the person in on B.
    fan = requests.Session()
    token = fan.get(f"{a}/api/csrf", timeout=10).json()["csrf_token"]
    r = _json_post(
        fan, f"{a}/api/accounts/signup", token, {"email": "fan@example.com", "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    cookie = fan.cookies.get("session")
    assert cookie and "session=" in r.headers["Set-Cookie"]
    on_b = requests.get(f"{b}/api/accounts/me", cookies={"session": cookie}, timeout=10)
    assert on_b.status_code == 200 and on_b.json()["user"]["email"] == "fan@example.com"
    assert requests.get(f"{b}/api/accounts/me", timeout=10).status_code == 401

    # A form's CSRF token from A, posted to B: a card order. Without the token B refuses it.
    page = fan.get(f"{a}/towns/sarabetsu", timeout=30).text
    form = _card_form(page)
    no_token = {k: v for k, v in form.items() if k != "csrf_token"}
    refused = fan.post(f"{b}/towns/sarabetsu/buy", data=no_token, allow_redirects=False, timeout=30)
    assert refused.status_code == 400
    placed = fan.post(f"{b}/towns/sarabetsu/buy", data=form, allow_redirects=False, timeout=30)
    assert placed.status_code == 302, placed.text[:500]
    checkout = placed.headers["Location"]
    public_id = checkout.rsplit("/", 1)[-1]
    assert checkout.endswith(f"/shop/test-checkout/{public_id}")
    orders = fan.get(f"{b}/api/shop/orders/{public_id}", timeout=10).json()["order"]
    assert orders["status"] == "pending_payment"

    # Paid through A (the test provider's checkout page, its own CSRF token from A).
    pay_page = fan.get(f"{a}/shop/test-checkout/{public_id}", timeout=30).text
    paid = fan.post(
        f"{a}/shop/test-checkout/{public_id}",
        data={"csrf_token": _csrf(pay_page), "choice": "paid"},
        allow_redirects=False,
        timeout=30,
    )
    assert paid.status_code == 302, paid.text[:500]

    # The workers mint it; B shows it owned, with its token in the collection.
    wait_for("the card order completed, seen on B", lambda: _completed(fan, b, public_id, procs))
    tokens = fan.get(f"{b}/api/shop/my/collection", timeout=30).json()["tokens"]
    assert [(t["collection"], t["town"]) for t in tokens] == [("ambassador", "sarabetsu")]
    # Both workers took tasks from the shared queue (beat's sweeps, the mint, the indexer).
    for name in ("worker1", "worker2"):
        wait_for(f"{name} running a task", lambda name=name: " succeeded in " in procs[name].text())
    # Beat sends the indexer's task every 5 s from its start; the workers' block watchers can
    # complete the order before its first one (a pair run failed on a bare assert here).
    wait_for(
        "beat sending the indexer's task",
        lambda: "Scheduler: Sending due task chain.index_blocks" in procs["beat"].text(),
    )

    # A points purchase through A (a relayed buy: web A knows only the relayer's address),
    # sent by a worker, seen owned on B.
    me = on_b.json()["user"]["addresses"][0]["address"]
    points = w3.eth.contract(
        address=deployed.address("towns.sarabetsu.RegionPoints"), abi=artifact("RegionPoints").abi
    )
    points.functions.issue(me, 5000, 2, "multi-process").transact({"from": role_address("issuer")})
    listing = _listing(b, "points")
    token = fan.get(f"{a}/api/csrf", timeout=10).json()["csrf_token"]
    body = {"listing_id": listing, "quantity": 1, "idempotency_key": "multi-points-1"}
    bought = _json_post(fan, f"{a}/api/shop/orders", token, body)
    assert bought.status_code == 201, bought.text
    points_order = bought.json()["order"]["id"]
    wait_for(
        "the points order completed, seen on B", lambda: _completed(fan, b, points_order, procs)
    )
    assert points.functions.balanceOf(me).call() == 0
    tokens = fan.get(f"{b}/api/shop/my/collection", timeout=30).json()["tokens"]
    assert len(tokens) == 2

    # The ticket code made on A is verified by venue staff signed in on B.
    ticket = fan.get(f"{a}/api/shop/my/collection", timeout=30).json()["tokens"][0]["ticket_code"]
    venue = requests.Session()
    vtoken = venue.get(f"{b}/api/csrf", timeout=10).json()["csrf_token"]
    r = _json_post(venue, f"{b}/api/auth/login", vtoken, {"email": VENUE[0], "password": VENUE[1]})
    assert r.status_code == 200, r.text
    vtoken = venue.get(f"{b}/api/csrf", timeout=10).json()["csrf_token"]
    seen = _json_post(
        venue, f"{b}/api/shop/towns/sarabetsu/checkin/lookup", vtoken, {"code": ticket}
    )
    assert seen.status_code == 200, seen.text
    assert (
        seen.json()["collection"] == "ambassador"
        and seen.json()["token_id"] == tokens[0]["token_id"]
    )
    forged = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
    bad = _json_post(
        venue, f"{b}/api/shop/towns/sarabetsu/checkin/lookup", vtoken, {"code": forged}
    )
    assert 400 <= bad.status_code < 500, bad.text

    # A logout on B (a form's token from A again) signs the same cookie out on A.
    me_page = fan.get(f"{a}/me", timeout=30).text
    out = fan.post(
        f"{b}/logout", data={"csrf_token": _csrf(me_page)}, allow_redirects=False, timeout=30
    )
    assert out.status_code == 302
    old = requests.get(f"{a}/api/accounts/me", cookies={"session": cookie}, timeout=10)
    assert old.status_code == 401
