"""The `xero` sink's configuration: one Xero organisation, how invoices are coded in it, and the
credentials it is reached with (a fixed bearer token, or OAuth2 with rotated refresh tokens)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

import requests
from pydantic import Field, field_validator, model_validator

from adapters.oauth_refresh import RefreshTokenAuth
from adapters.xero_payload import InvoiceMapping
from connector.http import RetryPolicy
from connector.ports import AdapterConfig, AdapterContext
from connector.secrets import resolve_secret
from connector.tax import TaxCodeMap
from connector.values import tax_table_key

ALL_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED")


class XeroConfig(AdapterConfig):
    """One Xero organisation (tenant) and how invoices are coded in it."""

    type: str = "xero"
    base_url: str = "https://api.xero.com/api.xro/2.0"
    tenant_id: str = Field(min_length=1)
    token_url: str = "https://identity.xero.com/connect/token"  # noqa: S105 - a URL, not a secret
    client_id: str = ""
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    refresh_token_file: Path | None = None
    refresh_token_env: str | None = None  # the first refresh token, until the file exists
    access_token_env: str | None = None  # a fixed access token instead of refreshing (tests)
    contact_ids: dict[str, str] = Field(default_factory=dict)
    account_code: str = Field(default="200", min_length=1)
    item_codes: dict[str, str] = Field(default_factory=dict)
    status: Literal["AUTHORISED", "SUBMITTED", "DRAFT"] = "AUTHORISED"
    line_amount_types: Literal["Exclusive", "Inclusive", "NoTax"] = "Exclusive"
    # Our tax treatment -> the organisation's TaxType: { "S:20" = "OUTPUT2", "AE" = "ECZROUTPUTSERVICES" }
    tax_types: dict[str, str] = Field(default_factory=dict)
    lookup_statuses: tuple[str, ...] = ALL_STATUSES
    batch_size: int = Field(default=50, ge=1, le=50)
    per_minute: int = Field(default=60, ge=1)
    concurrency: int = Field(default=5, ge=1)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    max_wait: float = Field(default=120.0, ge=0)

    @field_validator("contact_ids")
    @classmethod
    def _contact_ids_are_guids(cls, value: dict[str, str]) -> dict[str, str]:
        for customer, contact_id in value.items():
            try:
                uuid.UUID(contact_id)
            except ValueError:
                raise ValueError(
                    f"contact_ids[{customer!r}]: {contact_id!r} is not a Xero ContactID (a GUID)"
                ) from None
        return value

    @field_validator("tax_types")
    @classmethod
    def _tax_type_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tax_type in value.items():
            tax_table_key("tax_types", key, tax_type)
            if not tax_type.strip() or tax_type != tax_type.strip().upper():
                raise ValueError(
                    f"tax_types[{key!r}] = {tax_type!r}: a Xero TaxType is an upper-case code such as OUTPUT2"
                )
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> XeroConfig:
        if self.access_token_env:
            return self
        missing = [
            key
            for key, present in (
                ("client_id", bool(self.client_id)),
                (
                    "client_secret_env or client_secret_file",
                    bool(self.client_secret_env or self.client_secret_file),
                ),
                ("refresh_token_file", self.refresh_token_file is not None),
            )
            if not present
        ]
        if missing:
            raise ValueError(
                f"set access_token_env, or the refresh-token settings; missing {', '.join(missing)}"
            )
        return self

    def invoice_mapping(self) -> InvoiceMapping:
        """How invoices are coded in this organisation: the mapping rules this config selects."""
        return InvoiceMapping(
            contact_ids=self.contact_ids,
            account_code=self.account_code,
            item_codes=self.item_codes,
            status=self.status,
            line_amount_types=self.line_amount_types,
            tax_types=TaxCodeMap(self.tax_types),
        )


class BearerToken(requests.auth.AuthBase):
    """A fixed access token sent as `Authorization: Bearer` (tests and one-off runs)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


def auth_from(
    config: XeroConfig, context: AdapterContext, retry: RetryPolicy | None
) -> requests.auth.AuthBase:
    """A fixed bearer token when `access_token_env` is set, else OAuth2 with rotated refresh tokens."""
    if config.access_token_env:
        return BearerToken(resolve_secret(env=config.access_token_env, key="access_token"))
    assert config.refresh_token_file is not None  # the config validator saw to it
    token_file = context.resolve(config.refresh_token_file)
    initial = None
    if config.refresh_token_env and not token_file.exists():
        initial = resolve_secret(env=config.refresh_token_env, key="refresh_token")
    return RefreshTokenAuth(
        token_url=config.token_url,
        client_id=config.client_id,
        client_secret=resolve_secret(
            env=config.client_secret_env,
            file=config.client_secret_file,
            key="client_secret",
            base_dir=context.base_dir,
        ),
        token_file=token_file,
        initial_refresh_token=initial,
        name=f"{config.name} OAuth",
        timeout=(config.connect_timeout, config.read_timeout),
        retry=retry,
    )
