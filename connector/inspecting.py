"""`inspect FILE`: parse one e-mail, CSV or cXML file with the configured mappings, store nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.config import LoadedConfig
from connector.errors import ConfigError, InputProblem
from connector.ports import SourceRecord


def _email_settings(loaded: LoadedConfig | None) -> dict[str, Any]:
    if loaded is None:
        return {"name": "inspect", "mapping": "csv_default", "senders": {}}
    for block in loaded.settings.sources:
        if block.get("type") == "email-csv":
            return {
                "name": block["name"],
                "mapping": block.get("mapping", "csv_default"),
                "senders": block.get("senders", {}),
            }
    return {"name": "inspect", "mapping": "csv_default", "senders": {}}


def inspect_file(path: Path, loaded: LoadedConfig | None) -> tuple[list[SourceRecord], list[InputProblem]]:
    """Canonical POs found in `path`, and the problems met (rows, fields, values)."""
    from adapters.email_csv import parse_csv_file, parse_message_file
    from mappings.csv_mapping import load_mapping

    suffix = path.suffix.lower()
    settings = _email_settings(loaded)
    if suffix in (".xml", ".cxml"):
        from adapters.cxml_source import parse_cxml_file

        batches = [parse_cxml_file(path, source="inspect")]
    elif suffix in (".eml", ".csv", ".txt"):
        mapping_name = settings["mapping"]
        mapping_path = (
            loaded.resolve(mapping_name) if loaded and str(mapping_name).endswith(".toml") else mapping_name
        )
        mapping = load_mapping(mapping_path)
        if suffix == ".csv":
            batches = [parse_csv_file(path, mapping, source=settings["name"], buyer_id="")]
        else:
            batches = parse_message_file(path, mapping, source=settings["name"], senders=settings["senders"])
    else:
        raise ConfigError(f"inspect: {path.name}: unknown file type {suffix!r} (use .eml, .csv or .xml)")
    records = [record for batch in batches for record in batch.records]
    problems = [problem for batch in batches for problem in batch.rejections]
    return records, problems
