"""The cXML OrderRequest receiver: authenticate the buyer, store the document, answer at once.

A buyer's procurement system (Coupa, Ariba) POSTs a cXML OrderRequest and waits for a cXML
Response in the same HTTP exchange (Coupa allows 60 s). The receiver parses the document safely,
checks the From/To/Sender credentials and the SharedSecret against the configured buyers, stores
the raw bytes durably in the spool *before* answering, and answers ``<Status code="200"
text="OK"/>``. Mapping to the canonical PO happens later, when the `cxml` source reads the spool.

Status codes are chosen by what the buyer does next. Coupa retries a 5xx five times at one-hour
intervals and never retries a 4xx ("retries will not be successful"). So a 4xx is only for what
sending the same document again cannot fix: credentials not recognized (401), a body that is not
well-formed XML or not an OrderRequest (400), a wrong method (405), a missing length (411), an
oversized body (413). Anything that may pass on a later try (the spool cannot be written, an
unexpected error) answers 500, so the buyer sends again and no order is lost. A replay of a
payloadID already stored answers 200 and stores nothing new: the payloadID stays the same across
the buyer's retries. The HTTP status always equals the cXML Status code.

Running it:

- ``po-connector serve`` builds the app and calls ``serve(host, port, app)`` (wsgiref, threaded).
- Under a production WSGI server, with ``PO_CONNECTOR_CONFIG`` naming the config file::

      gunicorn --workers 2 --bind 0.0.0.0:8080 'adapters.cxml_receiver:application_from_env()'
      waitress-serve --listen=0.0.0.0:8080 --call adapters.cxml_receiver:application_from_env

  The config's ``[[sources]]`` block of ``type = "cxml"`` gives ``spool_dir`` and its
  ``[[sources.buyers]]`` entries; with several such blocks ``PO_CONNECTOR_CXML_SOURCE`` names one.
  Put TLS in front (Coupa needs https in production and never presents a client certificate).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from wsgiref.types import StartResponse, WSGIEnvironment

from lxml import etree

from adapters.cxml_buyers import BuyerCredential, CxmlBuyerConfig
from adapters.cxml_envelope import Credential, CxmlHeader, read_header, render_response
from adapters.cxml_order import order_request_element
from adapters.cxml_spool import CxmlSpool
from adapters.safe_xml import parse_xml
from adapters.ubl_order import UblOrderKind, ubl_envelope, ubl_input_key
from connector.config import load_config
from connector.errors import ConfigError, InputError
from connector.redact import GLOBAL_REDACTOR
from connector.serving import make_server, receiver_for, serve

__all__ = ["BuyerCredential", "CxmlReceiver", "application_from_env", "make_app", "make_server", "serve"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_SOURCE = "cxml-receiver"
_log = logging.getLogger("po_connector.cxml_receiver")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
}


class _Refusal(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class CxmlReceiver:
    """The WSGI application that receives cXML OrderRequests into a spool."""

    def __init__(
        self,
        buyers: Mapping[str, BuyerCredential],
        spool: CxmlSpool,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        logger: logging.Logger = _log,
    ) -> None:
        self.buyers = dict(buyers)
        self.spool = spool
        self.max_bytes = max_bytes
        self._log = logger

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        try:
            code, detail = self._receive(environ)
        except _Refusal as refusal:
            code, detail = refusal.code, refusal.detail
            self._log.warning("cXML request refused with %d: %s", code, GLOBAL_REDACTOR(detail))
        except Exception:
            self._log.exception("cXML request failed unexpectedly; answering 500 so the buyer retries")
            code, detail = 500, "unexpected error; please retry"
        body = render_response(None, code, _REASONS[code], detail=GLOBAL_REDACTOR(detail))
        headers = [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))]
        if code == 405:
            headers.append(("Allow", "POST"))
        start_response(f"{code} {_REASONS[code]}", headers)
        return [body]

    def _receive(self, environ: WSGIEnvironment) -> tuple[int, str]:
        if environ.get("REQUEST_METHOD") != "POST":
            raise _Refusal(405, "only POST is accepted")
        data = self._body(environ)
        document = f"POST {environ.get('PATH_INFO', '/')} from {environ.get('REMOTE_ADDR', '?')}"
        try:
            root = parse_xml(data, source=_SOURCE, document=document)
            envelope = ubl_envelope(root)
            if envelope is not None:
                key, buyer = self._authenticate_ubl(environ, *envelope)
            else:
                order_request_element(root, source=_SOURCE, document=document)
                header = read_header(root)
                buyer = self._authenticate(root, header)
                key = header.payload_id
        except InputError as exc:
            raise _Refusal(400, str(exc)) from None
        if not key:
            raise _Refusal(400, "cXML@payloadID is required")
        try:
            created = self.spool.store(key, data)
        except OSError as exc:
            self._log.error("cannot store order document %s from %s: %s", key, buyer, exc)
            return 500, "the order could not be stored; please retry"
        what = "stored" if created else "replay of an order already stored"
        self._log.info("order document %s from %s: %s", key, buyer, what)
        return 200, ""

    def _body(self, environ: WSGIEnvironment) -> bytes:
        length_text = environ.get("CONTENT_LENGTH", "")
        if not length_text:
            raise _Refusal(411, "a Content-Length is required")
        try:
            length = int(length_text)
        except ValueError:
            raise _Refusal(400, f"Content-Length {length_text!r} is not a number") from None
        if length > self.max_bytes:
            raise _Refusal(413, f"the document is larger than {self.max_bytes} bytes")
        data: bytes = environ["wsgi.input"].read(length)
        if len(data) != length:
            raise _Refusal(400, f"the body ended after {len(data)} of {length} bytes")
        return data

    def _authenticate_ubl(
        self, environ: WSGIEnvironment, kind: UblOrderKind, document_id: str, party: str
    ) -> tuple[str, str]:
        """A UBL document carries no credential: HTTP Basic names the buyer (its From identity)
        with its shared secret, and the document's buyer party must be that same identity."""
        if not document_id or not party:
            raise _Refusal(400, f"{kind}: cbc:ID and the BuyerCustomerParty EndpointID are required")
        user, secret = _basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        for name, buyer in self.buyers.items():
            if buyer.from_identity == user == party and hmac.compare_digest(
                secret.encode("utf-8"), buyer.shared_secret.encode("utf-8")
            ):
                return ubl_input_key(kind, party, document_id), name
        raise _Refusal(401, f"credentials not recognized (buyer party {party})")

    def _authenticate(self, root: etree._Element, header: CxmlHeader) -> str:
        senders = [_sender_secret(element) for element in root.iterfind("Header/Sender/Credential")]
        for name, buyer in self.buyers.items():
            if buyer.accepts(header, senders):
                return name
        from_ids = ", ".join(f"{c.domain}:{c.identity}" for c in header.from_credentials) or "none"
        raise _Refusal(401, f"credentials not recognized (From {from_ids})")


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.casefold() != "basic":
        return "", ""
    try:
        user, _, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, secret


