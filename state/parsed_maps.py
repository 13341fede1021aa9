"""The parse of a large map file, kept by the digest of its bytes, so an unchanged customer
master costs one row's read instead of a TOML parse of every customer.

One row per tenant and map (`role`, e.g. "customers"): a changed file replaces it. It is a
cache, never business state: a miss parses the file as before, and nothing else reads it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from state.tables import parsed_maps


def get(conn: Connection, tenant: str, role: str, digest: str) -> dict[str, Any] | None:
    """The parse stored for the map's bytes of this digest; None when none is (or another's is)."""
    body = conn.execute(
        select(parsed_maps.c.body_json).where(
            parsed_maps.c.tenant == tenant, parsed_maps.c.role == role, parsed_maps.c.digest == digest
        )
    ).scalar_one_or_none()
    if body is None:
        return None
    parsed = json.loads(body)
    return parsed if isinstance(parsed, dict) else None


def put(conn: Connection, tenant: str, role: str, digest: str, body_json: str, now: datetime) -> None:
    """Keep `body_json` as the parse of the map's bytes of `digest`, in place of any older one."""
    conn.execute(delete(parsed_maps).where(parsed_maps.c.tenant == tenant, parsed_maps.c.role == role))
    conn.execute(
        insert(parsed_maps).values(
            tenant=tenant, role=role, digest=digest, body_json=body_json, parsed_at=now
        )
    )
