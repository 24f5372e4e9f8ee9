"""`flask --app backend towns grant-admin --town <slug> --email <e>`: an existing account becomes
the admin of an existing town (audited by system:cli); a re-run changes nothing; an unknown
e-mail or town fails with a clear message and writes nothing."""

from __future__ import annotations

from tests.console.conftest import audit_rows, memberships, state


def _run(app, *args: str):
    return app.test_cli_runner().invoke(args=["towns", "grant-admin", *args])


def test_grant_admin_bootstraps_an_admin_once(app, town):
    newbie = town.user_id("newbie")
    first = _run(app, "--town", "sarabetsu", "--email", "Newbie@Example.com")
    assert first.exit_code == 0, first.output
    assert "newbie@example.com is now an admin of sarabetsu" in first.output
    assert (newbie, town.town_id, "admin") in memberships(app)
    (row,) = [a for a in audit_rows(app, "town.role.grant") if a["actor"] == "system:cli"]
    assert row["subject"] == f"user:{newbie}" and row["town_id"] == town.town_id
    assert row["details"]["role"] == "admin"
    before = state(app)
    again = _run(app, "--town", "sarabetsu", "--email", "newbie@example.com")
    assert again.exit_code == 0 and "already an admin" in again.output
    assert state(app) == before
    # The new admin can now appoint people on the console.
    api = town.api("newbie")
    resp = api.post(
        "/api/towns/sarabetsu/people", {"email": "customer@example.com", "role": "staff"}
    )
    assert resp.status_code == 201


def test_unknown_email_or_town_fails_and_writes_nothing(app, town):
    before = state(app)
    nobody = _run(app, "--town", "sarabetsu", "--email", "nobody@example.com")
    assert nobody.exit_code != 0 and "no_such_account" in nobody.output
    nowhere = _run(app, "--town", "nowhere", "--email", "newbie@example.com")
    assert nowhere.exit_code != 0 and "not_found" in nowhere.output
    assert state(app) == before
