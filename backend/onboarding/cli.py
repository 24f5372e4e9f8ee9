"""`flask --app backend towns create|retry|invite|status` and `operators add` (issue 13).

`towns create` starts (or continues) a town's setup through the outbox and waits, printing each
step as it moves (queued -> sent -> confirmed); the worker (`celery -A backend.worker worker`
and beat) sends the steps. Interrupted, it can be run again with the same arguments: it
continues, and nothing is deployed twice. At the end it prints the town's page and the first
admin's one-time sign-in link (also sent by mail).
"""

from __future__ import annotations

import time

import click
from flask.cli import with_appcontext

from backend.core.errors import AppError
from backend.onboarding.models import FAILED, LIVE
from backend.onboarding.services import add_operator, parse_request, town_setup_service


@click.group("towns")
def towns_cli() -> None:
    """Onboard towns: their contracts through the outbox, their first admin by e-mail."""


def _fail(exc: AppError) -> None:
    field = exc.details.get("field")
    raise click.ClickException(f"{exc.message}" + (f" ({field})" if field else ""))


def _wait(slug: str, timeout: float, poll: float, stop_after: int | None) -> str:
    """Advance and print the setup until it is live, failed, or `timeout` seconds passed."""
    svc = town_setup_service()
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        setup = svc.advance(svc.setup(slug).id)
        view = svc.view(None, slug, command_line=True)
        for step in view.steps:
            if seen.get(step.name) != step.state:
                seen[step.name] = step.state
                if step.state != "waiting":
                    extra = f" {step.address}" if step.address else ""
                    extra += f" — {step.error}" if step.error else ""
                    click.echo(
                        f"step {step.position}/{view.total} {step.name}: {step.state}{extra}"
                    )
        if setup.state in (LIVE, FAILED):
            return setup.state
        if stop_after is not None and view.confirmed >= stop_after:
            return "stopped"
        if time.monotonic() > deadline:
            return "timeout"
        svc.session.commit()  # end the read transaction: see what the worker commits
        time.sleep(poll)


@towns_cli.command("create")
@click.option("--slug", required=True, help="the town's address name, e.g. toyako")
@click.option("--name-ja", required=True)
@click.option("--name-en", required=True)
@click.option("--symbol", required=True, help="the points symbol, e.g. TYA")
@click.option("--prefecture-ja", default="")
@click.option("--prefecture-en", default="")
@click.option("--admin-email", default=None, help="the town's first admin, invited by e-mail")
@click.option("--timeout", default=900.0, show_default=True, help="seconds to wait")
@click.option("--poll", default=0.5, show_default=True, help="seconds between looks")
@click.option("--stop-after", type=int, default=None, hidden=True)
@with_appcontext
def create_command(
    slug: str,
    name_ja: str,
    name_en: str,
    symbol: str,
    prefecture_ja: str,
    prefecture_en: str,
    admin_email: str | None,
    timeout: float,
    poll: float,
    stop_after: int | None,
) -> None:
    """Onboard a town (or continue its interrupted setup) and wait until it is live."""
    svc = town_setup_service()
    data = {
        "slug": slug,
        "name_ja": name_ja,
        "name_en": name_en,
        "symbol": symbol,
        "prefecture_ja": prefecture_ja,
        "prefecture_en": prefecture_en,
        "admin_email": admin_email or "",
    }
    try:
        setup = svc.start(None, parse_request(data), command_line=True)
        click.echo(f"town setup {setup.slug}: {len(setup.steps)} steps, sent by the founder key")
        state = _wait(slug, timeout, poll, stop_after)
    except AppError as exc:
        _fail(exc)
        return
    if state == FAILED:
        click.echo(
            f"setup failed: fix the cause, then `flask --app backend towns retry --slug {slug}`"
        )
        raise SystemExit(1)
    if state != LIVE:
        click.echo(f"setup {state}: run the same command again to continue")
        raise SystemExit(3)
    base = svc.settings.public_url.rstrip("/")
    click.echo(f"town {slug} is live: {base}/towns/{slug}")
    _print_invite(slug, fresh=False)


def _print_invite(slug: str, *, fresh: bool, email: str | None = None) -> None:
    svc = town_setup_service()
    try:
        link = svc.invite(slug, email=email, fresh=fresh)
    except AppError as exc:
        if exc.details.get("field") == "admin_email":
            click.echo("no admin e-mail given: invite one with `towns invite --slug ... --email`")
            return
        _fail(exc)
        return
    if link is None:
        click.echo(f"the first admin was already invited; a new link: towns invite --slug {slug}")
    else:
        click.echo(f"first admin's one-time sign-in link (also sent by e-mail): {link}")


@towns_cli.command("retry")
@click.option("--slug", required=True)
@click.option("--timeout", default=900.0, show_default=True)
@with_appcontext
def retry_command(slug: str, timeout: float) -> None:
    """Send a setup's failed steps again and wait."""
    svc = town_setup_service()
    try:
        svc.retry(None, slug, command_line=True)
        state = _wait(slug, timeout, 0.5, None)
    except AppError as exc:
        _fail(exc)
        return
    click.echo(f"setup {state}")
    if state == LIVE:
        _print_invite(slug, fresh=False)
    else:
        raise SystemExit(1)


@towns_cli.command("invite")
@click.option("--slug", required=True)
@click.option("--email", default=None, help="default: the setup's admin e-mail")
@with_appcontext
def invite_command(slug: str, email: str | None) -> None:
    """Make a new one-time sign-in link for the town's admin (older unused links stop)."""
    _print_invite(slug, fresh=True, email=email)


@click.group("operators")
def operators_cli() -> None:
    """Platform operators: who may onboard towns."""


@operators_cli.command("add")
@click.argument("email")
@with_appcontext
def add_operator_command(email: str) -> None:
    """Make the account with EMAIL a platform operator."""
    from backend.core.db import get_db

    try:
        user = add_operator(get_db().session(), email)
    except AppError as exc:
        _fail(exc)
        return
    click.echo(f"{user.email} is a platform operator")
