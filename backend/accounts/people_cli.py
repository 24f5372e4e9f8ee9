"""`flask --app backend towns grant-admin`, in the `towns` group of backend/onboarding/cli.py:

    flask --app backend towns grant-admin --town sarabetsu --email mayor@example.jp

makes an existing account the admin of an existing town (its first admin, who then appoints
everyone else on the console's People page). Audited as "town.role.grant" by "system:cli";
running it again changes nothing.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from backend.accounts.town_people import TownPeopleService
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.regions.services import town_by_slug


@click.command("grant-admin")
@click.option("--town", "slug", required=True, help="the town's slug, e.g. sarabetsu")
@click.option("--email", required=True, help="the e-mail of an existing account")
@with_appcontext
def grant_admin(slug: str, email: str) -> None:
    """Make the account with EMAIL an admin of the town."""
    try:
        town = town_by_slug(slug)
        change = TownPeopleService(get_db().session()).bootstrap_admin(town, email)
    except AppError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    if change.changed:
        click.echo(f"{change.email} is now an admin of {town.slug}.")
    else:
        click.echo(f"{change.email} was already an admin of {town.slug}; nothing changed.")
