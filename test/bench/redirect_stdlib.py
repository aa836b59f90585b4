#!/usr/bin/python3
"""test/bench/redirect_stdlib.py: the redirect of the reference service on
the standard library's HTTP server, for test/bench/redirect.sh to compare
HTTP layers.

GET /{code} only, doing what the service does for it (the client from
X-Forwarded-For, the country header, the visitor hash, one resolve() per
click over a psycopg_pool.ConnectionPool, 302 or 404) on
http.server.ThreadingHTTPServer: a thread per connection, HTTP/1.1
keep-alive.  SHORTURL_WORKERS processes share the port (SO_REUSEPORT).
Reads the service's SHORTURL_* settings.
"""
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "redirect-service"))
import redirect_service as rs  # noqa: E402

cfg = rs.Config.from_env()
visitors = rs.Visitors(os.urandom(32), cfg.visitor_secret)
pool = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def client(self):
        address = self.client_address[0]
        if not cfg.trusted_proxies or not rs.parse_address(address, cfg.trusted_proxies)[1]:
            return address
        for hop in reversed((self.headers.get("X-Forwarded-For") or "").split(",")):
            ip, is_proxy = rs.parse_address(hop, cfg.trusted_proxies)
            if ip is None:
                return address
            address = ip
            if not is_proxy:
                return address
        return address

    def do_GET(self):
        code = self.path[1:]
        if not rs.CODE_RE.fullmatch(code):
            return self.answer(404)
        client = self.client()
        ua = rs.clean(self.headers.get("User-Agent"))
        country = (self.headers.get(cfg.country_header) or "").strip() if cfg.country_header else ""
        params = {
            "code": code, "domain": None, "referrer": rs.clean(self.headers.get("Referer")),
            "country": country.upper() if len(country) == 2 and country.isalpha() and country.upper() != "XX" else None,
            "user_agent": ua, "visitor": visitors.visitor(client, ua), "client": client,
        }
        with pool.connection() as conn:
            url = conn.execute(rs.RESOLVE_SQL, params, prepare=True).fetchone()[0]
        if url is None:
            return self.answer(404)
        self.answer(302, url)

    def answer(self, status, location=None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve():
    global pool
    pool = psycopg_pool.ConnectionPool(cfg.dsn, min_size=cfg.pool_size, max_size=cfg.pool_size,
                                       kwargs={"autocommit": True})
    Server((cfg.host, cfg.port), Handler).serve_forever()


if __name__ == "__main__":
    pids = []
    for _ in range(cfg.workers - 1):
        pid = os.fork()
        if pid == 0:
            serve()
        pids.append(pid)
    serve()
