"""A durable spool directory of received cXML documents, one file per payloadID.

The receiver stores each document here before it answers the buyer, and the `cxml` source reads
from here later. A document is written to a temporary file, fsynced, then hard-linked to its
final name `<sha256(payloadID)>.xml` and the directory is fsynced: the final name appears only
for a complete document, and a link that finds the name taken is a replay. Nothing here deletes
a stored document.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from adapters.durable import publish_new, sync_directory

_SUFFIX = ".xml"


def spool_file_name(payload_id: str) -> str:
    """The file name a payloadID is stored under: safe whatever the payloadID contains."""
    return hashlib.sha256(payload_id.encode("utf-8")).hexdigest() + _SUFFIX


class CxmlSpool:
    """Stores raw documents durably by payloadID and lists them oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, payload_id: str) -> Path:
        """Where the document with this payloadID is (or would be) stored."""
        return self.directory / spool_file_name(payload_id)

    def store(self, payload_id: str, data: bytes) -> bool:
        """Store `data` under `payload_id`; False when it was already stored (a replay).

        Raises OSError when the document could not be made durable; then the caller must not
        acknowledge it.
        """
        final = self.path_of(payload_id)
        created = False if final.exists() else self._link_new(final, data)
        # Synced on a replay too: an earlier store may have linked the file and then failed here.
        self._sync_directory()
        return created

    def _link_new(self, final: Path, data: bytes) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        return publish_new(final, data, prefix=".incoming-")

    def list(self) -> list[Path]:
        """Every stored document, oldest first (then by name, for a stable order)."""
        if not self.directory.is_dir():
            return []
        return sorted(
            (p for p in self.directory.iterdir() if p.suffix == _SUFFIX and not p.name.startswith(".")),
            key=lambda p: (p.stat().st_mtime_ns, p.name),
        )

    def _sync_directory(self) -> None:
        sync_directory(self.directory)
