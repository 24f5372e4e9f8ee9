"""Indexer handlers are registered explicitly, once, in one order (backend/composition.py):
importing a domain's modules registers nothing."""

from __future__ import annotations

import importlib

from backend.chain import api
from backend.composition import domain_handlers, register_handlers


def test_importing_a_domain_registers_no_handler():
    before = api.registered_handlers()
    for name in (
        "claims.handlers",
        "dao.handlers",
        "issuing.handlers",
        "merchants.handlers",
        "partners.handlers",
        "points.handlers",
        "premium.handlers",
        "residency.handlers",
        "shop.handlers",
        "notifications.handlers",
    ):
        importlib.import_module(f"backend.{name}")
    for name in (
        "claims.tasks",
        "dao.tasks",
        "issuing.tasks",
        "merchants.tasks",
        "points.tasks",
        "premium.tasks",
        "shop.tasks",
        "notifications.tasks",
    ):
        importlib.import_module(f"backend.{name}")
    assert api.registered_handlers() == before


def test_every_domain_handler_registers_once_in_the_composition_order():
    register_handlers()
    register_handlers()  # every app a process builds registers again: a no-op
    declared = domain_handlers()
    registered = api.registered_handlers()
    assert [h for h in registered if h in declared] == list(declared)
    assert len(set(declared)) == len(declared)
    domains = [h.apply.__module__.split(".")[1] for h in declared]
    # points records a Transfer before merchants marks the charge it paid; issuing marks a
    # chunk confirmed after points annotated its PointsBatchIssued; partners records a partner
    # payment for the clearing (no order with merchants needed); the shop's last; residency
    # handles only ResidentPass's own events (no order with the others needed); claims marks
    # its transfer confirmed after points recorded the Transfer (ADR 0017); premium marks a
    # purchase issued from its PointsIssued (no order with points needed); notifications last:
    # they read what the others made of the same events (a charge paid, a poll's id)
    order = [
        "dao",
        "points",
        "premium",
        "issuing",
        "claims",
        "partners",
        "merchants",
        "shop",
        "residency",
        "notifications",
    ]
    assert domains == sorted(domains, key=order.index)
