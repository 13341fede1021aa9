"""`[mail]`: bad settings fail at load with the key named, and a password is never inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import load_config
from connector.errors import ConfigError


def load(tmp_path: Path, mail: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(f'[mail]\nfrom_address = "billing@vendor.example"\n{mail}\n', encoding="utf-8")
    return load_config(path).settings.mail


def test_an_inline_password_is_refused_and_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            'transport = "smtp"\nhost = "smtp.example.com"\nusername = "u"\npassword = "hunter2-Secret"',
        )
    text = str(caught.value)
    assert "mail.password" in text and "password_env" in text and "hunter2" not in text


@pytest.mark.parametrize(
    ("mail", "problem"),
    [
        ('transport = "smtp"', "needs host"),
        (
            'transport = "smtp"\nhost = "smtp.example.com"\nsecurity = "none"\n'
            'username = "u"\npassword_env = "P"',
            "in clear",
        ),
        ('transport = "smtp"\nhost = "smtp.example.com"\nusername = "u"', "password_env or password_file"),
        ('po_inbox = "not an address"', "mail.po_inbox"),
        ('transport = "pigeon"', "mail.transport"),
    ],
)
def test_a_bad_mail_block_names_what_is_wrong(tmp_path: Path, mail: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(tmp_path, mail)


def test_plain_auth_to_a_loopback_relay_and_the_defaults(tmp_path: Path) -> None:
    mail = load(
        tmp_path,
        'transport = "smtp"\nhost = "127.0.0.1"\nsecurity = "none"\nusername = "u"\npassword_env = "P"',
    )
    assert (
        mail.smtp_port == 25 and mail.reply_to == "billing@vendor.example" and mail.domain == "vendor.example"
    )  # type: ignore[attr-defined]
    files = load(tmp_path, "")
    assert files.transport == "files" and files.directory == Path("out/mail")  # type: ignore[attr-defined]
