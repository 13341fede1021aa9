"""The `stripe` billing source's configuration: a Stripe account, the API version it is read at,
and the mapping options it selects (PO number, customer reference, SKU, tax reasons)."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from adapters.stripe_fields import DEFAULT_TAX_REASONS, MappingOptions, TaxTreatment
from connector.ports import AdapterConfig
from connector.values import http_url

PINNED_API_VERSION = "2025-03-31.basil"
FIRST_BASIL_DAY = "2025-03-31"
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


class StripeBillingConfig(AdapterConfig):
    """A Stripe account read with a secret (or restricted read-only) key."""

    type: str = "stripe"
    base_url: str = "https://api.stripe.com"
    api_key_env: str | None = None
    api_key_file: str | None = None
    api_version: str = PINNED_API_VERSION
    po_number_source: Literal["custom_field", "metadata"] = "custom_field"
    po_custom_field: str = Field(default="PO Number", min_length=1, max_length=40)
    po_metadata_key: str = Field(default="po_number", min_length=1, max_length=40)
    customer_ref_source: str = "customer_id"
    sku_source: Literal["lookup_key", "product", "price"] = "product"
    # taxability reason -> S (at the TaxRate's rate), Z, E, AE or O; merged onto the defaults
    tax_reasons: dict[str, TaxTreatment] = Field(default_factory=dict)
    include_upcoming: bool = False
    statuses: tuple[str, ...] = ("draft", "open", "paid", "uncollectible")
    page_size: int = Field(default=100, ge=1, le=100)
    overlap_seconds: int = Field(default=3600, ge=0)
    start_date: date | None = None
    rate_per_second: float = Field(default=20.0, gt=0, le=100)
    burst: int = Field(default=10, ge=1)
    max_concurrency: int = Field(default=4, ge=1)
    timeout_connect: float = Field(default=5.0, gt=0)
    timeout_read: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, example="https://api.stripe.com")

    @field_validator("api_version")
    @classmethod
    def _basil_or_later(cls, value: str) -> str:
        if not _VERSION.match(value) or value[:10] < FIRST_BASIL_DAY:
            raise ValueError(
                f"must be a Stripe API version from {PINNED_API_VERSION} on (the parser reads basil fields)"
            )
        return value

    @field_validator("customer_ref_source")
    @classmethod
    def _customer_source(cls, value: str) -> str:
        if value == "customer_id" or (value.startswith("metadata:") and len(value) > len("metadata:")):
            return value
        raise ValueError("must be 'customer_id' or 'metadata:<key>'")

    @field_validator("statuses")
    @classmethod
    def _known_statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(INVOICE_STATUSES))
        if unknown or not value:
            raise ValueError(f"invoice statuses must be some of {', '.join(INVOICE_STATUSES)}; got {unknown}")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> StripeBillingConfig:
        if not self.api_key_env and not self.api_key_file:
            raise ValueError("set api_key_env or api_key_file")
        return self

    def mapping_options(self) -> MappingOptions:
        """The mapping rules this config selects."""
        key = None
        if self.customer_ref_source.startswith("metadata:"):
            key = self.customer_ref_source.split(":", 1)[1]
        return MappingOptions(
            po_number_source=self.po_number_source,
            po_custom_field=self.po_custom_field,
            po_metadata_key=self.po_metadata_key,
            customer_metadata_key=key,
            sku_source=self.sku_source,
            tax_reasons={**DEFAULT_TAX_REASONS, **self.tax_reasons},
        )
