"""``keras-inst serve [--port N] [--host 127.0.0.1] [--model PATH]``: the in-browser app, locally.

Serves the site of :mod:`keras_inst.deploy.web` from memory (the page, ``site.json``, the model
with its batch fixed at 1, LiteRT.js's WASM variants) over HTTP until Ctrl-C, with the
cross-origin isolation headers (:data:`~keras_inst.deploy.web.ISOLATION_HEADERS`) on every
response, so that the page can run LiteRT.js's threaded variant (it loads only that one; the
compat one where the browser refuses isolation, e.g. over plain HTTP from another machine). The
audio never leaves the browser: the page decodes, windows and runs the model itself, and the
server only hands out the static files. Without ``--model`` the shipped model is served. Exit status: 0
after Ctrl-C, 2 for a bad model, a missing runtime (the message names the file and the command
that installs it) or a port that cannot be opened.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from keras_inst.deploy.web import (
    ISOLATION_HEADERS,
    SiteFiles,
    build_site,
    load_bytes,
    load_web_model,
)

# .wasm must be application/wasm: WebAssembly.instantiateStreaming refuses any other type.
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json", ".wasm": "application/wasm",
                 ".tflite": "application/octet-stream", ".txt": "text/plain; charset=utf-8"}


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


def make_handler(files: Mapping[str, Path | bytes], *, isolate: bool = True) -> type[BaseHTTPRequestHandler]:
    """A request handler serving exactly ``files`` (read once, kept in memory); ``/`` is index.html.
    ``isolate=False`` leaves out the isolation headers, as a plain static host does (tests, benchmarks)."""
    body = {name: v if isinstance(v, bytes) else v.read_bytes() for name, v in files.items()}
    extra = ISOLATION_HEADERS if isolate else {}

    class SiteHandler(BaseHTTPRequestHandler):
        server_version = "keras-inst-serve"

        def _send(self, head_only: bool) -> None:
            name = unquote(urlsplit(self.path).path).lstrip("/") or "index.html"
            data = body.get(name)
            if data is None:
                self.send_error(HTTPStatus.NOT_FOUND, f"no {name} in this site")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(name))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache")  # a new --model shows on reload
            for key, value in extra.items():  # crossOriginIsolated: the threaded runtime
                self.send_header(key, value)
            self.end_headers()
            if not head_only:
                self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._send(head_only=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._send(head_only=True)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: the page's own messages say what happens

    return SiteHandler


def make_server(files: SiteFiles, *, host: str = "127.0.0.1", port: int = 0, isolate: bool = True) -> ThreadingHTTPServer:
    """An HTTP server for ``files`` bound to ``host:port`` (0: a free port; ``server.server_port``)."""
    try:
        server = ThreadingHTTPServer((host, port), make_handler(files, isolate=isolate))
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port") from None
    server.daemon_threads = True
    return server


def serve_in_thread(files: SiteFiles, *, host: str = "127.0.0.1", port: int = 0,
                    isolate: bool = True) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread (tests, benchmarks): (server, base URL); stop with
    ``server.shutdown()``."""
    server = make_server(files, host=host, port=port, isolate=isolate)
    threading.Thread(target=server.serve_forever, name="keras-inst-serve", daemon=True).start()
    return server, f"http://{host}:{server.server_port}/"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_inst.serve",
                                description="Serve the in-browser app: drop audio files on the page, it recognises "
                                            "the instruments with LiteRT.js in the browser (nothing is uploaded).")
    p.add_argument("--model", default=None,
                   help="an export folder, a .tflite file with its export.json beside it, or a shipped folder "
                        "(default: the shipped model)")
    p.add_argument("--variant", default=None, help="which TFLite artifact of an export or shipped folder (default: as predict)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be in 0..65535, got {args.port}")
        web_model = load_web_model(args.model, variant=args.variant)
        files = build_site(web_model)
        server = make_server(files, host=args.host, port=args.port)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    print(f"Serving the in-browser app for {web_model.path} ({web_model.variant}, "
          f"{load_bytes(files) / 1e6:.1f} MB to load) at http://{host}:{server.server_port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
