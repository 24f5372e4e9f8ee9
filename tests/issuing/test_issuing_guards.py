"""Who may issue, what is refused with nothing written, four eyes, and the CSV's encodings:
customers and other towns' staff get 403; zero, negative and huge amounts, a missing reason,
bad files (too big, too many rows, no header, not text) are 4xx and write nothing; a Shift_JIS
file from Excel reads like UTF-8 with a BOM; above the town's issuing four-eyes amount a batch
waits for another member of staff (its creator cannot approve)."""

from __future__ import annotations

import pytest

from backend.core.db import get_db
from backend.issuing.csv_upload import MAX_FILE_BYTES, MAX_ROWS
from backend.issuing.models import IssuanceBatch
from tests.issuing.conftest import counts, upload
from tests.merchants.conftest import assert_error

URL = "/api/towns/sarabetsu/issuances"


def _rows(recipient: str, amount: object) -> dict[str, object]:
    return {
        "rows": [{"recipient": recipient, "amount": amount}],
        "programme_id": 3,
        "reason": "Thanks",
        "idempotency_key": "guard-key-1",
    }


def test_customers_and_other_towns_staff_are_refused(app, world):
    before = counts(app)
    for who in (world.customer, world.other_staff, world.clerk):
        api = world.api(who)
        assert_error(api.post(URL, _rows(world.customer, 10)), 403)
        assert_error(upload(api, "sarabetsu", b"recipient,amount\nx@example.com,1\n"), 403)
        assert_error(api.get(URL), 403)
    assert_error(world.api(world.staff).__class__(app).post(URL, _rows(world.customer, 10)), 401)
    assert counts(app) == before
    # Staff of Sarabetsu cannot read or confirm another town's batch through their own town.
    staff = world.api(world.staff)
    batch = staff.post(URL, _rows(world.customer, 10)).get_json()["issuance"]
    other = world.api(world.other_staff)
    assert_error(other.get(f"/api/towns/sarabetsu/issuances/{batch['id']}"), 403)
    assert_error(other.post(f"/api/towns/othertown/issuances/{batch['id']}/confirm"), 404)
    assert_error(other.post(f"/api/towns/sarabetsu/issuances/{batch['id']}/confirm"), 403)


@pytest.mark.parametrize("amount", [0, -5, 10_000_001, 2**256, "1.5", "ten", None, True])
def test_bad_amounts_are_refused_for_one_person_with_nothing_written(app, world, amount):
    from backend.core.db import get_db
    from backend.issuing.services import issuing_service

    before = counts(app)
    with app.test_request_context():
        from backend.core.errors import AppError

        with pytest.raises(AppError) as exc:
            issuing_service().issue_one(
                world.user(world.staff),
                world.town(),
                recipient=world.customer,
                amount=amount,
                programme_id=3,
                reason="Thanks",
                key="one-person-1",
            )
        assert exc.value.status == 400
        get_db().session.rollback()
    assert counts(app) == before


def test_bad_amounts_in_rows_are_row_errors_and_nothing_is_issued(app, world):
    staff = world.api(world.staff)
    body = {
        "rows": [
            {"recipient": world.customer, "amount": 0},
            {"recipient": world.neighbour, "amount": -3},
            {"recipient": world.clerk, "amount": 10**12},
        ],
        "programme_id": 3,
        "reason": "Thanks",
        "idempotency_key": "rows-bad-1",
    }
    r = staff.post(URL, body)
    assert r.status_code == 201
    batch = r.get_json()["issuance"]
    assert batch["ready_rows"] == 0 and batch["invalid_rows"] == 3
    before = counts(app)
    assert_error(staff.post(f"{URL}/{batch['id']}/confirm"), 409, "issuance_not_ready")
    assert counts(app) == before


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 201])
def test_a_missing_reason_is_refused_with_nothing_written(app, world, reason):
    staff = world.api(world.staff)
    before = counts(app)
    body = _rows(world.customer, 10) | {"reason": reason}
    assert_error(staff.post(URL, body), 400, "invalid_input")
    assert_error(
        upload(staff, "sarabetsu", b"recipient,amount\nfan@example.com,1\n", reason=reason or ""),
        400,
    )
    assert counts(app) == before


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"name,points\nfan@example.com,1\n", 400),  # no recipient/amount header
        (b"recipient,amount\n", 400),  # no rows
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\xfd", 400),  # not text
        (b"recipient,amount\n" + b"a@example.com,1\n" * (MAX_ROWS + 1), 400),
        (b"recipient,amount\n" + b"a" * MAX_FILE_BYTES, 413),
    ],
)
def test_bad_files_are_4xx_with_a_message_and_write_nothing(app, world, data, status):
    staff = world.api(world.staff)
    before = counts(app)
    err = assert_error(upload(staff, "sarabetsu", data), status)
    assert err["message"]
    assert counts(app) == before


