#!/usr/bin/python3
"""redirect_service.py: a reference HTTP front end for pg_shorturl.

A small, production-shaped service that shows how an application uses the
extension: every answer is one or two SQL calls of its API, and the service
keeps no state of its own beyond its configuration.

    GET  /{code}       302 to shorturl.resolve(); 404, 410, 451 or 503 from
                       shorturl.link_status() when resolve() gives NULL
    HEAD /{code}       the same answer without counting a visit
    POST /api/links    shorturl.shorten() for the owner of a bearer API key,
                       rate-limited per key with shorturl.rate_limit()
    GET  /{code}+      a statistics page: visits(), visit_series() drawn in
                       the browser, visit_breakdown(), unique_visitors(),
                       qr_svg() of the short URL
    GET  /healthz      200 when the database answers

It runs as one supervising process and SHORTURL_WORKERS worker processes,
each with its own event loop (aiohttp) and its own pool of database
connections (psycopg_pool).  The parent binds one listening socket per
worker with SO_REUSEPORT, so the kernel spreads connections over the
workers, then forks them and waits; SIGTERM or SIGINT stops every worker
gracefully (requests in flight are answered, then the pools close).  A
worker that dies stops the whole service, for its supervisor (systemd,
Kubernetes) to restart: nothing here restarts half a service.

Configuration is by environment variables; see README.md beside this file,
or Config below.  Debian 12: python3-aiohttp, python3-psycopg,
python3-psycopg-pool; python3-uvloop is used if SHORTURL_UVLOOP=1.
"""

import asyncio
import base64
import functools
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import psycopg_pool
from aiohttp import web

log = logging.getLogger("shorturl")

# A text that can be a code or an alias (README, shorten()): anything else
# is answered 404 without asking the database.  Browsers ask for
# /favicon.ico on every visit, and resolve() would count such a lookup
# against the client's scan-guard budget.
CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CODE_PATTERN = "{code:[A-Za-z0-9_-]{1,64}}"

# The fields POST /api/links accepts, with the JSON types each may have
# (None: JSON null, the function's default).
POST_FIELDS = {
    "url": (str,),
    "alias": (str, type(None)),
    "expires_at": (str, type(None)),
    "max_visits": (int, type(None)),
    "title": (str, type(None)),
    "tags": (list, type(None)),
    "domain": (str, type(None)),
    "reuse": (bool, type(None)),
}

# Largest request body POST /api/links reads: a URL of shorturl.max_url_length
# (2 kB by default) with a title and 32 tags fits many times over.
MAX_BODY_BYTES = 64 * 1024

# A reason of disable_link() or of shorturl.blocked_hosts that starts with
# the word "legal" marks a legal takedown: 451 instead of 410 (the README's
# table of link_status()).
LEGAL_REASON_RE = re.compile(r"\s*legal\b", re.IGNORECASE)

# ---------------------------------------------------------------------
# SQL: every call the service makes, in one place.  Named parameters, so
# that a benchmark can swap a statement for another of the same shape.
# ---------------------------------------------------------------------

RESOLVE_SQL = """SELECT shorturl.resolve(%(code)s, %(domain)s, referrer => %(referrer)s,
    country => %(country)s, user_agent => %(user_agent)s, visitor => %(visitor)s,
    client => %(client)s)"""

# The same for many clicks in one statement (see Batcher): one row per
# click, in the order given.
RESOLVE_BATCH_SQL = """SELECT shorturl.resolve(c, d, referrer => r, country => co, user_agent => u,
    visitor => v, client => cl)
FROM unnest(%(code)s::text[], %(domain)s::text[], %(referrer)s::text[], %(country)s::text[],
            %(user_agent)s::text[], %(visitor)s::text[], %(client)s::text[])
     WITH ORDINALITY AS t(c, d, r, co, u, v, cl, n)
ORDER BY n"""

RESOLVE_FIELDS = ("code", "domain", "referrer", "country", "user_agent", "visitor", "client")

# After resolve() gave NULL.  resolve() has already counted an unknown code
# against the client, so the first link_status() goes without the client
# (a second miss would halve the client's budget); only for a code that
# exists is the client passed, so that a client blocked for scanning still
# hears "unknown", whatever the code.
STATUS_AFTER_RESOLVE_SQL = """SELECT CASE WHEN s = 'unknown' THEN s
    ELSE shorturl.link_status(%(code)s, %(domain)s, %(client)s) END
FROM shorturl.link_status(%(code)s, %(domain)s) s"""

# HEAD: no resolve() before it, so this one counts a miss.
STATUS_SQL = "SELECT shorturl.link_status(%(code)s, %(domain)s, %(client)s)"

URL_SQL = "SELECT url FROM shorturl.get_link(%(code)s, NULL, %(domain)s)"

DISABLED_REASON_SQL = "SELECT disabled_reason FROM shorturl.get_link(%(code)s, NULL, %(domain)s)"

