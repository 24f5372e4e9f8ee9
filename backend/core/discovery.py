"""Import every domain's models and tasks modules, so adding a domain needs no central edit.

Modules are found by name: `models.py`, `*_models.py`, `tasks.py`, `*_tasks.py` in any package
under backend/ (including backend/chain).
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

BACKEND = Path(__file__).resolve().parent.parent


@functools.cache  # the files do not change while the process runs; each app asks again
def _modules(kind: str) -> tuple[str, ...]:
    found = []
    for path in sorted(BACKEND.rglob("*.py")):
        if "migrations" in path.parts or "abi" in path.parts or path.parent == BACKEND:
            continue
        stem = path.stem
        if stem == kind or stem.endswith(f"_{kind}"):
            rel = path.relative_to(BACKEND.parent).with_suffix("")
            found.append(".".join(rel.parts))
    return tuple(found)


def import_all(kind: str) -> list[str]:
    """Import every backend module of `kind` ("models" or "tasks"); return their names."""
    names = _modules(kind)
    for name in names:
        importlib.import_module(name)
    return list(names)
