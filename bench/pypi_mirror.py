"""A pass-through PyPI mirror that sends PyPI's own caching headers, for bench/cache_mount.py.

pip keeps a download in its cache only when the answer says it may (`Cache-Control`). PyPI says so, but a
TLS-intercepting proxy in front of it may strip the headers (this project's machine has one): then pip caches only
the wheels it builds, and a pip cache mount saves far less than it does on an ordinary network. This mirror restores
what PyPI sends: each request goes upstream, index pages come back with `max-age=600` and files with
`max-age=365000000, immutable`, and file links are rewritten to come through the mirror.
"""

from __future__ import annotations

import shutil
import ssl
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

__all__ = ["PypiMirror"]

_INDEX = "https://pypi.org/simple"
_FILES = "https://files.pythonhosted.org"
_PAGE_CACHE = "max-age=600, public"
_FILE_CACHE = "max-age=365000000, immutable, public"
_PASSED_HEADERS = ("Accept", "User-Agent")


class PypiMirror:
    """Serves /simple/... and /files/... on `host` (an address the build steps reach) until stopped."""

    def __init__(self, host: str, ca_file: Path | None = None) -> None:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                mirror.serve(self, context)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve(self, handler: BaseHTTPRequestHandler, context: ssl.SSLContext) -> None:
        if handler.path.startswith("/simple/"):
            upstream, cache, rewrite = _INDEX + handler.path.removeprefix("/simple"), _PAGE_CACHE, True
        elif handler.path.startswith("/files/"):
            upstream, cache, rewrite = _FILES + handler.path.removeprefix("/files"), _FILE_CACHE, False
        else:
            handler.send_error(404)
            return
        headers = {name: handler.headers[name] for name in _PASSED_HEADERS if handler.headers[name]}
        try:
            with urllib.request.urlopen(urllib.request.Request(upstream, headers=headers), context=context) as answer:
                handler.send_response(answer.status)
                handler.send_header("Content-Type", answer.headers.get("Content-Type", "application/octet-stream"))
                handler.send_header("Cache-Control", cache)
                if rewrite:
                    body = answer.read().replace(_FILES.encode(), f"{self.url}/files".encode())
                    handler.send_header("Content-Length", str(len(body)))
                    handler.end_headers()
                    handler.wfile.write(body)
                else:
                    if answer.headers.get("Content-Length"):
                        handler.send_header("Content-Length", answer.headers["Content-Length"])
                    handler.end_headers()
                    shutil.copyfileobj(answer, handler.wfile)
        except urllib.error.HTTPError as error:
            handler.send_error(error.code)
