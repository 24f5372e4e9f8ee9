"""Demo data for `make run`: 更別村 and 洞爺湖町 are partner towns.

`python -m backend.deploy --demo` has both towns' points declare each other (TownSpec.partners,
while the deployer still held SETTINGS_ROLE); this records the partnership the chain already
holds as active, so a Sarabetsu shop takes Lake Toya points and the other way round. On a chain
where the two points contracts do not declare each other (e.g. a deployment made before), it
records nothing: the towns' staff agree at /towns/<slug>/admin/partners instead.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from backend.core.db import get_db, utcnow
from backend.core.models import AuditLog
from backend.partners.models import ACTIVE, Partnership
from backend.regions.models import Town

log = logging.getLogger(__name__)

PARTNERS = {"sarabetsu": "toyako"}  # the demo's partner towns


def load_demo(town: Town) -> None:
    other_slug = PARTNERS.get(town.slug)
    if other_slug is None:
        return
    session = get_db().session
    other = session.scalar(select(Town).where(Town.slug == other_slug))
    if other is None or not town.points_address or not other.points_address:
        return
    a, b = sorted((town.id, other.id))
    if session.scalar(
        select(Partnership.id).where(Partnership.town_a_id == a, Partnership.town_b_id == b)
    ):
        return
    chain = current_app.extensions["chain"]
    declared = all(
        chain.read(
            me.points_address, "isPartner", them.points_address, artifact_name="RegionPoints"
        )
        for me, them in ((town, other), (other, town))
    )
    if not declared:
        log.warning(
            "demo: %s and %s are not partners on chain; not recorded", town.slug, other_slug
        )
        return
    now = utcnow()
    p = Partnership(
        town_a_id=a,
        town_b_id=b,
        status=ACTIVE,
        a_approved_at=now,
        b_approved_at=now,
        a_confirmed_at=now,
        b_confirmed_at=now,
    )
    session.add(p)
    session.flush()
    session.add(
        AuditLog(
            actor="demo",
            action="partnership.demo",
            subject_type="partnership",
            subject_id=str(p.id),
            reason="demo: partner towns declared at deploy",
            details={"town_ids": [a, b]},
        )
    )
    session.commit()
    print(f"demo partner towns: {town.slug} and {other_slug}")
