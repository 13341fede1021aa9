"""Who may post cXML orders to us: the configured buyers and the credentials they must present."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from adapters.cxml_envelope import Credential, CxmlHeader
from connector.secrets import resolve_secret
from connector.values import http_url


@dataclass(frozen=True)
class BuyerCredential:
    """What one buyer must present: From, our To identity, Sender and the shared secret.

    Empty `to_domain` accepts any domain for our identity; empty sender fields mean the Sender
    is the buyer itself (From domain and identity).
    """

    from_domain: str
    from_identity: str
    to_identity: str
    shared_secret: str = field(repr=False)
    to_domain: str = ""
    sender_domain: str = ""
    sender_identity: str = ""

    def accepts(self, header: CxmlHeader, sender_secrets: Iterable[tuple[Credential, str]]) -> bool:
        """True when the envelope names this buyer, us, and carries the right secret."""
        if not any(c.matches(self.from_domain, self.from_identity) for c in header.from_credentials):
            return False
        if not any(
            c.identity == self.to_identity
            and (not self.to_domain or c.domain.casefold() == self.to_domain.casefold())
            for c in header.to_credentials
        ):
            return False
        domain = self.sender_domain or self.from_domain
        identity = self.sender_identity or self.from_identity
        expected = self.shared_secret.encode("utf-8")
        return any(
            credential.matches(domain, identity) and hmac.compare_digest(secret.encode("utf-8"), expected)
            for credential, secret in sender_secrets
        )


class CxmlBuyerConfig(BaseModel):
    """A buyer allowed to post OrderRequests, as configured; the secret comes from env or file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    from_domain: str
    from_identity: str
    to_identity: str
    to_domain: str = ""
    sender_domain: str = ""
    sender_identity: str = ""
    shared_secret_env: str | None = None
    shared_secret_file: Path | None = None
    # The buyer's cXML endpoint for ConfirmationRequests (PO acknowledgements); empty: none sent.
    confirmation_url: str = ""

    @field_validator("confirmation_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, example="https://buyer.example/cxml") if value else value

    def credential(self, base_dir: Path = Path(".")) -> BuyerCredential:
        """The credential with its shared secret resolved (and registered for redaction)."""
        secret = resolve_secret(
            env=self.shared_secret_env,
            file=self.shared_secret_file,
            key=f"buyers.{self.name}.shared_secret",
            base_dir=base_dir,
        )
        return BuyerCredential(
            from_domain=self.from_domain,
            from_identity=self.from_identity,
            to_identity=self.to_identity,
            shared_secret=secret,
            to_domain=self.to_domain,
            sender_domain=self.sender_domain,
            sender_identity=self.sender_identity,
        )
