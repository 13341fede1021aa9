"""`inspect` and `serve` find their adapter through the registry's capabilities, not by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import pytest

from connector.config import LoadedConfig, load_config
from connector.errors import ConfigError, InputProblem
from connector.inspecting import inspect_file
from connector.model import PurchaseOrder
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability, SourceBatch, SourceRecord
from connector.registry import AdapterInfo, discover
from connector.serving import receiver_for
from tests.support.factories import make_po


class ToyConfig(AdapterConfig):
    """A third-party source's config."""

    type: str = "toy"
    inbox: str = "inbox"


class ToySource:
    """A third-party source that reads `.toy` files and can receive them over HTTP."""

    kind: ClassVar[AdapterKind] = AdapterKind.SOURCE
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.INSPECT, Capability.RECEIVE})
    Config: ClassVar[type[AdapterConfig]] = ToyConfig
    inspect_suffixes: ClassVar[frozenset[str]] = frozenset({".toy"})
    seen_blocks: ClassVar[list[Mapping[str, Any] | None]] = []

    @classmethod
    def inspect_file(
        cls, path: Path, block: Mapping[str, Any] | None, context: AdapterContext
    ) -> list[SourceBatch]:
        cls.seen_blocks.append(block)
        po: PurchaseOrder = make_po(po_number=path.read_text(encoding="utf-8").strip())
        problem = InputProblem("toy", path.name, "2", "qty", "x", "not a number")
        return [SourceBatch(records=[SourceRecord(po=po, raw="")], rejections=[problem])]

    @classmethod
    def receiver(cls, block: Mapping[str, Any], context: AdapterContext) -> WSGIApplication:
        inbox = context.resolve(str(block["inbox"]))

        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(inbox).encode()]

        return app


def _registry() -> dict[str, AdapterInfo]:
    toy = AdapterInfo("toy", AdapterKind.SOURCE, ToySource, "toy-adapter", "1.0", ToySource.capabilities)
    return discover() | {"toy": toy}


def _config(tmp_path: Path, text: str) -> LoadedConfig:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_inspect_uses_a_third_party_source_that_declares_the_suffix(tmp_path: Path) -> None:
    file = tmp_path / "order.toy"
    file.write_text("TOY-1\n", encoding="utf-8")
    ToySource.seen_blocks.clear()
    records, problems = inspect_file(file, None, _registry())
    assert [r.po.po_number for r in records] == ["TOY-1"]
    assert [p.field for p in problems] == ["qty"]
    assert ToySource.seen_blocks == [None]


def test_inspect_hands_the_configured_block_of_that_type(tmp_path: Path) -> None:
    loaded = _config(tmp_path, '[[sources]]\nname = "mine"\ntype = "toy"\ninbox = "in"\n')
    file = tmp_path / "order.toy"
    file.write_text("TOY-2", encoding="utf-8")
    ToySource.seen_blocks.clear()
    inspect_file(file, loaded, _registry())
    assert [b["name"] if b else None for b in ToySource.seen_blocks] == ["mine"]


def test_inspect_of_a_suffix_no_source_reads_names_the_known_ones(tmp_path: Path) -> None:
    file = tmp_path / "order.pdf"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown file type '.pdf' \(use .*\.toy"):
        inspect_file(file, None, _registry())


def test_serve_builds_the_receiver_of_the_one_source_that_can_receive(tmp_path: Path) -> None:
    loaded = _config(tmp_path, '[[sources]]\nname = "mine"\ntype = "toy"\ninbox = "in"\n')
    app = receiver_for(loaded, adapters=_registry())
    body = b"".join(app({"REQUEST_METHOD": "POST"}, lambda status, headers, exc_info=None: lambda b: None))
    assert body == str(tmp_path / "in").encode()


def test_serve_refuses_a_source_whose_type_cannot_receive(tmp_path: Path) -> None:
    loaded = _config(
        tmp_path,
        '[serve]\nsource = "inbox"\n[[sources]]\nname = "inbox"\ntype = "email-csv"\nmaildir = "."\n',
    )
    with pytest.raises(ConfigError, match="no source of type 'cxml' or type 'toy' with that name"):
        receiver_for(loaded, adapters=_registry())


def test_a_job_loads_only_the_adapters_its_config_names() -> None:
    from connector.ports import AdapterContext, AdapterKind
    from connector.registry import build

    loaded = discover({"csv", "ubl-files"})
    assert sorted(loaded) == ["csv", "ubl-files"] and all(info.error is None for info in loaded.values())
    # An unknown type still names every adapter of its kind, from the whole registry.
    with pytest.raises(ConfigError) as refused:
        build("sinks", AdapterKind.SINK, {"name": "x", "type": "nosuch"}, AdapterContext(), loaded)
    assert "netsuite" in str(refused.value) and "xero" in str(refused.value)


def test_building_the_examples_adapters_imports_no_other_adapter(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.cli import REPO, copy_example

    config = copy_example(tmp_path)
    probe = (
        "import sys; from connector.config import load_config; from connector.runtime import Connector;"
        f"app = Connector(load_config({str(config)!r})); app.validate_adapters();"
        "print(sorted(m for m in sys.modules if m.startswith('adapters.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    modules = out.stdout.strip()
    assert "adapters.email_csv" in modules and "adapters.ubl_files" in modules, out.stderr
    for other in ("adapters.xero", "adapters.netsuite", "adapters.quickbooks", "adapters.stripe_billing"):
        assert f"'{other}'" not in modules
