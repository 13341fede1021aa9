"""`serve`: the HTTP receiver of the configured source that can receive, on a threaded wsgiref server.

Which adapter receives is the registry's business: any source whose class declares the `receive`
capability (see `connector.ports.Receivable`) can be served, a third-party one as well.
"""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgiref_server
from wsgiref.types import WSGIApplication

from connector.config import LoadedConfig
from connector.errors import ConfigError
from connector.ports import AdapterContext, AdapterKind, Capability
from connector.registry import AdapterInfo, discover

_log = logging.getLogger("po_connector.serve")


def _receiving_types(adapters: dict[str, AdapterInfo]) -> set[str]:
    return {
        name
        for name, info in adapters.items()
        if info.kind == AdapterKind.SOURCE and Capability.RECEIVE in info.capabilities
    }


def receiver_for(
    loaded: LoadedConfig, source_name: str | None = None, adapters: dict[str, AdapterInfo] | None = None
) -> WSGIApplication:
    """The receiving app of the source named by `source_name`, else by `[serve] source`.

    When `[serve] source` keeps its default and names no source, the one source that can receive
    is meant; with none or several, the error says which to name.
    """
    adapters = adapters if adapters is not None else discover()
    receiving = _receiving_types(adapters)
    wanted = source_name or loaded.settings.serve.source
    blocks = [b for b in loaded.settings.sources if b.get("name") == wanted]
    if not blocks and not source_name:
        able = [b for b in loaded.settings.sources if b.get("type") in receiving]
        blocks = able if len(able) == 1 else []
        wanted = blocks[0]["name"] if blocks else wanted
    if not blocks or blocks[0].get("type") not in receiving:
        types = " or ".join(f"type {name!r}" for name in sorted(receiving)) or "a type that can receive"
        raise ConfigError(f"serve.source = {wanted!r}: no source of {types} with that name")
    block = blocks[0]
    context = AdapterContext(tenant=loaded.settings.tenant, base_dir=loaded.base_dir)
    app: WSGIApplication = adapters[block["type"]].factory.receiver(block, context)
    return app


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
        _log.info("receiver listening on %s:%d", host, server.server_port)
        server.serve_forever()
