"""The `quickbooks` sink's configuration: one QuickBooks Online company (realm) and its codes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from adapters.quickbooks_payload import MAX_BATCH_ITEMS, QuickBooksRefs
from connector.ports import AdapterConfig
from connector.tax import TaxCodeMap
from connector.values import http_url, tax_table_key


class QuickBooksConfig(AdapterConfig):
    """One QuickBooks Online company (realm) and how our codes map onto its entities."""

    type: str = "quickbooks"
    base_url: str = "https://quickbooks.api.intuit.com"
    realm_id: str = Field(min_length=1)
    token_url: str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105 - a URL
    client_id: str = Field(min_length=1)
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    refresh_token_file: Path
    refresh_token_env: str | None = None
    po_custom_field_id: str = "1"
    po_custom_field_name: str = "PO Number"
    customer_refs: dict[str, str] = Field(default_factory=dict)
    item_refs: dict[str, str] = Field(default_factory=dict)
    default_item_ref: str = "1"
    terms_refs: dict[str, str] = Field(default_factory=dict)
    # "us": automated sales tax, lines TAX/NON and the plan's TotalTax stated; "global": a
    # TaxCode id per line from `tax_codes` (keys "S:20", "S", "AE"...), tax excluded.
    tax_mode: Literal["none", "us", "global"] = "none"
    tax_codes: dict[str, str] = Field(default_factory=dict)
    txn_tax_code: str = ""  # US only: the TxnTaxCodeRef sent beside TotalTax, if any
    minor_version: int = Field(default=75, ge=1)
    batch_size: int = Field(default=MAX_BATCH_ITEMS, ge=1, le=MAX_BATCH_ITEMS)
    concurrency: int = Field(default=10, ge=1)
    per_minute: int = Field(default=500, ge=1)
    throttle_wait_seconds: float = Field(default=60.0, ge=0)  # QBO: wait 60 s after a 429
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    @field_validator("base_url", "token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)  # base_url and token_url

    @field_validator("realm_id")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError(f"a QuickBooks realm id is numeric, got {value!r}")
        return value

    @field_validator("tax_codes")
    @classmethod
    def _tax_code_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, code in value.items():
            tax_table_key("tax_codes", key, code)
            if not str(code).strip():
                raise ValueError(f"tax_codes[{key!r}]: the TaxCode id is empty")
        return value

    @model_validator(mode="after")
    def _secret_source(self) -> QuickBooksConfig:
        if not self.client_secret_env and not self.client_secret_file:
            raise ValueError("set client_secret_env or client_secret_file")
        if self.tax_mode == "global" and not self.tax_codes:
            raise ValueError('tax_mode = "global" needs tax_codes (e.g. { "S:20" = "<TaxCode id>" })')
        if self.tax_codes and self.tax_mode != "global":
            raise ValueError(
                f'tax_codes is for tax_mode = "global", not {self.tax_mode!r} '
                "(US companies mark lines TAX or NON)"
            )
        if self.txn_tax_code and self.tax_mode != "us":
            raise ValueError(f'txn_tax_code {self.txn_tax_code!r} is for tax_mode = "us" only')
        return self

    def refs(self) -> QuickBooksRefs:
        """How this company's entities are named in an invoice: the mapping rules it selects."""
        return QuickBooksRefs(
            customer_refs=dict(self.customer_refs),
            item_refs=dict(self.item_refs),
            default_item_ref=self.default_item_ref,
            terms_refs=dict(self.terms_refs),
            po_field_id=self.po_custom_field_id,
            po_field_name=self.po_custom_field_name,
            tax_mode=self.tax_mode,
            tax_codes=TaxCodeMap(self.tax_codes),
            txn_tax_code=self.txn_tax_code,
        )
