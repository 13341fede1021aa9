"""`inspect FILE`: parse one e-mail, CSV or cXML file with the configured mappings, store nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.config import LoadedConfig
from connector.errors import ConfigError, InputProblem
from connector.ports import AdapterContext, AdapterKind, SourceRecord
from connector.registry import build


def _email_source(loaded: LoadedConfig | None) -> Any:
    """The configured `email-csv` source (its mapping and sender profiles), or None."""
    if loaded is None:
        return None
    for block in loaded.settings.sources:
        if block.get("type") == "email-csv":
            if block.get("imap"):  # inspect reads a local file: no mailbox login needed
                block = {k: v for k, v in block.items() if k != "imap"} | {"maildir": "."}
            context = AdapterContext(tenant=loaded.settings.tenant, base_dir=loaded.base_dir)
            return build("sources", AdapterKind.SOURCE, block, context)
    return None


def inspect_file(path: Path, loaded: LoadedConfig | None) -> tuple[list[SourceRecord], list[InputProblem]]:
    """Canonical POs found in `path`, and the problems met (rows, fields, values)."""
    from adapters.email_csv import parse_csv_file, parse_message_file
    from mappings.csv_mapping import load_mapping

    suffix = path.suffix.lower()
    if suffix in (".xml", ".cxml"):
        from adapters.cxml_source import parse_cxml_file

        batches = [parse_cxml_file(path, source="inspect")]
    elif suffix in (".eml", ".csv", ".txt"):
        source = _email_source(loaded)
        name = source.name if source else "inspect"
        mapping = source.mapping if source else load_mapping("csv_default")
        if suffix == ".csv":
            batches = [parse_csv_file(path, mapping, source=name, buyer_id="")]
        else:
            batches = parse_message_file(
                path,
                mapping,
                source=name,
                senders=source.config.senders if source else {},
                profiles=source.profiles if source else None,
            )
    else:
        raise ConfigError(f"inspect: {path.name}: unknown file type {suffix!r} (use .eml, .csv or .xml)")
    records = [record for batch in batches for record in batch.records]
    problems = [problem for batch in batches for problem in batch.rejections]
    return records, problems