def test_shift_jis_and_bom_files_read_the_same(app, world):
    staff = world.api(world.staff)
    text = (
        "受取人,ポイント,メモ\n"
        f"{world.customer},1000,川の清掃ありがとう\n{world.neighbour},500,草刈り\n"
    )
    bodies = []
    for n, data in enumerate([text.encode("cp932"), "\ufeff".encode() + text.encode("utf-8")]):
        r = upload(staff, "sarabetsu", data, key=f"enc-{n}-key")
        assert r.status_code == 201, r.get_data(as_text=True)
        bodies.append(r.get_json()["issuance"])
    for b in bodies:
        assert b["ready_rows"] == 2 and b["total"] == 1500
        assert [r["note"] for r in b["rows"]] == ["川の清掃ありがとう", "草刈り"]


def test_duplicates_and_unknown_recipients_are_flagged(app, world):
    staff = world.api(world.staff)
    data = (
        "recipient,amount\n"
        f"{world.customer},10\n"
        f"{world.customer.upper()},20\n"
        "C0000000000,5\n"
        "P123456789012,5\n"
        "0x52908400098527886e0F7030069857D2E4169EE7,5\n"
        "hello,5\n"
        f"{world.neighbour},1,000\n"
    ).encode()
    r = upload(staff, "sarabetsu", data)
    rows = r.get_json()["issuance"]["rows"]
    assert [x["status"] for x in rows] == ["ready"] + ["invalid"] * 5 + ["ready"]
    assert rows[1]["error"] == "2 行目と同じ受取人です。"  # in the default language, ja
    # An upload with the same key is the same batch (a double submit).
    again = upload(staff, "sarabetsu", data).get_json()["issuance"]
    assert again["id"] == r.get_json()["issuance"]["id"]


def test_four_eyes_creator_cannot_approve_another_staff_can(app, world, second_staff):
    staff = world.api(world.staff)
    r = staff.post("/api/towns/sarabetsu/money-settings", {"issue_four_eyes_amount": 1000})
    assert r.status_code == 200, r.get_data(as_text=True)
    body = _rows(world.customer, 1500) | {"idempotency_key": "four-eyes-1"}
    batch = staff.post(URL, body).get_json()["issuance"]
    r = staff.post(f"{URL}/{batch['id']}/confirm")
    assert r.get_json()["issuance"]["state"] == "awaiting_approval"
    before = counts(app)
    assert_error(staff.post(f"{URL}/{batch['id']}/approve"), 403, "second_approver_required")
    assert_error(world.api(world.other_staff).post(f"{URL}/{batch['id']}/approve"), 403)
    assert_error(world.api(world.customer).post(f"{URL}/{batch['id']}/approve"), 403)
    assert counts(app) == before
    second = world.api(second_staff)
    r = second.post(f"{URL}/{batch['id']}/approve")
    assert r.status_code == 200 and r.get_json()["issuance"]["state"] == "approved"
    assert r.get_json()["issuance"]["approved_by"] is not None
    after = counts(app)
    assert after["outbox_txs"] == before["outbox_txs"] + 1
    assert after["audit_log"] == before["audit_log"] + 2  # approve + the chunk's issue
    # Approving again changes nothing.
    assert second.post(f"{URL}/{batch['id']}/approve").status_code == 200
    assert counts(app) == after
    # Under the amount, no approval is needed.
    small = staff.post(URL, _rows(world.customer, 999) | {"idempotency_key": "four-eyes-2"})
    r = staff.post(f"{URL}/{small.get_json()['issuance']['id']}/confirm")
    assert r.get_json()["issuance"]["state"] == "confirmed"


