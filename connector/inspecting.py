"""`inspect FILE`: parse one local file with the source that reads its kind, store nothing.

The source is any registered adapter whose class declares the `inspect` capability and lists
the file's suffix (see `connector.ports.FileInspector`); a configured source of that type is
preferred, so its mapping, sender table and profiles apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.config import LoadedConfig
from connector.errors import ConfigError, InputProblem
from connector.ports import AdapterContext, AdapterKind, Capability, SourceRecord
from connector.registry import AdapterInfo, discover


def _inspectors(adapters: dict[str, AdapterInfo]) -> dict[str, AdapterInfo]:
    return {
        name: info
        for name, info in adapters.items()
        if info.kind == AdapterKind.SOURCE and Capability.INSPECT in info.capabilities
    }


def inspect_file(
    path: Path, loaded: LoadedConfig | None, adapters: dict[str, AdapterInfo] | None = None
) -> tuple[list[SourceRecord], list[InputProblem]]:
    """Canonical POs found in `path`, and the problems met (rows, fields, values)."""
    adapters = adapters if adapters is not None else discover()
    suffix = path.suffix.lower()
    able = _inspectors(adapters)
    inspectors = {name: info for name, info in able.items() if suffix in info.factory.inspect_suffixes}
    if not inspectors:
        known = sorted({s for info in able.values() for s in info.factory.inspect_suffixes})
        raise ConfigError(f"inspect: {path.name}: unknown file type {suffix!r} (use {', '.join(known)})")
    block: dict[str, Any] | None = None
    chosen = inspectors[min(inspectors)]
    context = AdapterContext()
    if loaded is not None:
        context = AdapterContext(tenant=loaded.settings.tenant, base_dir=loaded.base_dir)
        block = next((b for b in loaded.settings.sources if b.get("type") in inspectors), None)
        if block is not None:
            chosen = inspectors[block["type"]]
    batches = chosen.factory.inspect_file(path, block, context)
    records = [record for batch in batches for record in batch.records]
    problems = [problem for batch in batches for problem in batch.rejections]
    return records, problems
