"""Finds adapters through the `po_connector.adapters` entry-point group and builds them.

Built-in adapters are registered the same way as third-party ones (see pyproject.toml). An
adapter that fails to import is reported by `adapters list`, not fatal to the others.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from pydantic import ValidationError

from connector.errors import ConfigError
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability
from connector.redact import MASK, is_sensitive_key

GROUP = "po_connector.adapters"
_C = TypeVar("_C", bound=AdapterConfig)


@dataclass(frozen=True)
class AdapterInfo:
    """What the registry knows of one adapter: its class, or why it could not be loaded."""

    name: str
    kind: AdapterKind | None
    factory: Any
    package: str
    version: str
    capabilities: frozenset[Capability]
    error: str | None = None


def _describe(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "?", "?"
    return dist.name, dist.version


def discover(only: Collection[str] | None = None) -> dict[str, AdapterInfo]:
    """Every registered adapter by name, loaded or with its import error; with `only`, just the
    adapters of those names (a job imports the adapters its config names, not all of them)."""
    found: dict[str, AdapterInfo] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if only is not None and ep.name not in only:
            continue
        package, version = _describe(ep)
        try:
            factory = ep.load()
            kind = AdapterKind(factory.kind)
            capabilities = frozenset(factory.capabilities)
            found[ep.name] = AdapterInfo(ep.name, kind, factory, package, version, capabilities)
        except Exception as exc:  # any import failure must not hide the other adapters
            found[ep.name] = AdapterInfo(
                ep.name, None, None, package, version, frozenset(), f"{type(exc).__name__}: {exc}"
            )
    return found


def _validation_message(section: str, block: dict[str, Any], exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = ".".join(str(p) for p in error["loc"])
    value = error.get("input")
    shown = MASK if is_sensitive_key(key) and not key.endswith(("_env", "_file")) else repr(value)
    return f"{section} {block.get('name')!r}: {key} = {shown}: {error['msg']}"


def build(
    section: str,
    kind: AdapterKind,
    block: dict[str, Any],
    context: AdapterContext,
    adapters: dict[str, AdapterInfo] | None = None,
) -> Any:
    """Validate a config block against its adapter's model and construct the adapter."""
    adapters = adapters if adapters is not None else discover()
    type_name = block.get("type", "")
    info = adapters.get(type_name)
    if info is None or info.kind != kind:
        known = sorted(name for name, a in discover().items() if a.kind == kind)
        raise ConfigError(
            f"{section} {block.get('name')!r}: type = {type_name!r} names no {kind.value} adapter; "
            f"known: {', '.join(known) or 'none'}"
        )
    if info.error:
        raise ConfigError(
            f"{section} {block.get('name')!r}: adapter {type_name!r} failed to load: {info.error}"
        )
    return info.factory(validate_block(section, block, info.factory.Config), context)


def validate_block(section: str, block: Mapping[str, Any], config_model: type[_C]) -> _C:
    """The block as its adapter's config model; ConfigError naming key and (masked) value if not."""
    try:
        return config_model.model_validate(dict(block))
    except ValidationError as exc:
        raise ConfigError(_validation_message(section, dict(block), exc)) from None
