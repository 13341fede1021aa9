"""The `netsuite` sink's configuration: the account's REST services, the token, and the maps
from our references to the account's internal ids."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from adapters.netsuite_tax import tax_code_keys
from connector.ports import AdapterConfig
from connector.values import http_url


class NetSuiteConfig(AdapterConfig):
    """Where the account's REST services are, how to authenticate and how our refs map to ids."""

    type: str = "netsuite"
    base_url: str  # https://<account>.suitetalk.api.netsuite.com/services/rest
    access_token_env: str | None = None
    access_token_file: Path | None = None
    customer_ids: dict[str, str] = Field(default_factory=dict)  # customer_ref -> internal id
    item_ids: dict[str, str] = Field(default_factory=dict)  # sku -> internal id
    terms_ids: dict[str, str] = Field(default_factory=dict)  # payment terms code -> internal id
    currency_ids: dict[str, str] = Field(default_factory=dict)  # ISO 4217 -> internal id
    subsidiary: str | None = None
    # Our tax treatment -> SuiteTax tax code (salesTaxItem internal id): { "S:20" = "12", "AE" = "15" }
    tax_codes: dict[str, str] = Field(default_factory=dict)
    concurrency: int = Field(default=5, ge=1, le=100)
    read_back: bool = False
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, example="https://1234.suitetalk.api.netsuite.com/services/rest")

    @field_validator("tax_codes")
    @classmethod
    def _tax_code_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return tax_code_keys(value)

    @model_validator(mode="after")
    def _token_source(self) -> NetSuiteConfig:
        if not self.access_token_env and not self.access_token_file:
            raise ValueError("set access_token_env or access_token_file")
        return self
