"""A loopback HTTP server for download tests (127.0.0.1 only; no internet).

``routes`` maps a path to a behaviour; ``log`` records every request (method, path, whether it came
through as a forward-proxy request, its Cookie and Range headers). Behaviours:

* ``("file", bytes[, delay_s])``: the file (Range requests answered with 206), after a delay;
* ``("page", html)``: an HTML page (yt-dlp's generic extractor reads its ``<video>`` tags);
* ``("cut", bytes, fraction)``: announces the whole file, sends ``fraction`` of it, hangs up;
* ``("stall", bytes, seconds)``: headers, then silence;
* ``("trickle", bytes, chunk, pause[, burst])``: the file, ``chunk`` bytes every ``pause`` seconds
  (after its first ``burst`` bytes at once);
* ``("cookie", "name=value", bytes)``: the file only with that Cookie header, else 403;
* ``("status", code)``: that HTTP status.

Anything else is a 404.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _send(self, code: int, body: bytes, ctype: str, head: bool, length: int | None = None, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, head: bool):
        srv = self.server
        path, proxied = self.path, False
        if path.startswith("http://"):  # a forward-proxy request: absolute URL
            proxied, path = True, "/" + path.split("/", 3)[3]
        srv.log.append({"method": self.command, "path": path, "proxied": proxied,
                        "cookie": self.headers.get("Cookie"), "range": self.headers.get("Range")})
        route = srv.routes.get(path.split("?")[0])
        try:
            if route is None:
                return self._send(404, b"not found", "text/plain", head)
            kind, *rest = route
            if kind == "cookie" and self.headers.get("Cookie") != rest[0]:
                return self._send(403, b"cookie needed", "text/plain", head)
            if kind == "cookie":
                kind, rest = "file", rest[1:]
            if kind == "file":
                data = rest[0]
                start = 0
                rng = self.headers.get("Range")
                if rng and not head and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        return self._send(416, b"", "text/plain", head, extra={"Content-Range": f"bytes */{len(data)}"})
                    return self._send(206, data[start:], "video/mp4", head,
                                      extra={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
                if rest[1:] and not head:  # a delay before the body (slow server)
                    time.sleep(rest[1])
                return self._send(200, data, "video/mp4", head)
            if kind == "page":
                return self._send(200, rest[0].encode(), "text/html; charset=utf-8", head)
            if kind == "cut":  # announces the whole file, sends part of it, hangs up
                data, frac = rest
                self._send(200, data[: int(len(data) * frac)], "video/mp4", head, length=len(data))
                self.close_connection = True
                return
            if kind == "stall":  # headers, then nothing for a while
                data, seconds = rest
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    time.sleep(seconds)
                self.close_connection = True
                return
            if kind == "trickle":  # keeps sending, too slowly to finish in time
                data, chunk, pause, burst = (*rest, 0) if len(rest) == 3 else rest
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    if burst:
                        self.wfile.write(data[:burst])
                        self.wfile.flush()
                    for i in range(burst, len(data), chunk):
                        self.wfile.write(data[i:i + chunk])
                        self.wfile.flush()
                        time.sleep(pause)
                return
            if kind == "status":
                return self._send(rest[0], b"error", "text/plain", head)
            raise AssertionError(f"unknown route kind {kind}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client hanging up (timeout tests) is expected
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, TimeoutError)):
            super().handle_error(request, client_address)


@contextmanager
def loopback_server() -> Iterator[_Server]:
    """A started server with ``base`` (http://127.0.0.1:PORT), ``routes``, ``log`` and ``gets(path)``."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.routes, srv.log = {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    srv.gets = lambda path: sum(1 for r in srv.log if r["path"] == path and r["method"] == "GET")
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
