"""Configuration: a TOML file, then `PO_CONNECTOR__…` environment overrides, validated once.

The file is `--config PATH`, else `$PO_CONNECTOR_CONFIG`, else `./config.toml`. Environment
variables use `__` for nesting: `PO_CONNECTOR__STATE__URL` replaces `[state] url`. Secrets are
never written in the file: adapter keys name an environment variable (`*_env`) or a file
(`*_file`). Every problem becomes one `ConfigError` naming the key, the value (masked when it
is a secret) and what is wrong.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.celery_config import CelerySettings, refuse_passwords_in_file
from connector.errors import ConfigError
from connector.mail_settings import MailSettings
from connector.model import Address, Party
from connector.reconcile import ReconcileSettings
from connector.redact import MASK, is_sensitive_key, mask_url_passwords

ENV_PREFIX = "PO_CONNECTOR__"
CONFIG_ENV = "PO_CONNECTOR_CONFIG"
DEFAULT_CONFIG = Path("config.toml")


class StateSettings(BaseModel):
    """Where sync state lives and how long a run may hold its partition."""

    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///po-connector.db"
    lease_seconds: int = Field(default=300, ge=10, le=86_400)
    stale_after_seconds: int = Field(default=900, ge=30, le=7 * 86_400)

    @model_validator(mode="after")
    def _heartbeat_outpaces_reaping(self) -> StateSettings:
        # Heartbeats come every lease_seconds/3; a run must not look dead between two of them.
        if self.stale_after_seconds <= self.lease_seconds:
            raise ValueError(
                f"stale_after_seconds ({self.stale_after_seconds}) must exceed lease_seconds "
                f"({self.lease_seconds}), or live runs would be reaped between heartbeats"
            )
        return self


class PushSettings(BaseModel):
    """How the outbox is drained."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=50, ge=1, le=1000)
    claim_lease_seconds: int = Field(default=300, ge=10, le=86_400)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_base_seconds: int = Field(default=60, ge=1)
    retry_max_seconds: int = Field(default=6 * 3600, ge=1)
    # Creates in flight at once per sink, at most: a sink takes up to what it declares
    # (`push_concurrency`, its account's budget); 1 sends one at a time.
    concurrency: int = Field(default=8, ge=1, le=64)


class MappingSettings(BaseModel):
    """Customer and SKU map files used by reconciliation."""

    model_config = ConfigDict(extra="forbid")

    customers: Path | None = None
    skus: Path | None = None


class LogSettings(BaseModel):
    """Logging: level, and format (auto = JSON lines when stderr is not a terminal)."""

    model_config = ConfigDict(extra="forbid")

    level: str = "INFO"
    format: str = "auto"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return upper

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in {"auto", "json", "text"}:
            raise ValueError("must be one of auto, json, text")
        return value


class MetricsSettings(BaseModel):
    """Prometheus metrics written after every run, for node_exporter's textfile collector."""

    model_config = ConfigDict(extra="forbid")

    textfile: Path | None = None


class CreditSettings(BaseModel):
    """What becomes of a sent invoice whose PO or billing period changed after it was sent."""

    model_config = ConfigDict(extra="forbid")

    # "flag": flagged `amended_after_push` for a person (`flags list`, `credit INVOICE`);
    # "credit_and_reissue": credited, and the period invoiced again as it now reconciles.
    on_amended: Literal["flag", "credit_and_reissue"] = "flag"


