"""The staff console's front page at /towns/<slug>/admin: town staff reach it and see the
sections; someone with no role in the town gets 403, and nobody signed in is sent to log in."""

from __future__ import annotations


def test_staff_see_the_console_with_its_sections(world):
    page = world.api(world.staff).client.get(
        "/towns/sarabetsu/admin", headers={"Accept-Language": "ja"}
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "職員コンソール" in html and "役場職員" in html
    assert 'href="/towns/sarabetsu/shops"' in html and 'href="/towns/sarabetsu/settlements"' in html


def test_staff_of_another_town_and_customers_are_refused(world):
    assert world.api(world.other_staff).client.get("/towns/sarabetsu/admin").status_code == 403
    assert world.api(world.customer).client.get("/towns/sarabetsu/admin").status_code == 403


def test_signed_out_visitor_is_sent_to_log_in(client, world):
    resp = client.get("/towns/sarabetsu/admin")
    assert resp.status_code == 302 and "/login?next=/towns/sarabetsu/admin" in resp.location


def test_unknown_town_is_404(world):
    assert world.api(world.staff).client.get("/towns/nowhere/admin").status_code == 404
