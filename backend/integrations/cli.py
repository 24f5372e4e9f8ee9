"""`flask --app backend services create|list` (issue 14 §1): register a town's service and
print its API key (shown once: it is stored hashed), or list a town's services."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from backend.core.errors import AppError
from backend.integrations.services import service_account_service
from backend.regions.services import town_by_slug


@click.group("services")
def services_cli() -> None:
    """The town's other services that issue points through /api/v1."""


def _fail(exc: AppError) -> None:
    field = exc.details.get("field")
    raise click.ClickException(f"{exc.translated()}" + (f" ({field})" if field else ""))


@services_cli.command("create")
@click.option("--town", "slug", required=True, help="the town's slug, e.g. sarabetsu")
@click.option("--name", required=True, help="the service's name (both languages)")
@click.option("--name-ja", default=None, help="its Japanese name, when it differs")
@click.option(
    "--programme",
    "programmes",
    type=int,
    multiple=True,
    required=True,
    help="a programme id it may issue from (repeat for more)",
)
@click.option("--daily-budget", type=int, required=True, help="points a JST day")
@click.option("--monthly-budget", type=int, default=None, help="points a JST month")
@click.option("--cap", type=int, default=None, help="points one issuance may give")
@with_appcontext
def create_command(
    slug: str,
    name: str,
    name_ja: str | None,
    programmes: tuple[int, ...],
    daily_budget: int,
    monthly_budget: int | None,
    cap: int | None,
) -> None:
    """Register a service and print its API key (shown once)."""
    svc = service_account_service()
    try:
        town = town_by_slug(slug)
        account, key = svc.create(
            None,
            town,
            name_ja=name_ja or name,
            name_en=name,
            programme_ids=programmes,
            daily_budget=daily_budget,
            monthly_budget=monthly_budget,
            cap_per_issuance=cap,
            cli=True,
        )
    except AppError as exc:
        _fail(exc)
        return
    click.echo(f"service {account.id} {account.name_en} of {slug}")
    click.echo("API key (shown once; keep it secret):")
    click.echo(key.text)


@services_cli.command("list")
@click.option("--town", "slug", required=True)
@with_appcontext
def list_command(slug: str) -> None:
    """The town's services with their budgets (never their keys)."""
    from sqlalchemy import select

    from backend.integrations.models import ServiceAccount

    svc = service_account_service()
    town = town_by_slug(slug)
    for a in svc.session.scalars(
        select(ServiceAccount).where(ServiceAccount.town_id == town.id).order_by(ServiceAccount.id)
    ):
        click.echo(
            f"{a.id}\t{a.name_en}\tprogrammes={','.join(map(str, a.programme_ids))}\t"
            f"daily={int(a.daily_budget)}\tmonthly={int(a.monthly_budget or 0) or '-'}"
        )
