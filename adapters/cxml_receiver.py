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

import hmac
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgiref_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from lxml import etree
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.cxml_order import Credential, CxmlHeader, order_request_element, read_header, render_response
from adapters.cxml_spool import CxmlSpool
from adapters.safe_xml import parse_xml
from connector.config import LoadedConfig, load_config
from connector.errors import ConfigError, InputError
from connector.redact import GLOBAL_REDACTOR
from connector.secrets import resolve_secret

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


@dataclass(frozen=True)
class BuyerCredential:
    """What one buyer must present: From, our To identity, Sender and the shared secret.

    Empty `to_domain` accepts any domain for our identity; empty sender fields mean the Sender
    is the buyer itself (From domain and identity).
    """

    from_domain: str
    from_identity: str
    to_identity: str
    shared_secret: str = field(repr=False)
    to_domain: str = ""
    sender_domain: str = ""
    sender_identity: str = ""

    def accepts(self, header: CxmlHeader, sender_secrets: Iterable[tuple[Credential, str]]) -> bool:
        """True when the envelope names this buyer, us, and carries the right secret."""
        if not any(c.matches(self.from_domain, self.from_identity) for c in header.from_credentials):
            return False
        if not any(
            c.identity == self.to_identity
            and (not self.to_domain or c.domain.casefold() == self.to_domain.casefold())
            for c in header.to_credentials
        ):
            return False
        domain = self.sender_domain or self.from_domain
        identity = self.sender_identity or self.from_identity
        expected = self.shared_secret.encode("utf-8")
        return any(
            credential.matches(domain, identity) and hmac.compare_digest(secret.encode("utf-8"), expected)
            for credential, secret in sender_secrets
        )


class CxmlBuyerConfig(BaseModel):
    """A buyer allowed to post OrderRequests, as configured; the secret comes from env or file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    from_domain: str
    from_identity: str
    to_identity: str
    to_domain: str = ""
    sender_domain: str = ""
    sender_identity: str = ""
    shared_secret_env: str | None = None
    shared_secret_file: Path | None = None

    def credential(self, base_dir: Path = Path(".")) -> BuyerCredential:
        """The credential with its shared secret resolved (and registered for redaction)."""
        secret = resolve_secret(
            env=self.shared_secret_env,
            file=self.shared_secret_file,
            key=f"buyers.{self.name}.shared_secret",
            base_dir=base_dir,
        )
        return BuyerCredential(
            from_domain=self.from_domain,
            from_identity=self.from_identity,
            to_identity=self.to_identity,
            shared_secret=secret,
            to_domain=self.to_domain,
            sender_domain=self.sender_domain,
            sender_identity=self.sender_identity,
        )


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
            order_request_element(root, source=_SOURCE, document=document)
            header = read_header(root)
            buyer = self._authenticate(root, header)
        except InputError as exc:
            raise _Refusal(400, str(exc)) from None
        if not header.payload_id:
            raise _Refusal(400, "cXML@payloadID is required")
        try:
            created = self.spool.store(header.payload_id, data)
        except OSError as exc:
            self._log.error("cannot store cXML payload %s from %s: %s", header.payload_id, buyer, exc)
            return 500, "the order could not be stored; please retry"
        what = "stored" if created else "replay of an order already stored"
        self._log.info("cXML OrderRequest payload %s from %s: %s", header.payload_id, buyer, what)
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

    def _authenticate(self, root: etree._Element, header: CxmlHeader) -> str:
        senders = [_sender_secret(element) for element in root.iterfind("Header/Sender/Credential")]
        for name, buyer in self.buyers.items():
            if buyer.accepts(header, senders):
                return name
        from_ids = ", ".join(f"{c.domain}:{c.identity}" for c in header.from_credentials) or "none"
        raise _Refusal(401, f"credentials not recognized (From {from_ids})")


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


def receiver_from_config(loaded: LoadedConfig, source_name: str | None = None) -> CxmlReceiver:
    """The receiver for the `cxml` source named by `[serve] source` (or `source_name`)."""
    # Imported here because cxml_source imports this module for CxmlBuyerConfig.
    from adapters.cxml_source import CxmlSourceConfig

    wanted = source_name or loaded.settings.serve.source
    blocks = [b for b in loaded.settings.sources if b.get("name") == wanted]
    if not blocks and not source_name:
        # The one cxml source with a spool is meant even when [serve] source keeps its default.
        spools = [b for b in loaded.settings.sources if b.get("type") == "cxml" and b.get("spool_dir")]
        blocks = spools if len(spools) == 1 else []
        wanted = blocks[0]["name"] if blocks else wanted
    if not blocks or blocks[0].get("type") != "cxml":
        raise ConfigError(
            f"serve.source = {wanted!r}: no source of type 'cxml' with that name "
            '(add a [[sources]] block with type = "cxml", spool_dir and buyers)'
        )
    try:
        source = CxmlSourceConfig.model_validate(blocks[0])
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"sources {wanted!r}: {key}: {error['msg']}") from None
    if source.spool_dir is None:
        raise ConfigError(f"sources {wanted!r}: spool_dir: required to receive orders")
    return app_from_config(source.buyers, source.spool_dir, base_dir=loaded.base_dir)


def application_from_env(environ: Mapping[str, str] | None = None) -> CxmlReceiver:
    """WSGI entry point: the receiver from the config named by $PO_CONNECTOR_CONFIG (else ./config.toml).

    The source is `[serve] source`, or $PO_CONNECTOR_CXML_SOURCE when set.
    """
    env = os.environ if environ is None else environ
    loaded = load_config(env.get("PO_CONNECTOR_CONFIG") or None)
    return receiver_from_config(loaded, env.get("PO_CONNECTOR_CXML_SOURCE") or None)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _LoggingHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        _log.info("%s %s", self.address_string(), format % args)


def make_server(host: str, port: int, app: WSGIApplication) -> WSGIServer:
    """A threaded wsgiref server bound to host:port (port 0 picks a free one), not yet serving."""
    return _wsgiref_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_LoggingHandler)


def serve(host: str, port: int, app: WSGIApplication) -> None:
    """Serve `app` on host:port until interrupted (``po-connector serve``)."""
    with make_server(host, port, app) as server:
        _log.info("cXML receiver listening on %s:%d", host, server.server_port)
        server.serve_forever()
