"""Keeps secrets out of logs, error text and the state database."""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"(secret|password|passwd|token|api[-_]?key|authorization|signature|credential|sharedsecret)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/:@\s]*:)[^/@\s]+@")


class Redactor:
    """Replaces every registered secret value, bearer tokens and sensitive query values."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        """Register a secret value; values shorter than 4 characters are ignored as too common."""
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, MASK)
        return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)

    def url(self, url: str) -> str:
        """The URL with the values of sensitive query parameters masked."""
        parts = urlsplit(url)
        if not parts.query:
            return self(url)
        query = [
            (key, MASK if _SENSITIVE_KEY.search(key) else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return self(urlunsplit(parts._replace(query=urlencode(query, safe="[]:,"))))


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every `scheme://user:password@` in it masked."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def is_sensitive_key(key: str) -> bool:
    """True for config or header names that hold secrets (a `token_url` is an address, not one)."""
    return bool(_SENSITIVE_KEY.search(key)) and not key.lower().endswith(("_url", "_uri"))


GLOBAL_REDACTOR = Redactor()
"""Process-wide redactor: secrets resolved from config are registered here and the log
formatter applies it to every record."""