class ServeSettings(BaseModel):
    """The cXML receiver (`po-connector serve`)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    source: str = "cxml"


class SupplierSettings(BaseModel):
    """The vendor issuing the invoices: legal entity, tax ids, electronic address, payment account."""

    model_config = ConfigDict(extra="forbid")

    legal_name: str = Field(min_length=1)
    vat_id: str = ""
    tax_registration_id: str = ""
    legal_registration_id: str = ""
    endpoint_id: str = ""
    endpoint_scheme: str = ""
    street: list[str] = []
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = Field(pattern=r"^[A-Z]{2}$")
    contact_email: str = ""
    contact_name: str = ""
    contact_telephone: str = ""
    iban: str = ""
    account_name: str = ""
    bic: str = ""

    @model_validator(mode="after")
    def _endpoint_pair(self) -> SupplierSettings:
        if bool(self.endpoint_id) != bool(self.endpoint_scheme):
            raise ValueError("endpoint_id and endpoint_scheme (a Peppol EAS code such as 9930) go together")
        return self

    def to_party(self) -> Party:
        return Party(
            legal_name=self.legal_name,
            address=Address(
                name=self.legal_name,
                lines=tuple(self.street),
                city=self.city,
                region=self.region,
                postal_code=self.postal_code,
                country=self.country,
                email=self.contact_email,
            ),
            vat_id=self.vat_id,
            tax_registration_id=self.tax_registration_id,
            legal_registration_id=self.legal_registration_id,
            endpoint_id=self.endpoint_id,
            endpoint_scheme=self.endpoint_scheme,
            contact_email=self.contact_email,
            contact_name=self.contact_name,
            contact_telephone=self.contact_telephone,
            payment_account_id=self.iban.replace(" ", ""),
            payment_account_name=self.account_name,
            payment_bank_id=self.bic,
        )


class TaxSettings(BaseModel):
    """Where an invoice line's tax comes from, in order, and whether an untaxed invoice may go out.

    `order` lists the places asked, first answer wins: `billing` (the tax the billing record
    states), `sku` (a per-SKU override in the SKU map, e.g. an exempt service) and `customer`
    (the customer master's default, e.g. reverse charge for an EU business customer). With
    `required`, a period whose tax no place states is held as `tax_unknown`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: tuple[Literal["billing", "sku", "customer"], ...] = ("billing", "sku", "customer")
    required: bool = True

    @field_validator("order")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("order names each of billing, sku, customer at most once, and at least one")
        return value


class Settings(BaseSettings):
    """The whole configuration of one connector installation."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    tenant: str = Field(default="default", min_length=1, max_length=64)
    state: StateSettings = StateSettings()
    sources: list[dict[str, Any]] = []
    billing: list[dict[str, Any]] = []
    sinks: list[dict[str, Any]] = []
    mappings: MappingSettings = MappingSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    push: PushSettings = PushSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    serve: ServeSettings = ServeSettings()
    credit: CreditSettings = CreditSettings()
    supplier: SupplierSettings | None = None
    mail: MailSettings | None = None
    tax: TaxSettings = TaxSettings()
    celery: CelerySettings = CelerySettings()
    default_net_days: int = Field(default=30, ge=0, le=365)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides the file; the file arrives as init values.
        return env_settings, init_settings


class LoadedConfig(BaseModel):
    """Validated settings plus where they came from (relative paths resolve against it)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    settings: Settings
    path: Path
    base_dir: Path

    def resolve(self, path: Path | str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.base_dir / candidate


def config_path(explicit: str | Path | None) -> Path:
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG


def _show(key: str, value: Any) -> str:
    if is_sensitive_key(key.rsplit(".", 1)[-1]) and not key.endswith(("_env", "_file")):
        return MASK
    text = mask_url_passwords(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse_inline_secrets(blocks: list[dict[str, Any]], section: str) -> None:
    for index, block in enumerate(blocks):
        for key, value in block.items():
            if is_sensitive_key(key) and not key.endswith(("_env", "_file")) and value not in (None, ""):
                raise ConfigError(
                    f"{section}[{index}].{key} = {MASK}: secrets must not be written in the config; "
                    f"set {key}_env (an environment variable) or {key}_file (a file) instead"
                )


def _locate(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _override_of(loc: tuple[int | str, ...]) -> str | None:
    """The PO_CONNECTOR__… variable that set the value at `loc`, if one did."""
    wanted = ENV_PREFIX + "__".join(str(part) for part in loc).upper()
    return next((name for name in os.environ if name.upper() == wanted), None)


def load_config(explicit: str | Path | None = None) -> LoadedConfig:
    """Read, merge and validate the configuration; raise ConfigError with one clear message."""
    path = config_path(explicit)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (use --config PATH or ${CONFIG_ENV})") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
    for section in ("sources", "billing", "sinks"):
        blocks = raw.get(section, [])
        if isinstance(blocks, list):
            _refuse_inline_secrets([b for b in blocks if isinstance(b, dict)], section)
    refuse_passwords_in_file(raw, path)
    try:
        settings = Settings(**raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        value = error.get("input", _locate(raw, tuple(error["loc"])))
        override = _override_of(error["loc"])
        where = (
            f"environment {override} = {_show(key, value)} (overrides {key} of {path})"
            if override
            else f"config {path}: {key} = {_show(key, value)}"
        )
        raise ConfigError(
            f"{where}: {error['msg']}"
            + (f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else "")
        ) from None
    _check_blocks(settings)
    return LoadedConfig(settings=settings, path=path, base_dir=path.resolve().parent)


def _check_blocks(settings: Settings) -> None:
    seen: set[str] = set()
    for section in ("sources", "billing", "sinks"):
        for index, block in enumerate(getattr(settings, section)):
            for key in ("name", "type"):
                if not isinstance(block.get(key), str) or not block.get(key):
                    raise ConfigError(
                        f"{section}[{index}].{key}: missing; every block needs a name and a type"
                    )
            name = block["name"]
            if name in seen:
                raise ConfigError(f"{section}[{index}].name = {name!r}: the name is used twice")
            seen.add(name)