# The reasons of the patterns that block a link's host: the host itself,
# or a domain it is under (a pattern blocks its subdomains).
BLOCKED_REASONS_SQL = """SELECT b.reason
FROM shorturl.get_link(%(code)s, NULL, %(domain)s) l,
     rtrim(lower(substring(l.url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#:]+)')), '.') h,
     shorturl.blocked_hosts b
WHERE h = b.pattern OR right(h, length(b.pattern) + 1) = '.' || b.pattern"""

RATE_LIMIT_SQL = """SELECT allowed, extract(epoch FROM retry_after)::float8
FROM shorturl.rate_limit(%(key)s, %(rate)s, %(burst)s)"""

SHORTEN_SQL = """SELECT shorturl.shorten(%(url)s, expires_at => %(expires_at)s::timestamptz,
    max_visits => %(max_visits)s::bigint, alias => %(alias)s, reuse => coalesce(%(reuse)s::boolean, false),
    owner => %(owner)s, title => %(title)s, tags => %(tags)s::text[], domain => %(domain)s)"""

LINK_SQL = """SELECT code, domain, url, status, visits, owner, title, tags, created_at,
    -- an operator's expires_at = 'infinity' is "never" (no datetime holds it)
    NULLIF(expires_at, 'infinity') AS expires_at, max_visits, disabled_at, disabled_reason
FROM shorturl.get_link(%(code)s, %(owner)s, %(domain)s)"""

VISITS_SQL = "SELECT shorturl.visits(%(code)s, %(domain)s)"

# The statistics page's range: 30 days by day, or 48 hours by hour; the
# first bucket starts at a whole day (hour), so there are exactly 30 (48).
RANGES = {
    "30d": ("day", "29 days", "day"),
    "48h": ("hour", "47 hours", "hour"),
}

SERIES_SQL = """SELECT extract(epoch FROM bucket_start)::bigint, visits
FROM shorturl.visit_series(%(code)s, date_trunc(%(trunc)s, now()) - %(back)s::interval, now(),
                           %(bucket)s, %(owner)s, %(domain)s)"""

BREAKDOWN_SQL = """SELECT value, visits
FROM shorturl.visit_breakdown(%(code)s, %(dimension)s, date_trunc(%(trunc)s, now()) - %(back)s::interval,
                              now(), %(owner)s, %(domain)s)"""

UNIQUE_SQL = """SELECT shorturl.unique_visitors(%(code)s, date_trunc(%(trunc)s, now()) - %(back)s::interval,
                                     now(), %(owner)s, %(domain)s)"""

QR_SQL = "SELECT shorturl.qr_svg(%(content)s)"

HEALTH_SQL = "SELECT mode FROM shorturl.stats"

# What a session of the pool sets once: series in UTC (the page says so),
# and no statement may hold a connection for long.
STATEMENT_TIMEOUT_S = 5
SESSION_SETUP_SQL = f"SET timezone = 'UTC'; SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'"

# SQLSTATEs of shorten() and its arguments' casts that are the caller's
# fault (README, "Links"), answered 400 with the message.
CLIENT_ERRORS = {
    "22023",  # invalid parameter value: the URL, alias, title, tags, expires_at, domain, blocked host
    "22004",  # null value not allowed: a NULL among the tags
    "2202E",  # array subscript error: a tags array of more than one dimension
    "22007",  # invalid datetime format: expires_at
    "22008",  # datetime field overflow: expires_at
    "22P02",  # invalid text representation
    "22003",  # numeric value out of range: max_visits beyond bigint
}


# ---------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------

def env(name, default=None):
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name, default):
    value = env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name}: expected a boolean, got {value!r}")


def parse_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"SHORTURL_LISTEN: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_networks(value):
    nets = []
    for item in (value or "").split(","):
        item = item.strip()
        if item:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise SystemExit(f"SHORTURL_TRUSTED_PROXIES: not an address or network: {item!r}")
    return tuple(nets)


def load_api_keys(path, inline):
    """load_api_keys reads "owner key" lines (a file) or "owner:key" items
    (comma-separated, from the environment) into {sha256(key): owner}.
    The owner "*" is the operator: it acts for no owner (NULL), sees every
    link's statistics, and its links have no owner."""
    keys = {}
    entries = []
    if path:
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise SystemExit(f"{path}:{n}: expected \"OWNER KEY\"")
            entries.append(parts)
    for item in (inline or "").split(","):
        if item.strip():
            owner, sep, key = item.strip().partition(":")
            if not sep or not owner or not key:
                raise SystemExit("SHORTURL_API_KEYS: expected OWNER:KEY[,OWNER:KEY...]")
            entries.append((owner, key))
    for owner, key in entries:
        if len(key) < 16:
            raise SystemExit(f"the API key of owner {owner!r} is shorter than 16 characters")
        digest = hashlib.sha256(key.encode()).digest()
        if digest in keys:
            # one key, two owners: whoever held it would act as the last
            raise SystemExit(f"an API key is given twice (owners {keys[digest]!r} and {owner!r})")
        keys[digest] = owner
    return keys


