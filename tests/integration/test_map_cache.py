"""A large customer master is parsed once per content and read back from the state after."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from connector import map_cache
from connector.errors import ConfigError
from connector.map_cache import CACHED_FROM_BYTES, cached_toml_reader
from connector.maps import CustomerMap
from state.tables import parsed_maps
from tests.support.state_engines import DATABASES, migrated_engine


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path)


def master(customers: int, *, extra: str = "") -> str:
    entries = [
        f'[[customers]]\ncustomer_ref = "C-{c:05d}"\nname = "Customer Ä {c}"\nbuyer_ids = ["c{c}.example"]\n'
        f'legal_name = "Customer {c} GmbH"\nvat_id = "DE{c:09d}"\n'
        f'address = {{ lines = ["{c} Main St"], city = "Berlin", postal_code = "10115", country = "DE" }}\n'
        for c in range(customers)
    ]
    return "\n".join(entries) + extra


@pytest.fixture
def large(tmp_path: Path) -> Path:
    path = tmp_path / "customers.toml"
    path.write_text(master(600), encoding="utf-8")
    assert path.stat().st_size >= CACHED_FROM_BYTES
    return path


def reader(engine: Engine, tenant: str = "t1") -> map_cache.TomlReader:
    return cached_toml_reader(lambda: engine, tenant, "customers")


def no_toml(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = tomllib.loads

    def counting(text: str) -> dict[str, object]:
        parsed.append(text[:20])
        return real(text)

    monkeypatch.setattr(tomllib, "loads", counting)
    return parsed


def customers_of(loaded: CustomerMap) -> list[object]:
    return [loaded.get(f"C-{c:05d}") for c in range(600)]


def test_an_unchanged_master_is_parsed_once_and_read_back_alike(
    engine: Engine, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = no_toml(monkeypatch)
    first = CustomerMap.load(large, reader(engine))
    second = CustomerMap.load(large, reader(engine))
    assert len(parsed) == 1
    assert customers_of(second) == customers_of(first) == customers_of(CustomerMap.load(large))
    assert second.get("C-00007").name == "Customer Ä 7"  # type: ignore[union-attr]


def test_a_changed_master_is_parsed_again_and_replaces_the_kept_parse(
    engine: Engine, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CustomerMap.load(large, reader(engine))
    large.write_text(master(600).replace('name = "Customer Ä 7"', 'name = "Renamed"'), encoding="utf-8")
    parsed = no_toml(monkeypatch)
    again = CustomerMap.load(large, reader(engine))
    assert len(parsed) == 1 and again.get("C-00007").name == "Renamed"  # type: ignore[union-attr]
    with engine.connect() as conn:
        assert conn.execute(select(parsed_maps.c.tenant, parsed_maps.c.role)).all() == [("t1", "customers")]


def test_each_tenant_keeps_its_own_parse(
    engine: Engine, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CustomerMap.load(large, reader(engine, "t1"))
    parsed = no_toml(monkeypatch)
    CustomerMap.load(large, reader(engine, "t2"))
    CustomerMap.load(large, reader(engine, "t1"))
    assert len(parsed) == 1


def test_a_small_master_is_parsed_every_time_and_never_kept(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "small.toml"
    small.write_text(master(3), encoding="utf-8")
    parsed = no_toml(monkeypatch)
    CustomerMap.load(small, reader(engine))
    CustomerMap.load(small, reader(engine))
    assert len(parsed) == 2
    with engine.connect() as conn:
        assert conn.execute(select(parsed_maps)).all() == []


def test_a_kept_parse_of_a_bad_master_fails_as_the_file_does(engine: Engine, large: Path) -> None:
    large.write_text(master(600).replace('vat_id = "DE000000004"', 'vat_id = "000000004"'), encoding="utf-8")
    errors = []
    for _ in range(2):  # parsed, then read back
        with pytest.raises(ConfigError) as caught:
            CustomerMap.load(large, reader(engine))
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert str(large) in errors[0] and "customers[4].vat_id" in errors[0]


def test_a_parse_json_cannot_carry_is_not_kept(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "dated.toml"
    path.write_text(master(600, extra="\n[notes]\nsince = 2026-01-01\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match="notes: unknown key"):
        CustomerMap.load(path, reader(engine))
    with engine.connect() as conn:
        assert conn.execute(select(parsed_maps)).all() == []


def test_a_state_without_the_cache_only_costs_the_parse(
    engine: Engine, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE parsed_maps"))
    parsed = no_toml(monkeypatch)
    loaded = CustomerMap.load(large, reader(engine))
    assert len(parsed) == 1 and loaded.get("C-00599") is not None


def test_invalid_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[[customers]]\ncustomer_ref = "M\xfcller"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml: is not valid TOML: not UTF-8 at byte 31"):
        CustomerMap.load(path)


def test_a_sync_reads_the_kept_parse_of_its_customer_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.config import load_config
    from connector.runtime import Connector
    from tests.support.cli import copy_example

    config = copy_example(tmp_path)
    example = (config.parent / "examples" / "customers.toml").read_text(encoding="utf-8")
    (config.parent / "examples" / "customers.toml").write_text(example + "\n" + master(600), encoding="utf-8")
    first = Connector(load_config(config))
    first.validate_adapters()
    parsed = no_toml(monkeypatch)
    again = Connector(load_config(config))
    again.validate_adapters()
    assert parsed and example[:20] not in parsed  # the config is parsed, the master is not
    assert again.customer_map.get("C-00599") == first.customer_map.get("C-00599") is not None
    first.engine.dispose()
    again.engine.dispose()


def test_a_kept_parse_that_is_not_json_is_parsed_again(
    engine: Engine, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CustomerMap.load(large, reader(engine))
    with engine.begin() as conn:
        conn.execute(parsed_maps.update().values(body_json="{not json"))
    parsed = no_toml(monkeypatch)
    assert CustomerMap.load(large, reader(engine)).get("C-00599") is not None
    assert len(parsed) == 1
