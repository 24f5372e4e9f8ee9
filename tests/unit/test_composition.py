"""Indexer handlers are registered explicitly, once, in one order (backend/composition.py):
importing a domain's modules registers nothing."""

from __future__ import annotations

import importlib

from backend.chain import api
from backend.composition import domain_handlers, register_handlers


def test_importing_a_domain_registers_no_handler():
    before = api.registered_handlers()
    for name in (
        "dao.handlers",
        "issuing.handlers",
        "merchants.handlers",
        "partners.handlers",
        "points.handlers",
        "shop.handlers",
    ):
        importlib.import_module(f"backend.{name}")
    for name in ("dao.tasks", "issuing.tasks", "merchants.tasks", "points.tasks", "shop.tasks"):
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
    # payment for the clearing (no order with merchants needed); the shop's last
    order = ["dao", "points", "issuing", "partners", "merchants", "shop"]
    assert domains == sorted(domains, key=order.index)
