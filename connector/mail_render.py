"""Messages to customers from editable templates: subject and body, then the RFC 5322 text.

A template is a text file `<name>.txt` whose first line is `Subject: ...`, then one empty
line, then the body; `$name` (or `${name}`) placeholders are filled in with `string.Template`
(`$$` is a dollar sign). The bundled defaults are in `connector/mail_templates/`; a file of the
same name in `[mail] templates_dir` wins, so wording changes need no code.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from importlib import resources
from pathlib import Path

from connector.errors import ConfigError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class MailTemplate:
    """A subject line and a body with placeholders, and where they were read from."""

    origin: str
    subject: str
    body: str

    def render(self, values: Mapping[str, str]) -> tuple[str, str]:
        """(subject, body) with every placeholder filled; ConfigError naming an unknown one."""
        # Values reach a header: no line breaks, whatever a buyer put in a PO number.
        flat = {key: _CONTROL.sub(" ", value) for key, value in values.items()}
        try:
            subject = string.Template(self.subject).substitute(flat)
            body = string.Template(self.body).substitute(values)
        except KeyError as exc:
            known = ", ".join(f"${key}" for key in sorted(values))
            raise ConfigError(
                f"mail template {self.origin}: unknown placeholder ${exc.args[0]} (known: {known})"
            ) from None
        except ValueError as exc:
            raise ConfigError(f"mail template {self.origin}: {exc} (write $$ for a dollar sign)") from None
        return " ".join(subject.split()), body


def load_template(name: str, templates_dir: Path | None) -> MailTemplate:
    """The template `name` from `templates_dir` if it has one, else the bundled default."""
    if templates_dir is not None and (templates_dir / f"{name}.txt").is_file():
        path = templates_dir / f"{name}.txt"
        try:
            text, origin = path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"mail template {path}: cannot be read: {exc}") from None
    else:
        bundled = resources.files("connector").joinpath("mail_templates", f"{name}.txt")
        if not bundled.is_file():
            raise ConfigError(f"mail template {name}.txt: there is no such template")
        text, origin = bundled.read_text(encoding="utf-8"), f"(bundled) {name}.txt"
    return parse_template(text, origin)


def parse_template(text: str, origin: str) -> MailTemplate:
    """Split `Subject: ...`, an empty line, and the body."""
    first, _, rest = text.replace("\r\n", "\n").partition("\n")
    if not first.lower().startswith("subject:") or not first[len("subject:") :].strip():
        raise ConfigError(f"mail template {origin}: the first line must be 'Subject: ...'")
    if rest[:1] not in ("\n", ""):
        raise ConfigError(f"mail template {origin}: an empty line must follow the subject line")
    body = rest[1:]
    return MailTemplate(
        origin=origin, subject=first[len("subject:") :].strip(), body=body.rstrip("\n") + "\n"
    )


def message_id_for(dedupe_key: str, domain: str) -> str:
    """The Message-ID of a planned message: the same request always has the same one."""
    return f"<{dedupe_key}@po-connector.{domain}>"


def build_message(
    *,
    sender: str,
    sender_name: str,
    recipient: str,
    reply_to: str,
    subject: str,
    body: str,
    message_id: str,
    date: datetime,
    in_reply_to: str = "",
) -> str:
    """The message as it goes out: headers and a plain-text body, 7-bit, CRLF line ends; a reply
    names the message it answers (`In-Reply-To`, `References`), so it threads with it."""
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((sender_name, sender)) if sender_name else sender
    message["To"] = recipient
    if reply_to != sender:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    plain = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    message.set_content(body, charset="utf-8", cte="7bit" if plain else "quoted-printable")
    return message.as_bytes().decode("ascii")
