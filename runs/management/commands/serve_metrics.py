"""serve_metrics: /metrics of a host that runs workers and no web server.

The Celery workers of such a host count their steps into
PROMETHEUS_MULTIPROC_DIR; this small HTTP server adds up those files for
Prometheus, with the same access rule as the web server's /metrics (the
metrics token, or an address in ORCH_METRICS_ALLOW_FROM). It reads no
database: the state of the whole system comes from the web server's
/metrics.
"""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.management.base import BaseCommand, CommandError
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from orchestrator_site.metrics_view import Refused, check_access
from runs.metrics import MULTIPROC_DIR_VARIABLE, multiprocess_dir
from runs.metrics_scrape import exposition

log = logging.getLogger(__name__)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:
        pass  # a scrape every 15 s is no news


def metrics_app(environ, start_response):
    """The WSGI application: GET /metrics, with the access rule of the web server's."""
    if environ.get("PATH_INFO") != "/metrics":
        return _answer(start_response, "404 Not Found", b"only /metrics is served here\n")
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return _answer(start_response, "405 Method Not Allowed", b"GET /metrics\n")
    try:
        check_access(environ.get("HTTP_AUTHORIZATION", ""), environ.get("REMOTE_ADDR", ""))
    except Refused as refused:
        status = "401 Unauthorized" if refused.status == 401 else "403 Forbidden"
        return _answer(start_response, status, f"{refused}\n".encode())
    body = exposition(database=False)
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [body]


def _answer(start_response, status: str, body: bytes):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


class Command(BaseCommand):
    help = (
        "Serve /metrics of this host's processes (PROMETHEUS_MULTIPROC_DIR) for "
        "Prometheus, on a host that runs workers and no web server."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=9464, help="default 9464")
        parser.add_argument(
            "--address",
            default="127.0.0.1",
            help="the address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
        )

    def handle(self, *args, port: int, address: str, **options) -> None:
        if not multiprocess_dir():
            raise CommandError(
                f"{MULTIPROC_DIR_VARIABLE} is not set: give this command and the "
                "workers of this host the same directory (see docs/metrics.md)."
            )
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port}: a port from 1 to 65535")
        try:
            server = make_server(
                address, port, metrics_app, server_class=_Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise CommandError(f"cannot listen on {address}:{port}: {exc}") from None
        self.stdout.write(f"serving http://{address}:{port}/metrics (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