@dataclass
class Config:
    dsn: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    pool_size: int = 4
    pool_timeout: float = 5.0
    base_url: str = ""
    domains: frozenset = frozenset()
    domain_scheme: str = "https"
    trusted_proxies: tuple = ()
    country_header: str = ""
    api_keys: dict = field(default_factory=dict)
    post_rate: float = 1.0
    post_burst: float = 20.0
    stats_access: str = "owner"
    access_log: bool = True
    batch: bool = True
    uvloop: bool = False
    visitor_secret: bytes = b""
    shutdown_timeout: float = 10.0

    @classmethod
    def from_env(cls):
        host, port = parse_listen(env("SHORTURL_LISTEN", "127.0.0.1:8080"))
        stats_access = env("SHORTURL_STATS_ACCESS", "owner")
        if stats_access not in ("owner", "public"):
            raise SystemExit("SHORTURL_STATS_ACCESS: expected owner or public")
        return cls(
            dsn=env("SHORTURL_DSN", ""),
            host=host,
            port=port,
            workers=int(env("SHORTURL_WORKERS", str(os.cpu_count() or 1))),
            pool_size=int(env("SHORTURL_POOL_SIZE", "4")),
            pool_timeout=float(env("SHORTURL_POOL_TIMEOUT", "5")),
            base_url=env("SHORTURL_BASE_URL", "").rstrip("/"),
            domains=frozenset(d.strip().lower() for d in env("SHORTURL_DOMAINS", "").split(",") if d.strip()),
            domain_scheme=env("SHORTURL_DOMAIN_SCHEME", "https"),
            trusted_proxies=parse_networks(env("SHORTURL_TRUSTED_PROXIES")),
            country_header=env("SHORTURL_COUNTRY_HEADER", ""),
            api_keys=load_api_keys(env("SHORTURL_API_KEYS_FILE"), env("SHORTURL_API_KEYS")),
            post_rate=float(env("SHORTURL_POST_RATE", "1")),
            post_burst=float(env("SHORTURL_POST_BURST", "20")),
            stats_access=stats_access,
            access_log=env_bool("SHORTURL_ACCESS_LOG", True),
            batch=env_bool("SHORTURL_BATCH", True),
            uvloop=env_bool("SHORTURL_UVLOOP", False),
            visitor_secret=env("SHORTURL_VISITOR_SECRET", "").encode(),
            shutdown_timeout=float(env("SHORTURL_SHUTDOWN_TIMEOUT", "10")),
        )


# ---------------------------------------------------------------------
# What a request tells about its visitor
# ---------------------------------------------------------------------

SECONDS_PER_DAY = 86400


