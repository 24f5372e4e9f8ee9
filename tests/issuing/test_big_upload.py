"""The largest file a town may upload (MAX_ROWS rows) is previewed and confirmed in one request
each: 5,000 addresses -> 25 issueBatch calls of at most CHUNK_SIZE recipients (nothing sent
here: the outbox rows are what count)."""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.issuing.csv_upload import MAX_ROWS
from backend.issuing.services import CHUNK_SIZE
from tests.issuing.conftest import upload


def test_the_largest_file_is_previewed_and_confirmed(app, world):
    lines = ["recipient,amount"] + [f"0x{secrets.token_hex(20)},10" for _ in range(MAX_ROWS)]
    data = ("\n".join(lines) + "\n").encode()
    staff = world.api(world.staff)
    t0 = time.monotonic()
    r = upload(staff, "sarabetsu", data, key="big-upload")
    t1 = time.monotonic()
    assert r.status_code == 201, r.get_data(as_text=True)[:500]
    batch = r.get_json()["issuance"]
    assert batch["ready_rows"] == MAX_ROWS and batch["total"] == 10 * MAX_ROWS
    # 50,000 points is under the default four-eyes amount (100,000): confirmed at once.
    r = staff.post(f"/api/towns/sarabetsu/issuances/{batch['id']}/confirm")
    t2 = time.monotonic()
    assert r.get_json()["issuance"]["state"] == "confirmed"
    with app.app_context():
        sizes = [
            len(args[0])
            for args in get_db().session.scalars(
                sa.select(OutboxTx.args).where(OutboxTx.function == "issueBatch")
            )
        ]
    assert sorted(sizes) == [CHUNK_SIZE] * (MAX_ROWS // CHUNK_SIZE)
    print(f"preview of {MAX_ROWS} rows: {t1 - t0:.2f} s, confirm: {t2 - t1:.2f} s")
