#!/usr/bin/env python3
"""A counting HTTP proxy in front of moto_server, for the scale benchmark: `count_proxy.py
LISTEN_PORT MOTO_URL` forwards every request and counts them by AWS action (the query
protocol's `Action=`, or the JSON protocols' `X-Amz-Target`). `GET /__counts` answers the
counts since the last `POST /__reset` as JSON. Loopback only.
"""
import http.client
import http.server
import json
import sys
import threading
import urllib.parse
from collections import Counter

COUNTS = Counter()
LOCK = threading.Lock()


def action_of(headers, body):
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if body:
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            if "Action" in form:
                return form["Action"][0]
        except ValueError:
            pass
    return "other"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None

    def log_message(self, *args):
        pass

    def _answer(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/__counts":
            with LOCK:
                return self._answer(200, json.dumps(dict(COUNTS)).encode())
        if self.path == "/__reset":
            with LOCK:
                COUNTS.clear()
            return self._answer(200, b"{}")
        with LOCK:
            COUNTS[action_of(self.headers, body)] += 1
        conn = getattr(self, "_conn", None) or http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=300
        )
        self._conn = conn
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


def main():
    port, upstream = int(sys.argv[1]), urllib.parse.urlparse(sys.argv[2])
    Handler.upstream = upstream
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