class Visitors:
    """Visitors derives the opaque visitor string of resolve() as the
    README's privacy recipe says: hex(hmac_sha256(daily_salt, client_ip |
    user_agent)).  No address is stored, and yesterday's visitors cannot be
    linked to today's once yesterday's salt is gone.

    The salts form a ratchet: each UTC day's salt is an HMAC of the day
    before's, and a worker keeps only today's.  Every worker starts from the
    same random seed (made by the parent before it forks, never written
    anywhere), so they all agree on a day's salt, and nothing that runs
    today can recompute yesterday's.  A restart makes a new seed: a visitor
    seen before and after it counts twice that day.  Several instances of
    the service behind one balancer must agree on the salt: give them the
    same SHORTURL_VISITOR_SECRET, from which a day's salt is derived
    directly, at the price that whoever holds the secret can recompute any
    day's salt."""

    def __init__(self, seed, secret=b""):
        self.secret = secret
        self.day = int(time.time() // SECONDS_PER_DAY)
        # with a secret, every instance derives the same salt from the
        # first day on; the seed serves only without one
        self.salt = None if secret else seed

    def salt_of_today(self):
        day = int(time.time() // SECONDS_PER_DAY)
        if self.secret:
            if day != self.day or self.salt is None:
                self.day, self.salt = day, hmac.new(self.secret, str(day).encode(), hashlib.sha256).digest()
            return self.salt
        while self.day < day:
            self.salt = hmac.new(self.salt, b"next day", hashlib.sha256).digest()
            self.day += 1
        return self.salt

    def visitor(self, client, user_agent):
        msg = f"{client}|{user_agent or ''}".encode("utf-8", "surrogateescape")
        return hmac.new(self.salt_of_today(), msg, hashlib.sha256).hexdigest()


def clean(text):
    """clean makes a header's text safe to send as SQL text: aiohttp keeps
    bytes that are not UTF-8 as surrogates, which psycopg cannot encode,
    and PostgreSQL's text has no NUL.  (A header that failed to encode
    would fail the whole batch of clicks it is in.)"""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@functools.lru_cache(maxsize=65536)
def parse_address(text, trusted):
    """parse_address returns an address in its one spelling and whether it
    is a trusted proxy, or (None, False) for a text that is no address.
    Cached: a proxy's and a client's addresses come again and again, and
    ipaddress parses slowly."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None, False
    # a listener on [::] sees an IPv4 peer as ::ffff:a.b.c.d, which no
    # IPv4 network of SHORTURL_TRUSTED_PROXIES contains: one spelling
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), any(ip in net for net in trusted)


def client_address(request, trusted):
    """client_address is the socket peer, or, when the peer is a trusted
    proxy, the rightmost address of X-Forwarded-For that is not a trusted
    proxy (the one the first trusted proxy saw).  Addresses left of it are
    whatever the client claimed, and are ignored."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    address = peer[0] if isinstance(peer, tuple) else "unknown"
    if not trusted or "X-Forwarded-For" not in request.headers:
        return address
    if not parse_address(address, trusted)[1]:
        return address
    for hop in reversed(",".join(request.headers.getall("X-Forwarded-For")).split(",")):
        ip, is_proxy = parse_address(hop, trusted)
        if ip is None:
            return address      # a malformed hop: trust nothing beyond it
        address = ip
        if not is_proxy:
            return address
    return address


def country_of(request, header):
    """country_of reads the GeoIP country a proxy or CDN put in a header
    (CF-IPCountry, X-Country-Code): two ASCII letters, or NULL.  resolve()
    refuses anything else with 22023, and Cloudflare sends XX (unknown) and
    T1 (Tor) besides real codes."""
    if not header:
        return None
    value = request.headers.get(header, "").strip()
    if len(value) == 2 and value.isascii() and value.isalpha() and value.upper() != "XX":
        return value.upper()
    return None


def domain_of(request, cfg):
    """domain_of is the short domain of a request: its Host (lower case,
    without the port) when the service is configured to serve it
    (SHORTURL_DOMAINS), else NULL, the default domain."""
    if not cfg.domains:
        return None
    host = request.host.lower()
    if not host.startswith("["):
        host = host.rsplit(":", 1)[0]
    return host if host in cfg.domains else None


def short_url(request, cfg, code, domain):
    if domain:
        return f"{cfg.domain_scheme}://{domain}/{code}"
    base = cfg.base_url or f"{request.scheme}://{request.host}"
    return f"{base}/{code}"


# ---------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------

NO_STORE = "no-store"


def location(url):
    """location makes a stored URL a Location header: a field value is
    ASCII, so the UTF-8 a path or query may hold is percent-encoded (what
    is encoded already, and every delimiter, stays as it is)."""
    if url.isascii():
        return url
    return urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def text_answer(status, text, **headers):
    return web.Response(status=status, text=text + "\n", headers={"Cache-Control": NO_STORE, **headers})


def json_answer(status, body, **headers):
    return web.Response(status=status, text=json.dumps(body, default=str) + "\n",
                        content_type="application/json", headers={"Cache-Control": NO_STORE, **headers})


def retry_after(seconds):
    return str(max(1, math.ceil(seconds)))


def db_unavailable(e):
    log.warning("database unavailable: %s", e)
    return text_answer(503, "Service Unavailable", **{"Retry-After": "1"})


# The DETAIL of a quota's 53400 says when to retry, rounded up to seconds
# below 2 minutes, minutes below 2 hours, else hours: "retry_after: 36
# seconds."  It is the only place the wait is given.
QUOTA_WAIT_RE = re.compile(r"retry_after: (\d+) (second|minute|hour)")
QUOTA_WAIT_UNIT = {"second": 1, "minute": 60, "hour": 3600}
QUOTA_WAIT_DEFAULT = 60


def quota_wait(diag):
    m = QUOTA_WAIT_RE.search((diag.message_detail if diag else None) or "")
    return int(m.group(1)) * QUOTA_WAIT_UNIT[m.group(2)] if m else QUOTA_WAIT_DEFAULT


def db_error_answer(e):
    """db_error_answer maps an error of the database to an HTTP answer:
    the caller's mistakes (by SQLSTATE, never by message) to 4xx with the
    message, the server's state to 503, anything else to 500."""
    state = getattr(e, "sqlstate", None)
    diag = getattr(e, "diag", None)
    message = (diag.message_primary if diag else None) or str(e)
    body = {"error": message, "sqlstate": state}
    if state in CLIENT_ERRORS:
        return json_answer(400, body)
    if state == "23505":                   # alias taken, retired, or a code already handed out
        return json_answer(409, body)
    if state == "53400":                   # the owner's shorturl.shorten_quota
        return json_answer(429, body, **{"Retry-After": retry_after(quota_wait(diag))})
    if state in ("25006", "54000"):        # read-only (a standby, a failover); no free code
        log.warning("shorten() failed: %s %s", state, message)
        return json_answer(503, body, **{"Retry-After": "5"})
    if isinstance(e, (psycopg.OperationalError, psycopg_pool.PoolTimeout)) and state is None:
        return db_unavailable(e)
    log.error("database error %s: %s", state, message)
    return json_answer(500, {"error": "internal error", "sqlstate": state})


class Batcher:
    """Batcher sends the resolve() calls of concurrent redirects to the
    database together ("smart batching", no timer): a call starts a
    statement at once while the worker has a free connection, and calls
    that arrive while every connection is busy wait and go together, in one
    RESOLVE_BATCH_SQL, as soon as one is free.  Unloaded, each click is a
    statement of its own, as without the batcher; loaded, a round trip and
    a statement serve many clicks.  On the benchmark machine a round trip
    costs the service more CPU than anything else it does (mostly the
    kernel's send that wakes a database backend on the other core), and
    batching halves the service's CPU per click under load.

    Each click is still its own resolve() call: counted once, a limited
    link served at most max_visits times.  Should the statement fail, every
    click of the batch fails (503 or 500), and none is retried: in shared
    mode a click counts even when its statement fails after it, so a retry
    could count it twice.  (resolve() raises only for a damaged
    installation; a statement_timeout can also end a batch.)"""

    # clicks in one statement at most (a batch of 256 is 70 kB of text)
    MAX_BATCH = 256

    def __init__(self, handlers):
        self.h = handlers
        self.queue = []
        self.busy = 0

    async def resolve(self, params):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.append((params, fut))
        if self.busy < self.h.cfg.pool_size:
            self.busy += 1
            loop.create_task(self.drain())
        # A stalled server (not one that refuses) answers nothing and the
        # clicks queued behind would wait for ever: each waits as long as
        # a connection and a statement may take, then hears 503.  Taken out
        # of the queue, it is not counted after its visitor left; a click
        # already in a statement may still count (as any 503 allows).
        try:
            return await asyncio.wait_for(asyncio.shield(fut),
                                          self.h.cfg.pool_timeout + STATEMENT_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.queue = [(p, f) for p, f in self.queue if f is not fut]
            raise psycopg_pool.PoolTimeout("no answer from the database in time") from None

    async def drain(self):
        """drain runs statements while clicks wait, each taking all of them
        (up to MAX_BATCH); at most one drain per connection of the pool."""
        try:
            while self.queue:
                batch, self.queue = self.queue[:self.MAX_BATCH], self.queue[self.MAX_BATCH:]
                await self.run(batch)
        finally:
            self.busy -= 1

    async def run(self, batch):
        try:
            if len(batch) == 1:
                urls = [await self.h.one(RESOLVE_SQL, batch[0][0])]
            else:
                arrays = {f: [p[f] for p, _ in batch] for f in RESOLVE_FIELDS}
                async with self.h.pool.connection() as conn:
                    cur = await conn.execute(RESOLVE_BATCH_SQL, arrays, prepare=True)
                    urls = [u for (u,) in await cur.fetchall()]
        except psycopg.Error as e:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), url in zip(batch, urls):
            if not fut.done():
                fut.set_result(url)


class Handlers:
    """The endpoints.  One instance per worker, holding its pool."""

    def __init__(self, cfg, visitors):
        self.cfg = cfg
        self.visitors = visitors
        self.pool = None
        self.page = StatsPage()
        self.batcher = Batcher(self) if cfg.batch else None

    # -- lifecycle ----------------------------------------------------

    async def start(self, app):
        async def configure(conn):
            await conn.execute(SESSION_SETUP_SQL)

        # autocommit: each call is its own transaction, one round trip (a
        # pool in a transaction would add BEGIN and COMMIT: three).  The
        # pool opens in the background, so that the service starts while
        # the database is down and answers 503 until it is up.
        self.pool = psycopg_pool.AsyncConnectionPool(
            self.cfg.dsn, min_size=self.cfg.pool_size, max_size=self.cfg.pool_size,
            timeout=self.cfg.pool_timeout, open=False, configure=configure,
            kwargs={"autocommit": True, "application_name": "shorturl-redirect"})
        await self.pool.open(wait=False)

    async def stop(self, app):
        await self.pool.close()

    async def one(self, sql, params):
        async with self.pool.connection() as conn:
            row = await (await conn.execute(sql, params, prepare=True)).fetchone()
            return row[0] if row else None

    # -- GET and HEAD /{code} -----------------------------------------

    async def redirect(self, request):
        cfg = self.cfg
        headers = request.headers
        client = client_address(request, cfg.trusted_proxies)
        user_agent = clean(headers.get("User-Agent"))
        params = {
            "code": request.match_info["code"],
            "domain": domain_of(request, cfg),
            "referrer": clean(headers.get("Referer")),
            "country": country_of(request, cfg.country_header),
            "user_agent": user_agent,
            "visitor": self.visitors.visitor(client, user_agent),
            "client": client,
        }
        try:
            if request.method == "HEAD":
                return await self.head(params)
            if self.batcher:
                url = await self.batcher.resolve(params)
            else:
                url = await self.one(RESOLVE_SQL, params)
            if url is not None:
                # no-store: a browser or proxy that kept the redirect would
                # skip the next click, uncounted
                return web.Response(status=302, headers={"Location": location(url), "Cache-Control": NO_STORE})
            status = await self.one(STATUS_AFTER_RESOLVE_SQL, params)
            return await self.not_served(status, params)
        except psycopg.Error as e:
            return db_error_answer(e)

    async def head(self, params):
        status = await self.one(STATUS_SQL, params)
        if status == "active":
            url = await self.one(URL_SQL, params)
            if url is not None:
                return web.Response(status=302, headers={"Location": location(url), "Cache-Control": NO_STORE})
        return await self.not_served(status, params)

    async def not_served(self, status, params):
        """not_served answers a link resolve() did not serve, by its
        link_status() (the README's table)."""
        if status in (None, "unknown"):
            return text_answer(404, "Not Found")
        if status in ("expired", "exhausted"):
            return text_answer(410, "Gone")
        if status == "disabled":
            reason = await self.one(DISABLED_REASON_SQL, params)
            if reason and LEGAL_REASON_RE.match(reason):
                return text_answer(451, "Unavailable For Legal Reasons")
            return text_answer(410, "Gone")
        if status == "blocked":
            async with self.pool.connection() as conn:
                reasons = [r for (r,) in await (await conn.execute(BLOCKED_REASONS_SQL, params)).fetchall()]
            if any(r and LEGAL_REASON_RE.match(r) for r in reasons):
                return text_answer(451, "Unavailable For Legal Reasons")
            return text_answer(410, "Gone")
        # active, yet not served: a limited link where clicks cannot be
        # counted now (table mode, a full counter table, a standby), or a
        # race with a change of the link.  Worth a retry.
        log.warning("link %r is %s but resolve() gave NULL", params["code"], status)
        return text_answer(503, "Service Unavailable", **{"Retry-After": "1"})

    # -- authentication -----------------------------------------------

    def owner_of(self, request, basic_too=False):
        """owner_of returns the owner whose API key the request carries
        (Authorization: Bearer KEY, or Basic with the key as the password
        when basic_too), or None.  "*" is the operator."""
        auth = request.headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        key = None
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif basic_too and scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                key = None
        if not key:
            return None
        return self.cfg.api_keys.get(hashlib.sha256(key.encode()).digest())

    # -- POST /api/links ----------------------------------------------

    async def create(self, request):
        owner = self.owner_of(request)
        if owner is None:
            return json_answer(401, {"error": "a valid API key is required (Authorization: Bearer KEY)"},
                               **{"WWW-Authenticate": 'Bearer realm="shorturl"'})
        try:
            body = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return json_answer(413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"})
        except (ValueError, UnicodeDecodeError, RecursionError):
            return json_answer(400, {"error": "the body is not JSON"})
        problem = check_link_body(body)
        if problem:
            return json_answer(400, {"error": problem})
        params = {k: body.get(k) for k in POST_FIELDS}
        params["owner"] = None if owner == "*" else owner
        try:
            async with self.pool.connection() as conn:
                # the token first: a request refused for its content still
                # costs one, so that bad requests cannot be sent for free
                allowed, wait = await (await conn.execute(RATE_LIMIT_SQL, {
                    "key": f"post:{owner}", "rate": self.cfg.post_rate, "burst": self.cfg.post_burst,
                }, prepare=True)).fetchone()
                if not allowed:
                    return json_answer(429, {"error": "too many requests for this API key"},
                                       **{"Retry-After": retry_after(wait)})
                async with conn.transaction():
                    code = (await (await conn.execute(SHORTEN_SQL, params)).fetchone())[0]
                    link = await (await conn.execute(LINK_SQL, {
                        "code": code, "owner": params["owner"], "domain": params["domain"],
                    })).fetchone()
        except psycopg.Error as e:
            return db_error_answer(e)
        except psycopg_pool.PoolTimeout as e:
            return db_unavailable(e)
        info = link_json(link)
        url = short_url(request, self.cfg, code, info["domain"])
        info.update(short_url=url, stats_url=url + "+")
        return json_answer(201, info, Location=url)

    # -- GET /{code}+ -------------------------------------------------

    async def stats(self, request):
        cfg = self.cfg
        owner = None
        if cfg.stats_access == "owner":
            owner = self.owner_of(request, basic_too=True)
            if owner is None:
                return text_answer(401, "Unauthorized: give an API key (as the password of Basic authentication, or as a Bearer token)",
                                   **{"WWW-Authenticate": 'Basic realm="shorturl statistics", charset="UTF-8"'})
            if owner == "*":
                owner = None
        range_name = request.query.get("range", "30d")
        if range_name not in RANGES:
            return text_answer(400, "range must be 30d or 48h")
        bucket, back, trunc = RANGES[range_name]
        code = request.match_info["code"]
        domain = domain_of(request, cfg)
        q = {"code": code, "domain": domain, "owner": owner, "bucket": bucket, "back": back, "trunc": trunc}
        try:
            async with self.pool.connection() as conn:
                link = await (await conn.execute(LINK_SQL, q)).fetchone()
                if link is None:
                    return text_answer(404, "Not Found")
                data = link_json(link)
                data["short_url"] = short_url(request, cfg, code, data["domain"])
                # get_link() checked the owner; visits() takes none
                data["live_visits"] = (await (await conn.execute(VISITS_SQL, q)).fetchone())[0]
                data["range"] = range_name
                data["bucket"] = bucket
                data["series"] = [[t, v] for t, v in await (await conn.execute(SERIES_SQL, q)).fetchall()]
                for dimension in ("referrer", "country", "device"):
                    rows = await (await conn.execute(BREAKDOWN_SQL, {**q, "dimension": dimension})).fetchall()
                    data[dimension] = [[v, n] for v, n in rows]
                data["unique_visitors"] = (await (await conn.execute(UNIQUE_SQL, q)).fetchone())[0]
                qr = None
                if request.query.get("format") != "json":
                    qr = (await (await conn.execute(QR_SQL, {"content": data["short_url"]})).fetchone())[0]
        except psycopg.Error as e:
            return db_error_answer(e)
        except psycopg_pool.PoolTimeout as e:
            return db_unavailable(e)
        if request.query.get("format") == "json":
            return json_answer(200, data)
        return self.page.render(data, qr)

    # -- GET /healthz -------------------------------------------------

    async def health(self, request):
        try:
            mode = await self.one(HEALTH_SQL, {})
        except (psycopg.Error, psycopg_pool.PoolTimeout) as e:
            # the reason goes to the log, not to whoever asks
            log.warning("health check: database unavailable: %s", e)
            return json_answer(503, {"status": "unavailable"})
        # mode "sync": limited links are not served (the README's table mode)
        return json_answer(200, {"status": "ok", "mode": mode, "worker": os.getpid()})

    async def not_found(self, request):
        return text_answer(404, "Not Found")


def check_link_body(body):
    """check_link_body returns what is wrong with a POST /api/links body
    in its shape (the database checks the values), or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(body) - set(POST_FIELDS))
    if unknown:
        return f"unknown field {unknown[0]!r}; the fields are {', '.join(POST_FIELDS)}"
    if "url" not in body:
        return "url is required"
    for name, value in body.items():
        types = POST_FIELDS[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{name} must be {' or '.join('null' if t is type(None) else t.__name__ for t in types)}"
    if body.get("tags") is not None and not all(isinstance(t, str) for t in body["tags"]):
        return "tags must be an array of strings"
    # what PostgreSQL's text cannot hold, or UTF-8 cannot encode (a lone
    # surrogate of a \ud800 escape): the client's mistake, not ours
    for name, value in body.items():
        for text in (value if isinstance(value, list) else [value]):
            if isinstance(text, str):
                if "\x00" in text:
                    return f"{name} must not contain a NUL character"
                try:
                    text.encode()
                except UnicodeEncodeError:
                    return f"{name} is not valid Unicode (a lone surrogate)"
    # shorten() takes 'infinity', which no Python datetime can hold; a link
    # that never expires leaves expires_at out
    if isinstance(body.get("expires_at"), str) and body["expires_at"].strip().lower().lstrip("+-") == "infinity":
        return "expires_at must be a date and time (leave it out for a link that never expires)"
    return None


def link_json(row):
    (code, domain, url, status, visits, owner, title, tags, created_at,
     expires_at, max_visits, disabled_at, disabled_reason) = row
    iso = lambda t: t.isoformat() if t is not None else None
    return {"code": code, "domain": domain, "url": url, "status": status, "visits": visits,
            "owner": owner, "title": title, "tags": tags, "created_at": iso(created_at),
            "expires_at": iso(expires_at), "max_visits": max_visits,
            "disabled_at": iso(disabled_at), "disabled_reason": disabled_reason}


# ---------------------------------------------------------------------
# The statistics page
# ---------------------------------------------------------------------

class StatsPage:
    """StatsPage fills stats_page.html.  The page carries its data as JSON
    in a <script type="application/json">, and one inline script (allowed
    by its hash in the Content-Security-Policy) draws the chart into the
    <svg> in the browser: no external script, style or font."""

    def __init__(self):
        self.template = (Path(__file__).parent / "stats_page.html").read_text()
        script = re.search(r"<script>(.*?)</script>", self.template, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        self.csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
                    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                    "frame-ancestors 'none'")

    @staticmethod
    def bars(rows):
        """bars makes a breakdown's rows, each with a bar as long as its
        share of the largest value."""
        out = []
        top = max((n for _, n in rows), default=0)
        for value, n in rows:
            width = 100.0 * n / top if top else 0
            out.append(f'<tr><td class="k" title="{html.escape(value)}">{html.escape(value)}</td><td class="n">{n:,}</td>'
                       f'<td class="b"><span style="width:{width:.1f}%"></span></td></tr>')
        return "\n".join(out) or '<tr><td colspan="3" class="none">no visits with this detail yet</td></tr>'

    def render(self, d, qr_svg):
        qr = re.sub(r"^<\?xml[^>]*\?>\s*", "", qr_svg or "")
        qr = qr.replace("<svg ", '<svg role="img" aria-label="QR code of the short URL" ', 1)
        data_json = json.dumps({"bucket": d["bucket"], "range": d["range"], "series": d["series"],
                                "live_visits": d["live_visits"]})
        data_json = data_json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        fields = {
            "title": html.escape(d["title"] or d["code"]),
            "code": html.escape(d["code"]),
            "short_url": html.escape(d["short_url"]),
            "url": html.escape(d["url"]),
            "status": html.escape(d["status"]),
            "created_at": html.escape((d["created_at"] or "")[:16].replace("T", " ")),
            "expires": html.escape((d["expires_at"] or "never")[:16].replace("T", " ")),
            "max_visits": "{:,}".format(d["max_visits"]) if d["max_visits"] else "no limit",
            "live_visits": f"{d['live_visits'] or 0:,}",
            "unique_visitors": f"{d['unique_visitors'] or 0:,}",
            "range_label": "the last 30 days" if d["range"] == "30d" else "the last 48 hours",
            "bucket_label": "by day" if d["range"] == "30d" else "by hour",
            "range_30d": "on" if d["range"] == "30d" else "",
            "range_48h": "on" if d["range"] == "48h" else "",
            "referrers": self.bars(d["referrer"]),
            "countries": self.bars(d["country"]),
            "devices": self.bars(d["device"]),
            "qr": qr,
            "data_json": data_json,
        }
        page = re.sub(r"\{\{(\w+)\}\}", lambda m: fields[m.group(1)], self.template)
        return web.Response(text=page, content_type="text/html", headers={
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": self.csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        })


# ---------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------

def make_app(cfg, visitors):
    h = Handlers(cfg, visitors)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.on_startup.append(h.start)
    app.on_cleanup.append(h.stop)
    app.router.add_get("/healthz", h.health, allow_head=False)
    app.router.add_post("/api/links", h.create)
    app.router.add_get("/" + CODE_PATTERN + "+", h.stats, allow_head=False)
    app.router.add_route("GET", "/" + CODE_PATTERN, h.redirect)
    app.router.add_route("HEAD", "/" + CODE_PATTERN, h.redirect)
    app.router.add_route("*", "/{tail:.*}", h.not_found)
    return app


async def serve(cfg, sock, visitors):
    """serve runs one worker until SIGTERM or SIGINT, then stops taking
    connections, answers the requests in flight (up to
    SHORTURL_SHUTDOWN_TIMEOUT) and closes its pool."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(cfg, visitors), handle_signals=False,
                           access_log=log.getChild("access") if cfg.access_log else None,
                           # no client address: the service stores none
                           access_log_format='"%r" %s %b %Tfs')
    await runner.setup()
    await web.SockSite(runner, sock, shutdown_timeout=cfg.shutdown_timeout).start()
    log.info("worker ready")
    await stop.wait()
    log.info("worker stopping")
    await runner.cleanup()


def run_worker(cfg, sock, visitors):
    if cfg.uvloop:
        import uvloop
        uvloop.install()
    asyncio.run(serve(cfg, sock, visitors))


def listening_sockets(cfg):
    """listening_sockets binds one socket per worker to the same address
    with SO_REUSEPORT (the first picks the port when SHORTURL_LISTEN says
    port 0), so that the kernel spreads new connections over the workers."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    socks = []
    port = cfg.port
    for _ in range(cfg.workers):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if cfg.workers > 1:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((cfg.host, port))
        s.listen(1024)
        s.set_inheritable(True)
        port = s.getsockname()[1]
        socks.append(s)
    return socks, port


def main():
    logging.basicConfig(stream=sys.stderr, level=env("SHORTURL_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    cfg = Config.from_env()
    if cfg.workers < 1 or cfg.pool_size < 1:
        raise SystemExit("SHORTURL_WORKERS and SHORTURL_POOL_SIZE must be at least 1")
    socks, port = listening_sockets(cfg)
    # made before the fork, so that every worker derives the same salts
    visitors = Visitors(os.urandom(32), cfg.visitor_secret)
    log.info("listening on %s:%d: %d worker(s), %d connection(s) each, stats pages: %s, %d API key(s)",
             cfg.host, port, cfg.workers, cfg.pool_size, cfg.stats_access, len(cfg.api_keys))
    if cfg.workers == 1:
        run_worker(cfg, socks[0], visitors)
        log.info("stopped")
        return

    children = {}
    for i, sock in enumerate(socks):
        pid = os.fork()
        if pid == 0:
            for other in socks:
                if other is not sock:
                    other.close()
            code = 0
            try:
                run_worker(cfg, sock, visitors)
            except BaseException:
                log.exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = i
    for sock in socks:
        sock.close()
    visitors.salt = None        # the parent forgets the seed

    stopping = False

    def stop_all(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    status = 0
    while children:
        try:
            pid, wstatus = os.wait()
        except ChildProcessError:
            break
        children.pop(pid, None)
        code = os.waitstatus_to_exitcode(wstatus)
        if not stopping:
            log.error("worker %d exited (%d): stopping the service", pid, code)
            status = 1
            stop_all(None, None)
        elif code != 0:
            status = 1
    log.info("stopped")
    sys.exit(status)


if __name__ == "__main__":
    main()
