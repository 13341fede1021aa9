"""Stable JSON for canonical records, and the content hashes computed from it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

# Fields that change on every pull without changing what the record says.
# The source's version label is kept beside the record but is not itself a change of content.
VOLATILE_FIELDS = frozenset(
    {"source_updated_at", "raw_sha256", "source_version", "origin_message", "origin_sender"}
)


def canonical_json(model: BaseModel) -> str:
    """Deterministic JSON: sorted keys, decimals and dates as strings."""
    return json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def content_hash(model: BaseModel, *, ignore: frozenset[str] = VOLATILE_FIELDS) -> str:
    """sha256 of the canonical JSON without volatile fields: equal hash = nothing changed."""
    data: dict[str, Any] = model.model_dump(mode="json", exclude=set(ignore) | {"revision"})
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
