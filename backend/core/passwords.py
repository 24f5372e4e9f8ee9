"""Hashing of passwords and PINs, in one place: werkzeug's scrypt (N=2^15, r=8, p=1: 32 MiB and
about 0.1 s of CPU per hash, which is the point: a stolen table is slow to guess).

Each stored hash carries its method and parameters, so checking needs no setting and a change
of HASH_METHOD applies to new hashes only. The test suite lowers N (tests/conftest.py): it
hashes thousands of passwords and PINs, and the cost is not what those tests are about.
"""

from __future__ import annotations

from werkzeug.security import generate_password_hash

HASH_METHOD = "scrypt"


def hash_secret(secret: str) -> str:
    """The salted scrypt hash of a password or PIN, for werkzeug's check_password_hash."""
    return generate_password_hash(secret, method=HASH_METHOD)