def _sender_secret(credential: etree._Element) -> tuple[Credential, str]:
    secret = credential.find("SharedSecret")
    return (
        Credential(credential.get("domain", "").strip(), (credential.findtext("Identity") or "").strip()),
        "".join(secret.itertext()).strip() if secret is not None else "",
    )


def make_app(buyers: Mapping[str, BuyerCredential], spool: CxmlSpool) -> CxmlReceiver:
    """The receiver WSGI app for these buyers (keyed by a name used in logs) and this spool."""
    return CxmlReceiver(buyers, spool)


def app_from_config(
    buyers: Sequence[CxmlBuyerConfig], spool_dir: Path, *, base_dir: Path = Path(".")
) -> CxmlReceiver:
    """The receiver for configured buyers and a spool directory, secrets resolved now."""
    if not buyers:
        raise ConfigError("buyers: none configured, so every OrderRequest would be refused")
    directory = base_dir / spool_dir
    return make_app({buyer.name: buyer.credential(base_dir) for buyer in buyers}, CxmlSpool(directory))


def application_from_env(environ: Mapping[str, str] | None = None) -> CxmlReceiver:
    """WSGI entry point: the receiver from the config named by $PO_CONNECTOR_CONFIG (else ./config.toml).

    The source is `[serve] source`, or $PO_CONNECTOR_CXML_SOURCE when set.
    """
    env = os.environ if environ is None else environ
    loaded = load_config(env.get("PO_CONNECTOR_CONFIG") or None)
    app = receiver_for(loaded, env.get("PO_CONNECTOR_CXML_SOURCE") or None)
    if not isinstance(app, CxmlReceiver):
        raise ConfigError("PO_CONNECTOR_CXML_SOURCE / [serve] source: names no cxml source")
    return app