def test_full_width_recipients_read_as_the_ascii_they_stand_for(app, world):
    """An address typed half in full-width (a Japanese keyboard, Excel) is the same person's,
    not an address of its own whose points would wait where nobody can claim them; a
    full-width customer code or ideographic spaces read the same way."""
    staff = world.api(world.staff)
    local, domain = world.customer.split("@")
    wide = "".join(chr(ord(c) + 0xFEE0) for c in local)  # ｃｕｓｔｏｍｅｒ
    data = (
        "recipient,amount\n"
        f"{wide}@{domain},10\n"
        f"\u3000{world.neighbour.upper().replace('@', '＠')}\u3000,20\n"
        f"{world.customer},30\n"
    ).encode()
    rows = upload(staff, "sarabetsu", data, key="full-width-1").get_json()["issuance"]["rows"]
    assert [(x["status"], x["held"]) for x in rows] == [
        ("ready", False),
        ("ready", False),
        ("invalid", False),
    ], rows
    assert rows[2]["error"] == "2 行目と同じ受取人です。"
    with app.app_context():
        from backend.accounts.services import custodial_addresses

        ids = [world.user(e).id for e in (world.customer, world.neighbour)]
        wallets = custodial_addresses(get_db().session, ids)
    assert [rows[0]["address"], rows[1]["address"]] == [wallets[i] for i in ids]


def test_a_file_name_with_control_characters_is_kept_without_them(app, world):
    """A NUL in the uploaded file's name (PostgreSQL cannot store it) was a 500."""
    staff = world.api(world.staff)
    data = f"recipient,amount\n{world.customer},10\n".encode()
    r = upload(staff, "sarabetsu", data, key="nul-name-1", name="名簿\x00\x1b.csv")
    assert r.status_code == 201, r.get_data(as_text=True)
    with app.app_context():
        batch = get_db().session.get(IssuanceBatch, r.get_json()["issuance"]["id"])
        assert batch is not None and batch.file_name == "名簿.csv"


def test_a_programme_closed_after_the_preview_is_not_issued_from(app, world, second_staff):
    """Staff close the programme between the preview and its confirmation (or approval): the
    confirmation is refused (409) with nothing queued, instead of chunks the chain refuses."""
    from backend.points.town_settings import TownSettingsService, town_programme

    def programme_active(active: bool) -> None:
        with app.app_context():
            s = get_db().session
            TownSettingsService(s).ensure_seeded(world.town())
            row = town_programme(s, world.town_id, 3)
            assert row is not None
            row.active = active
            s.commit()

    staff = world.api(world.staff)
    r = staff.post("/api/towns/sarabetsu/money-settings", {"issue_four_eyes_amount": 1000})
    assert r.status_code == 200, r.get_data(as_text=True)
    small = staff.post(URL, _rows(world.customer, 10) | {"idempotency_key": "closed-1"})
    large = staff.post(URL, _rows(world.customer, 5000) | {"idempotency_key": "closed-2"})
    small_id, large_id = (x.get_json()["issuance"]["id"] for x in (small, large))
    r = staff.post(f"{URL}/{large_id}/confirm")
    assert r.get_json()["issuance"]["state"] == "awaiting_approval"
    programme_active(False)
    before = counts(app)
    assert_error(staff.post(f"{URL}/{small_id}/confirm"), 409, "issuance_not_ready")
    second = world.api(second_staff)
    assert_error(second.post(f"{URL}/{large_id}/approve"), 409, "issuance_not_ready")
    assert counts(app) == before
    programme_active(True)
    r = staff.post(f"{URL}/{small_id}/confirm")
    assert r.get_json()["issuance"]["state"] == "confirmed"
    assert second.post(f"{URL}/{large_id}/approve").get_json()["issuance"]["state"] == "approved"
