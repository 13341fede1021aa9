"""The cXML receiver over a real socket: authenticate, store once, answer with valid cXML."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from adapters.cxml_receiver import BuyerCredential, application_from_env, make_app, make_server
from adapters.cxml_spool import CxmlSpool
from adapters.safe_xml import safe_parser
from connector.errors import ConfigError
from tests.support.shared import shared_fixture

GENERIC = "cxml/OrderRequest-generic.xml"
GENERIC_PAYLOAD_ID = "1625586002.193314.7293@dev"
BUYER = BuyerCredential(
    from_domain="NetworkId",
    from_identity="inbound@prominate-platform.com",
    to_identity="supplier@supplier.com",
    shared_secret="coyote",
)


class Receiver:
    """A receiver app served by wsgiref on 127.0.0.1 in a background thread."""

    def __init__(self, spool: CxmlSpool) -> None:
        self.spool = spool
        self.server = make_server("127.0.0.1", 0, make_app({"prominate": BUYER}, spool))
        self.url = f"http://127.0.0.1:{self.server.server_port}/cxml/orders"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def post(self, body: bytes) -> requests.Response:
        return requests.post(self.url, data=body, headers={"Content-Type": "text/xml"}, timeout=5)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    served = Receiver(CxmlSpool(tmp_path / "spool"))
    yield served
    served.close()


def generic() -> bytes:
    return shared_fixture(GENERIC).read_bytes()


def status_of(response: requests.Response) -> tuple[int, str, str]:
    assert response.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(response.content, safe_parser())
    dtd = etree.DTD(str(shared_fixture("cxml/cXML-1.2.050.dtd")))
    assert dtd.validate(root), dtd.error_log
    status = root.find("Response/Status")
    assert status is not None
    return int(status.get("code", "0")), status.get("text", ""), status.text or ""


def test_order_request_is_stored_and_answered_200_with_valid_cxml_within_a_second(receiver: Receiver) -> None:
    started = time.perf_counter()
    response = receiver.post(generic())
    elapsed = time.perf_counter() - started

    assert response.status_code == 200
    assert status_of(response)[:2] == (200, "OK")
    assert elapsed < 1
    stored = receiver.spool.list()
    assert stored == [receiver.spool.path_of(GENERIC_PAYLOAD_ID)]
    assert stored[0].read_bytes() == generic()


def test_replay_of_the_same_payload_id_answers_200_and_stores_nothing_new(receiver: Receiver) -> None:
    assert receiver.post(generic()).status_code == 200
    stored = receiver.spool.path_of(GENERIC_PAYLOAD_ID)
    first_inode = stored.stat().st_ino

    replay = receiver.post(generic())

    assert replay.status_code == 200 and status_of(replay)[0] == 200
    assert receiver.spool.list() == [stored]
    assert stored.stat().st_ino == first_inode
    assert sorted(p.name for p in (receiver.spool.directory).iterdir()) == [stored.name]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<SharedSecret>coyote</SharedSecret>", b"<SharedSecret>roadrunner</SharedSecret>"),
        (b"<SharedSecret>coyote</SharedSecret>", b""),
        (
            b"<Identity>inbound@prominate-platform.com</Identity>",
            b"<Identity>someone@else.example</Identity>",
        ),
        (b"<Identity>supplier@supplier.com</Identity>", b"<Identity>other-supplier@example.com</Identity>"),
    ],
    ids=["wrong-secret", "no-secret", "unknown-buyer", "not-us"],
)
def test_unrecognized_credentials_get_401_and_nothing_is_stored(
    receiver: Receiver, old: bytes, new: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    body = generic()
    assert old in body
    with caplog.at_level(logging.INFO):
        response = receiver.post(body.replace(old, new, 1))

    assert response.status_code == 401
    assert status_of(response)[:2] == (401, "Unauthorized")
    assert receiver.spool.list() == []
    for text in (response.text, caplog.text):
        assert "coyote" not in text and "roadrunner" not in text


@pytest.mark.parametrize("body", [b"\x00\x01 this is not xml <<<", b"<html><body>hello</body></html>"])
def test_garbage_gets_400_and_nothing_is_stored(receiver: Receiver, body: bytes) -> None:
    response = receiver.post(body)
    assert response.status_code == 400
    assert status_of(response)[:2] == (400, "Bad Request")
    assert receiver.spool.list() == []


def test_an_authenticated_document_that_is_not_an_order_request_gets_400(receiver: Receiver) -> None:
    body = generic()
    start, end = body.index(b"<OrderRequest>"), body.index(b"</OrderRequest>") + len(b"</OrderRequest>")
    body = body[:start] + b"<ProfileRequest/>" + body[end:]
    response = receiver.post(body)
    assert response.status_code == 400
    assert "not an OrderRequest" in status_of(response)[2]
    assert receiver.spool.list() == []


def test_xxe_gets_400_without_leaking_the_file_and_nothing_is_stored(
    receiver: Receiver, tmp_path: Path
) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-c0ffee")
    body = (
        generic()
        .replace(b'cXML.dtd">', f'cXML.dtd" [<!ENTITY leak SYSTEM "file://{canary}">]>'.encode(), 1)
        .replace(b"<UserAgent>Platform Order Fulfillment Hub</UserAgent>", b"<UserAgent>&leak;</UserAgent>")
    )
    response = receiver.post(body)
    assert response.status_code == 400
    assert "entity declarations are not allowed" in status_of(response)[2]
    assert "CANARY" not in response.text
    assert receiver.spool.list() == []


def test_unwritable_spool_gets_500_so_the_buyer_retries_and_the_retry_is_stored(receiver: Receiver) -> None:
    # Run as root, permissions alone cannot make a directory unwritable: a file in its place does.
    spool_dir = receiver.spool.directory
    spool_dir.parent.mkdir(parents=True, exist_ok=True)
    spool_dir.write_text("not a directory")

    response = receiver.post(generic())

    assert response.status_code == 500
    assert status_of(response)[:2] == (500, "Internal Server Error")
    spool_dir.unlink()
    retry = receiver.post(generic())
    assert retry.status_code == 200
    assert receiver.spool.list() == [receiver.spool.path_of(GENERIC_PAYLOAD_ID)]


def test_read_only_spool_directory_gets_500(receiver: Receiver) -> None:
    spool_dir = receiver.spool.directory
    spool_dir.mkdir(parents=True)
    spool_dir.chmod(0o555)
    try:
        probe = spool_dir / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:
            probe.unlink()
            pytest.skip("running with privileges that ignore directory permissions")
        response = receiver.post(generic())
        assert response.status_code == 500
        assert receiver.spool.list() == []
    finally:
        spool_dir.chmod(0o755)


def test_get_is_refused_with_405(receiver: Receiver) -> None:
    response = requests.get(receiver.url, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert status_of(response)[0] == 405


def test_application_from_env_reads_the_cxml_source_block_and_its_buyers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        """
[[sources]]
name = "coupa-cxml"
type = "cxml"
spool_dir = "spool"

[[sources.buyers]]
name = "prominate"
from_domain = "NetworkId"
from_identity = "inbound@prominate-platform.com"
to_identity = "supplier@supplier.com"
shared_secret_env = "PROMINATE_CXML_SECRET"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("PROMINATE_CXML_SECRET", "coyote")
    app = application_from_env({"PO_CONNECTOR_CONFIG": str(config)})
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        response = requests.post(f"http://127.0.0.1:{server.server_port}/", data=generic(), timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    assert [p.parent for p in CxmlSpool(tmp_path / "spool").list()] == [tmp_path / "spool"]


def test_application_from_env_without_a_cxml_source_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[sources]]\nname = "inbox"\ntype = "email-csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="type 'cxml'"):
        application_from_env({"PO_CONNECTOR_CONFIG": str(config)})


def test_simultaneous_retries_of_one_order_are_all_acknowledged_and_stored_once(receiver: Receiver) -> None:
    body = generic()
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(receiver.post(body).status_code)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * 8
    assert [p.name for p in receiver.spool.directory.iterdir()] == [
        receiver.spool.path_of(GENERIC_PAYLOAD_ID).name
    ]
