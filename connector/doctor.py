"""`doctor`: checks the config, the state database and every source and sink, with a hint each.

Adapters may offer `check() -> None` (raising a ConnectorError on a problem); HTTP adapters
without it are probed by one request to their base URL: any HTTP answer means reachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.exc import SQLAlchemyError

from connector.config import load_config
from connector.errors import ConfigError, ConnectorError
from connector.ports import AdapterKind
from connector.redact import GLOBAL_REDACTOR
from connector.registry import build, discover
from connector.runtime import Connector


@dataclass(frozen=True)
class Finding:
    """One check: what was checked, whether it is fine, and what to do when it is not."""

    subject: str
    ok: bool
    detail: str
    hint: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok       {self.subject}: {self.detail}"
        return f"PROBLEM  {self.subject}: {GLOBAL_REDACTOR(self.detail)}\n         hint: {self.hint}"


def _probe(adapter: Any) -> str | None:
    """Reachability of an adapter; None when fine, else the problem."""
    check = getattr(adapter, "check", None)
    if callable(check):
        check()
        return None
    client = getattr(adapter, "client", None)
    base_url = getattr(client, "base_url", None)
    if isinstance(base_url, str):
        try:
            requests.get(base_url, timeout=5)
        except requests.RequestException as exc:
            return f"cannot reach {GLOBAL_REDACTOR.url(base_url)}: {type(exc).__name__}"
        return None
    for attribute in ("directory", "maildir", "folder", "path", "spool_dir"):
        value = getattr(getattr(adapter, "config", None), attribute, None)
        if isinstance(value, Path):
            return (
                None if value.exists() or attribute == "spool_dir" else f"{attribute} {value} does not exist"
            )
    return None


def _adapter_findings(app: Connector) -> list[Finding]:
    findings = []
    registry = discover()
    sections = (
        ("sources", AdapterKind.SOURCE),
        ("billing", AdapterKind.BILLING),
        ("sinks", AdapterKind.SINK),
    )
    for section, kind in sections:
        for block in getattr(app.settings, section):
            subject = f"{kind.value} {block['name']!r} ({block.get('type')})"
            try:
                adapter = build(section, kind, block, app.adapter_context, registry)
                problem = _probe(adapter)
            except ConnectorError as exc:
                problem = str(exc)
            if problem is None:
                findings.append(Finding(subject, True, "configured and reachable"))
            else:
                findings.append(Finding(subject, False, problem, _hint(section)))
    return findings


def _hint(section: str) -> str:
    if section == "sinks":
        return "check the sink's base_url/directory, network access and credentials (*_env / *_file)"
    return "check the source's address or folder, network access and credentials (*_env / *_file)"


def _state_findings(app: Connector) -> list[Finding]:
    from state.db import current_revision, head_revision, known_revisions, open_problem

    try:
        current = current_revision(app.engine)
    except (SQLAlchemyError, ImportError) as exc:
        problem = open_problem(app.engine.url.render_as_string(hide_password=False), exc)
        return [Finding("state", False, f"state.url: {problem}", "fix [state] url or start the server")]
    head = head_revision()
    if current == head:
        return [Finding("state", True, f"database at revision {head}")]
    if current is None or current in known_revisions():
        detail = f"database at revision {current or 'empty'}; migrated to {head} on the next run"
        return [Finding("state", True, detail)]
    return [
        Finding(
            "state",
            False,
            f"database at revision {current}, which this version does not know (newest known {head})",
            "install the po-connector version that migrated this database",
        )
    ]


def _map_findings(app: Connector) -> list[Finding]:
    findings = []
    for name in ("customer_map", "sku_map"):
        try:
            getattr(app, name)
            findings.append(Finding(name.replace("_", " "), True, "loaded"))
        except ConfigError as exc:
            findings.append(
                Finding(name.replace("_", " "), False, str(exc), "fix the file named in [mappings]")
            )
    return findings


def _mail_findings(app: Connector) -> list[Finding]:
    """The mail transport, checked as a send would use it (nothing is sent)."""
    mail = app.settings.mail
    if mail is None:
        return []
    from connector.mail_transport import open_transport

    try:
        detail = open_transport(mail, app.loaded.base_dir).check()
    except ConnectorError as exc:
        hint = "check [mail] host, port, security, username and password_env / password_file"
        if mail.transport == "files":
            hint = "check [mail] directory and its permissions"
        return [Finding(f"mail ({mail.transport})", False, str(exc), hint)]
    return [Finding(f"mail ({mail.transport})", True, detail)]


def run_doctor(config: str | None) -> list[Finding]:
    """Every check, in order; a config that does not load stops the rest."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        return [Finding("config", False, str(exc), "fix the key named above; see config.example.toml")]
    findings = [Finding("config", True, f"{loaded.path} is valid")]
    try:
        app = Connector(loaded, migrate=False, probe=False)
    except ConfigError as exc:
        return [*findings, Finding("state", False, str(exc), "check [state] url")]
    findings += _state_findings(app)
    findings += _map_findings(app)
    findings += _mail_findings(app)
    findings += _adapter_findings(app)
    return findings
