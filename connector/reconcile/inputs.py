"""Whether a sync's reconciliation would give what is stored already, and so may be skipped.

The digest covers what reconciling and planning read: the state's inputs
(`state.reconcile_checkpoints.inputs_digest`) and, from the configuration, the day it is
reconciled as of, the tenant, the reconcile, tax, credit and mail settings, the supplier, the
sinks (by name and type), the customer and SKU maps and the mail templates (by content), and
the product version. Secrets are never part of it: settings only name where secrets are.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

from connector.runtime import Connector
from connector.version import product_version


def settings_digest(app: Connector, as_of: date) -> str:
    """A SHA-256 of every setting and file reconciliation and request planning depend on."""
    settings = app.settings
    mappings = settings.mappings
    mail = settings.mail
    parts: dict[str, Any] = {
        "version": product_version(),
        "as_of": as_of.isoformat(),
        "tenant": app.tenant,
        "reconcile": settings.reconcile.model_dump(mode="json"),
        "tax": settings.tax.model_dump(mode="json"),
        "credit": settings.credit.model_dump(mode="json"),
        "default_net_days": settings.default_net_days,
        "supplier": app.supplier.model_dump(mode="json") if app.supplier else None,
        "sinks": [(block.get("name"), block.get("type")) for block in settings.sinks],
        "customers": _file_digest(app.loaded.resolve(mappings.customers)) if mappings.customers else None,
        "skus": _file_digest(app.loaded.resolve(mappings.skus)) if mappings.skus else None,
        "mail": mail.model_dump(mode="json", exclude={"password"}) if mail else None,
        "templates": _folder_digest(app.loaded.resolve(mail.templates_dir))
        if mail and mail.templates_dir
        else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:  # the map's own loading reports it; here it only makes a new digest
        return f"unreadable: {exc.strerror}"


def _folder_digest(folder: Path) -> dict[str, str]:
    try:
        files = sorted(path for path in folder.iterdir() if path.is_file())
    except OSError as exc:
        return {"": f"unreadable: {exc.strerror}"}
    return {path.name: _file_digest(path) for path in files}
