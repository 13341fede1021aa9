"""UBL orders POSTed to the receiver over a real socket: HTTP Basic names the buyer, the spool keeps them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from adapters.cxml_receiver import BuyerCredential, make_app, make_server
from adapters.cxml_source import CxmlSource, CxmlSourceConfig
from adapters.cxml_spool import CxmlSpool
from connector.model import POStatus
from connector.ports import AdapterContext, PullContext

UBL = Path(__file__).resolve().parents[1] / "data" / "ubl"
BUYER = BuyerCredential(
    from_domain="0088",
    from_identity="7300010000001",
    to_identity="7302347231110",
    shared_secret="peppol-secret-for-tests",
)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, make_app({"northwind": BUYER}, CxmlSpool(tmp_path / "spool")))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/orders"
    server.shutdown()
    server.server_close()
    thread.join(5)


def post(url: str, name: str, auth: tuple[str, str] = ("7300010000001", "peppol-secret-for-tests")) -> int:
    body = (UBL / name).read_bytes()
    response = requests.post(
        url, data=body, auth=auth, headers={"Content-Type": "application/xml"}, timeout=5
    )
    return response.status_code


def test_posted_order_change_and_cancellation_are_stored_once_and_pulled_as_revisions(
    url: str, tmp_path: Path
) -> None:
    assert [post(url, name) for name in ("order.xml", "order.xml", "order-change.xml")] == [200, 200, 200]
    assert post(url, "order-cancellation.xml") == 200
    assert len(CxmlSpool(tmp_path / "spool").list()) == 3  # the replay stored nothing new
    config = CxmlSourceConfig.model_validate({"name": "peppol", "type": "cxml", "spool_dir": "spool"})
    source = CxmlSource(config, AdapterContext(base_dir=tmp_path))
    batches = list(source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))))
    pos = sorted((r.po for b in batches for r in b.records), key=lambda po: po.revision)
    assert [(po.revision, po.status) for po in pos] == [
        (1, POStatus.OPEN),
        (2, POStatus.OPEN),
        (3, POStatus.CANCELLED),
    ]


@pytest.mark.parametrize(
    "auth",
    [("7300010000001", "wrong"), ("someone-else", "peppol-secret-for-tests"), ("", "")],
)
def test_a_post_without_the_buyers_credentials_is_refused_401_and_not_stored(
    url: str, tmp_path: Path, auth: tuple[str, str]
) -> None:
    assert post(url, "order.xml", auth) == 401
    assert CxmlSpool(tmp_path / "spool").list() == []


def test_a_buyer_cannot_post_an_order_in_another_buyers_name(url: str, tmp_path: Path) -> None:
    body = (UBL / "order.xml").read_bytes().replace(b"7300010000001", b"7300010000999")
    response = requests.post(url, data=body, auth=("7300010000001", "peppol-secret-for-tests"), timeout=5)
    assert response.status_code == 401
    assert CxmlSpool(tmp_path / "spool").list() == []
