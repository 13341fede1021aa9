"""`[mail]`: how messages to customers (renewal PO requests) are written and sent.

Without a `[mail]` block nothing is planned or sent. `transport = "files"` writes each message
as an `.eml` file into `directory` (no network: the bundled example); `"smtp"` hands it to an
SMTP server with the standard library. The password comes from `password_env` or
`password_file`, never from the file itself.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def address_text(value: str, key: str) -> str:
    """A plain e-mail address (local@domain, no display name, no spaces), or ValueError."""
    address = value.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() or c in '<>,;"' for c in address):
        raise ValueError(f"{key} must be an e-mail address such as po@vendor.example, got {value!r}")
    return address


class MailSettings(BaseModel):
    """The sender of messages to customers: transport, server, identity, templates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["smtp", "files"] = "files"
    # files transport
    directory: Path = Path("out/mail")
    # smtp transport
    host: str = ""
    port: int | None = Field(default=None, ge=1, le=65535)  # default: 465 for ssl, else 587 (25: none)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    ca_file: Path | None = None  # extra CA bundle to trust (a private relay's CA)
    username: str = ""
    password: str = ""  # refused: use password_env or password_file
    password_env: str = ""
    password_file: Path | None = None
    timeout: float = Field(default=30, gt=0, le=600)
    # identity and content
    from_address: str
    from_name: str = ""
    po_inbox: str = ""  # where customers send their POs (Reply-To); default from_address
    templates_dir: Path | None = None  # `<name>.txt` there wins over the bundled template
    renewal_requests: bool = True
    # e-mailed POs are acknowledged by a reply to the message they came in
    acknowledgements: bool = True

    @field_validator("password")
    @classmethod
    def _no_inline_password(cls, value: str) -> str:
        if value:
            raise ValueError(
                "secrets must not be written in the config; "
                "set password_env (an environment variable) or password_file (a file) instead"
            )
        return value

    @field_validator("from_address", "po_inbox")
    @classmethod
    def _address(cls, value: str) -> str:
        return address_text(value, "the address") if value else value

    @model_validator(mode="after")
    def _transport_needs(self) -> MailSettings:
        if self.transport == "smtp":
            if not self.host.strip():
                raise ValueError("transport = 'smtp' needs host")
            if self.security == "none" and self.username and not is_loopback(self.host):
                raise ValueError(
                    f"security = 'none' would send the password in clear to {self.host!r}; "
                    "use security = 'starttls' or 'ssl' (plain AUTH only to a loopback host)"
                )
            if self.username and not (self.password_env or self.password_file):
                raise ValueError("username needs password_env or password_file")
        return self

    @property
    def smtp_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"ssl": 465, "starttls": 587, "none": 25}[self.security]

    @property
    def reply_to(self) -> str:
        return self.po_inbox or self.from_address

    @property
    def domain(self) -> str:
        """The vendor's mail domain, which Message-IDs end in."""
        return self.from_address.rpartition("@")[2].lower()
