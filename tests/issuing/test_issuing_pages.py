"""The console's Issuing points pages (test client): staff see the forms in Japanese and
English, customers and other towns' staff get 403, signed out goes to log in; an upload shows
its preview and a bad file is a 4xx with the message and nothing written; confirm leads to the
progress page; the nav links the section; one person's issue with a bad amount is refused on
the page."""

from __future__ import annotations

import io
import re

from tests.issuing.conftest import counts

BASE = "/towns/sarabetsu/admin/issue"


def _csrf(client) -> str:  # type: ignore[no-untyped-def]
    html = client.get(BASE).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_staff_see_the_page_in_both_languages(world):
    client = world.api(world.staff).client
    ja = client.get(BASE, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "ポイント発行" in ja and "CSV ファイルで多くの人に" in ja
    en = client.get(BASE, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Issuing points" in en and "To many, from a CSV file" in en
    assert 'data-testid="no-programme"' not in en and "Thank-you points" in en  # the town's rows
    nav = client.get("/towns/sarabetsu/admin").get_data(as_text=True)
    assert f'href="{BASE}"' in nav


def test_wrong_people_are_refused(client, world):
    assert world.api(world.customer).client.get(BASE).status_code == 403
    assert world.api(world.other_staff).client.get(BASE).status_code == 403
    r = client.get(BASE)
    assert r.status_code == 302 and "/login" in r.location


def test_upload_preview_confirm_and_a_bad_file(app, world):
    client = world.api(world.staff).client
    token = _csrf(client)
    before = counts(app)
    bad = client.post(
        f"{BASE}/upload",
        data={
            "csrf_token": token,
            "key": "page-upload-0",
            "programme_id": "3",
            "reason": "Thanks",
            "file": (io.BytesIO(b"name,points\nx,1\n"), "bad.csv"),
        },
        content_type="multipart/form-data",
        headers={"Accept-Language": "en"},
    )
    assert bad.status_code == 400
    assert "The first line must name the columns" in bad.get_data(as_text=True)
    assert counts(app) == before
    csv = f"recipient,amount\n{world.customer},300\nnobody@example.com,5\n".encode()
    r = client.post(
        f"{BASE}/upload",
        data={
            "csrf_token": token,
            "key": "page-upload-1",
            "programme_id": "3",
            "reason": "Snow clearing",
            "file": (io.BytesIO(csv), "list.csv"),
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 303, r.get_data(as_text=True)
    page = client.get(r.location, headers={"Accept-Language": "en"}).get_data(as_text=True)
    # An e-mail with no account is not an error: its points are held for it (issue 14 §3).
    assert 'data-state="previewed"' in page and "2 rows will be issued." in page
    assert "Will be held for nobody@example.com until they sign up and confirm" in page
    confirm = re.search(r'action="([^"]+/confirm)"', page)
    assert confirm
    r = client.post(confirm.group(1), data={"csrf_token": token})
    assert r.status_code == 303
    page = client.get(r.location, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-state="confirmed"' in page and "<progress" in page
    assert 'http-equiv="refresh"' in page  # without JS the page refreshes itself


def test_one_person_bad_amount_is_refused_on_the_page(app, world):
    client = world.api(world.staff).client
    token = _csrf(client)
    before = counts(app)
    r = client.post(
        f"{BASE}/one",
        data={
            "csrf_token": token,
            "key": "page-one-1",
            "recipient": world.customer,
            "amount": "0",
            "programme_id": "3",
            "reason": "Thanks",
        },
        headers={"Accept-Language": "en"},
    )
    assert r.status_code == 400 and "whole number of points" in r.get_data(as_text=True)
    assert counts(app) == before
    r = client.post(
        f"{BASE}/one",
        data={
            "csrf_token": token,
            "key": "page-one-2",
            "recipient": world.customer,
            "amount": "250",
            "programme_id": "3",
            "reason": "Thanks",
        },
    )
    assert r.status_code == 303
    assert "confirmed" in client.get(r.location).get_data(as_text=True)


def test_four_eyes_on_the_pages(app, world, second_staff):
    staff = world.api(world.staff)
    assert staff.post("/api/towns/sarabetsu/money-settings", {"issue_four_eyes_amount": 100})
    client = staff.client
    token = _csrf(client)
    r = client.post(
        f"{BASE}/one",
        data={
            "csrf_token": token,
            "key": "page-four-eyes",
            "recipient": world.customer,
            "amount": "500",
            "programme_id": "3",
            "reason": "Prize",
        },
    )
    assert r.status_code == 303
    batch_url = r.location
    mine = client.get(batch_url).get_data(as_text=True)
    assert 'data-state="awaiting_approval"' in mine and 'data-testid="needs-second"' in mine
    approve = re.search(r'action="([^"]+/approve)"', mine)
    assert approve is None  # the creator is offered no approval
    before = counts(app)
    r = client.post(batch_url + "/approve", data={"csrf_token": token})
    assert r.status_code == 403 and counts(app) == before
    other = world.api(second_staff).client
    page = other.get(batch_url).get_data(as_text=True)
    approve = re.search(r'action="([^"]+/approve)"', page)
    assert approve
    r = other.post(approve.group(1), data={"csrf_token": _csrf(other)})
    assert r.status_code == 303
    assert 'data-state="approved"' in other.get(batch_url).get_data(as_text=True)
