-- grants.sql: the database role of the redirect service, with only what it
-- needs.  Run it as the extension's owner (a superuser), in the database
-- where CREATE EXTENSION pg_shorturl ran:
--
--     psql -v ON_ERROR_STOP=1 -d shortener -f grants.sql
--
-- The role logs in with no table privilege but one column grant: it calls
-- the extension's functions, which are revoked from PUBLIC (README,
-- "Privileges").  Give it a password, or map it in pg_hba.conf, as your
-- site does; the service connects with SHORTURL_DSN.

CREATE ROLE shorturl_app LOGIN;

GRANT EXECUTE ON FUNCTION
    -- GET /{code}: the redirect, counting the visit with its facts
    shorturl.resolve(text, text, text, text, text, text, text),
    -- GET /{code} when resolve() gave NULL, and HEAD /{code}
    shorturl.link_status(text, text, text),
    -- POST /api/links
    shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text),
    shorturl.rate_limit(text, double precision, double precision, double precision),
    -- POST /api/links (the link as stored), HEAD /{code} (its URL, uncounted),
    -- the 451 rule (disabled_reason) and the statistics page
    shorturl.get_link(text, text, text),
    -- GET /{code}+
    shorturl.visits(text, text),
    shorturl.visit_series(text, timestamptz, timestamptz, text, text, text),
    shorturl.visit_breakdown(text, text, timestamptz, timestamptz, text, text),
    shorturl.unique_visitors(text, timestamptz, timestamptz, text, text)
TO shorturl_app;
-- shorturl.qr_svg() and the shorturl.stats view (GET /healthz) are PUBLIC.

-- The 451 rule for a blocked host reads the reason of the pattern that
-- blocks it (the table is the owner's only, like every other).
GRANT SELECT (pattern, reason) ON shorturl.blocked_hosts TO shorturl_app;

-- The service's own paths must never be aliases: /healthz would shadow a
-- link named healthz.  "api" is reserved already.
INSERT INTO shorturl.reserved_aliases (alias) VALUES ('healthz') ON CONFLICT DO NOTHING;
