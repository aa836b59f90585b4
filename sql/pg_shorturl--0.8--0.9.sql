/* pg_shorturl 0.8 -> 0.9: abuse protection.  Rate limits in shared
 * memory (rate_limit()), a guard against clients scanning for codes
 * (resolve() and link_status() take a client), a blocklist of hosts, and
 * per-owner quotas of shorten() (shorturl.shorten_quota). */

\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.9'" to load this file. \quit

-------------------------------------------------------------------------
-- Rate limits
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.rate_limit(key text, rate double precision, burst double precision,
                                    cost double precision DEFAULT 1,
                                    OUT allowed boolean, OUT remaining double precision,
                                    OUT retry_after interval)
RETURNS record
AS 'MODULE_PATHNAME', 'shorturl_rate_limit'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.rate_limit(text, double precision, double precision, double precision) IS
'takes cost tokens from the bucket of key (burst tokens, refilled at rate a second; GCRA in shared memory, per server and database): allowed, the tokens left, and when a refused request would be allowed';

REVOKE ALL ON FUNCTION shorturl.rate_limit(text, double precision, double precision, double precision) FROM PUBLIC;

CREATE FUNCTION shorturl._check_quota(owner text)
RETURNS void
AS 'MODULE_PATHNAME', 'shorturl_check_quota'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl._check_quota(text) IS
'takes one link from the owner''s shorturl.shorten_quota on this server, or raises 53400 as shorten() does (for a coordinator, which stores links with store_link())';

REVOKE ALL ON FUNCTION shorturl._check_quota(text) FROM PUBLIC;

-------------------------------------------------------------------------
-- Blocked hosts
-------------------------------------------------------------------------

CREATE FUNCTION shorturl._host_pattern(pattern text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_host_pattern'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl._host_pattern(text) IS
'a host pattern as shorturl.blocked_hosts stores it: lower-case ASCII (xn-- for an internationalised name), no final dot; 22023 for anything that is not a host';

CREATE FUNCTION shorturl._url_blocked(url text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_url_blocked'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl._url_blocked(text) IS
'whether the host of a stored URL matches a pattern of shorturl.blocked_hosts (for the status of get_link() and list_links())';

CREATE FUNCTION shorturl.hosts_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shorturl_hosts_changed'
LANGUAGE C;

COMMENT ON FUNCTION shorturl.hosts_changed() IS
'trigger on shorturl.blocked_hosts and shorturl.domains: makes every session reload its copy when a change commits';

REVOKE ALL ON FUNCTION shorturl._host_pattern(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl._url_blocked(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.hosts_changed() FROM PUBLIC;

CREATE TABLE shorturl.blocked_hosts (
    pattern text COLLATE "C" PRIMARY KEY,
    reason text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.blocked_hosts IS
'hosts links may not point at: shorten() and update_link() refuse them, and existing links to them resolve to NULL with status blocked, from the statement after the change commits';
COMMENT ON COLUMN shorturl.blocked_hosts.pattern IS 'a host name, which also blocks its subdomains (example.com blocks a.example.com), or an IP address; stored in lower-case ASCII';
COMMENT ON COLUMN shorturl.blocked_hosts.reason IS 'why, as shorten() reports it';
COMMENT ON COLUMN shorturl.blocked_hosts.created_at IS 'when the pattern was added';

CREATE FUNCTION shorturl.blocked_hosts_normalize()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.pattern := shorturl._host_pattern(NEW.pattern);
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION shorturl.blocked_hosts_normalize() IS
'trigger on shorturl.blocked_hosts: stores each pattern in the form hosts are compared in, or refuses one that is not a host';

REVOKE ALL ON FUNCTION shorturl.blocked_hosts_normalize() FROM PUBLIC;

CREATE TRIGGER blocked_hosts_normalize
BEFORE INSERT OR UPDATE OF pattern ON shorturl.blocked_hosts
FOR EACH ROW EXECUTE FUNCTION shorturl.blocked_hosts_normalize();

COMMENT ON TRIGGER blocked_hosts_normalize ON shorturl.blocked_hosts IS
'lower-cases each pattern (an internationalised one to its xn-- form) and refuses what is not a host';

CREATE TRIGGER blocked_hosts_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shorturl.blocked_hosts
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.hosts_changed();

COMMENT ON TRIGGER blocked_hosts_changed ON shorturl.blocked_hosts IS
'invalidates the per-session copies of the blocklist';

ALTER TABLE shorturl.blocked_hosts ENABLE ALWAYS TRIGGER blocked_hosts_changed;

CREATE TRIGGER domains_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shorturl.domains
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.hosts_changed();

COMMENT ON TRIGGER domains_changed ON shorturl.domains IS
'invalidates the per-session copies of the short domains, which shorten() refuses as targets';

ALTER TABLE shorturl.domains ENABLE ALWAYS TRIGGER domains_changed;

REVOKE ALL ON shorturl.blocked_hosts FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('shorturl.blocked_hosts', '');

-------------------------------------------------------------------------
-- resolve() and link_status() take the caller's client
--
-- Both are dropped and made again with a client argument, with their
-- grants, each by its grantor (as 0.8 did for resolve()).
-------------------------------------------------------------------------

SELECT pg_catalog.set_config('pg_shorturl.acl_resolve',
    (SELECT coalesce(p.proacl::text, '') FROM pg_catalog.pg_proc p
      WHERE p.oid = 'shorturl.resolve(text, text, text, text, text, text)'::pg_catalog.regprocedure), true);
SELECT pg_catalog.set_config('pg_shorturl.acl_link_status',
    (SELECT coalesce(p.proacl::text, '') FROM pg_catalog.pg_proc p
      WHERE p.oid = 'shorturl.link_status(text, text)'::pg_catalog.regprocedure), true);

DROP FUNCTION shorturl.resolve(text, text, text, text, text, text);
DROP FUNCTION shorturl.link_status(text, text);

CREATE FUNCTION shorturl.resolve(code text, domain text, referrer text DEFAULT NULL,
                                 country text DEFAULT NULL, user_agent text DEFAULT NULL,
                                 visitor text DEFAULT NULL, client text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_resolve_visit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.resolve(text, text, text, text, text, text, text) IS
'URL of an active link on a short domain (NULL or '''': the default one), counting one visit with its referrer, country, user agent and visitor for the link''s analytics (each optional); NULL for an unknown, expired, exhausted, disabled or blocked code or domain, and for every code while the client (the caller''s IP or API key, optional) is blocked for scanning';

CREATE FUNCTION shorturl.link_status(code text, domain text, client text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_link_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.link_status(text, text, text) IS
'active, expired, exhausted, disabled, blocked or unknown, for a code on a short domain (NULL or '''': the default one), without counting a visit; unknown for every code while the client (optional) is blocked for scanning';

REVOKE ALL ON FUNCTION shorturl.resolve(text, text, text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.link_status(text, text, text) FROM PUBLIC;

DO $$
DECLARE
    carry record;
    f regprocedure;
    old_acl text;
    fresh aclitem[];
    fn_owner oid;
    a record;
    progress boolean;
    done text[];                -- grantor/grantee pairs granted
BEGIN
    FOR carry IN SELECT * FROM (VALUES
            ('shorturl.resolve(text, text, text, text, text, text, text)', 'pg_shorturl.acl_resolve'),
            ('shorturl.link_status(text, text, text)', 'pg_shorturl.acl_link_status')) v(fn, setting)
    LOOP
        f := carry.fn::regprocedure;
        old_acl := pg_catalog.current_setting(carry.setting);
        CONTINUE WHEN old_acl = '';
        fn_owner := (SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.oid = f);
        progress := true;
        done := '{}';
        WHILE progress LOOP
            progress := false;
            FOR a IN SELECT x.grantor, x.grantee, x.is_grantable
                       FROM pg_catalog.aclexplode(old_acl::aclitem[]) x
                      WHERE x.privilege_type = 'EXECUTE' AND x.grantee <> fn_owner
            LOOP
                CONTINUE WHEN (a.grantor || '/' || a.grantee) = ANY (done);
                CONTINUE WHEN a.grantor <> fn_owner
                    AND NOT pg_catalog.has_function_privilege(a.grantor, f, 'EXECUTE WITH GRANT OPTION');
                IF a.grantor <> fn_owner THEN
                    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', pg_catalog.pg_get_userbyid(a.grantor));
                END IF;
                EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                    CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
                IF a.grantor <> fn_owner THEN
                    RESET ROLE;
                END IF;
                done := done || (a.grantor || '/' || a.grantee);
                progress := true;
            END LOOP;
        END LOOP;
        fresh := (SELECT p.proacl FROM pg_catalog.pg_proc p WHERE p.oid = f);
        IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
            UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh
            WHERE i.objoid = f AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
        END IF;
    END LOOP;
END
$$;

-------------------------------------------------------------------------
-- get_link() and list_links() say blocked as link_status() does
-------------------------------------------------------------------------

-- _info makes a link_info of a row of shorturl.links.  The status is
-- link_status()'s, checked in the same order: disabled, blocked, expired
-- (by the clock), exhausted (by the live count), active.
CREATE OR REPLACE FUNCTION shorturl._info(l shorturl.links)
RETURNS shorturl.link_info
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint := shorturl._live_visits(l.id);
BEGIN
    RETURN ROW(l.code, nullif(l.domain, ''), l.url,
               CASE WHEN l.disabled_at IS NOT NULL THEN 'disabled'
                    WHEN shorturl._url_blocked(l.url) THEN 'blocked'
                    WHEN l.expires_at <= clock_timestamp() THEN 'expired'
                    WHEN n >= l.max_visits THEN 'exhausted'
                    ELSE 'active' END,
               n, l.owner, l.title, l.tags, l.created_at, l.expires_at, l.max_visits,
               l.exhausted_at, l.disabled_at, l.disabled_reason, l.is_alias)::shorturl.link_info;
END
$$;

-------------------------------------------------------------------------
-- shorturl.stats gains the guards' figures
-------------------------------------------------------------------------

DROP VIEW shorturl.stats;
DROP FUNCTION shorturl.stats();

CREATE FUNCTION shorturl.stats(
    OUT mode text,
    OUT pending_links bigint,
    OUT pending_visits bigint,
    OUT flushed_visits bigint,
    OUT flushes bigint,
    OUT last_flush_at timestamptz,
    OUT last_flush_ms double precision,
    OUT purged bigint,
    OUT last_purge_at timestamptz,
    OUT room_waits bigint,
    OUT sync_fallbacks bigint,
    OUT refused_clicks bigint,
    OUT dropped_deltas bigint,
    OUT worker_pid integer,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT max_pending_links integer,
    OUT pending_dimension_values bigint,
    OUT pending_visitors bigint,
    OUT dimension_overflow bigint,
    OUT dimension_dropped bigint,
    OUT visitors_dropped bigint,
    OUT max_pending_dimensions integer,
    OUT max_pending_visitors integer,
    OUT scan_clients_blocked bigint,
    OUT scan_lookups_blocked bigint,
    OUT host_lookups_blocked bigint,
    OUT rate_keys bigint,
    OUT rate_keys_reclaimed bigint,
    OUT rate_keys_full bigint,
    OUT max_rate_keys integer)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the worker of this database: mode, unflushed clicks and analytics, flushes, purges, waits, fallbacks, errors; the guards against scanners and blocked hosts; the rate-limit table';
COMMENT ON COLUMN shorturl.stats.mode IS
'shared: clicks are counted in shared memory and flushed by a worker; sync: each click is written in the clicking transaction; standby: a hot standby, which counts nothing';
COMMENT ON COLUMN shorturl.stats.pending_links IS 'links of this database with clicks not yet written to shorturl.visit_counts';
COMMENT ON COLUMN shorturl.stats.pending_visits IS 'clicks of this database held in shared memory, not yet written';
COMMENT ON COLUMN shorturl.stats.flushed_visits IS 'clicks written by flushes since the server started';
COMMENT ON COLUMN shorturl.stats.flushes IS 'flushes committed since the server started';
COMMENT ON COLUMN shorturl.stats.last_flush_at IS 'when the latest flush committed';
COMMENT ON COLUMN shorturl.stats.last_flush_ms IS 'how long the latest flush took, in milliseconds';
COMMENT ON COLUMN shorturl.stats.purged IS 'links deleted by purges since the server started';
COMMENT ON COLUMN shorturl.stats.last_purge_at IS 'when the latest purge batch ran';
COMMENT ON COLUMN shorturl.stats.room_waits IS 'clicks that waited for a flush because the counter table was full';
COMMENT ON COLUMN shorturl.stats.sync_fallbacks IS 'clicks counted synchronously because the counter table stayed full';
COMMENT ON COLUMN shorturl.stats.refused_clicks IS 'clicks of limited links refused because they could only have been counted where a rollback could undo them';
COMMENT ON COLUMN shorturl.stats.dropped_deltas IS 'clicks dropped because their link was deleted before they were flushed';
COMMENT ON COLUMN shorturl.stats.worker_pid IS 'process id of the worker serving this database; NULL when none runs';
COMMENT ON COLUMN shorturl.stats.last_error IS 'message of the latest error of a flush or purge';
COMMENT ON COLUMN shorturl.stats.last_error_at IS 'when that error happened';
COMMENT ON COLUMN shorturl.stats.max_pending_links IS 'the setting shorturl.max_pending_links: links the counter table can hold';
COMMENT ON COLUMN shorturl.stats.pending_dimension_values IS 'dimension values (link, day, dimension, value) of this database held in shared memory, not yet written';
COMMENT ON COLUMN shorturl.stats.pending_visitors IS 'visitors (link, day, visitor) of this database held in shared memory, not yet written';
COMMENT ON COLUMN shorturl.stats.dimension_overflow IS 'dimension values counted as "other" because shared memory had no room for them';
COMMENT ON COLUMN shorturl.stats.dimension_dropped IS 'dimension values not kept because shared memory had no room, not even for "other" (the clicks still count)';
COMMENT ON COLUMN shorturl.stats.visitors_dropped IS 'visitors not kept for unique_visitors() because shared memory had no room (the clicks still count)';
COMMENT ON COLUMN shorturl.stats.max_pending_dimensions IS 'shorturl.max_pending_dimensions: the dimension values shared memory can hold';
COMMENT ON COLUMN shorturl.stats.max_pending_visitors IS 'shorturl.max_pending_visitors: the visitors shared memory can hold';
COMMENT ON COLUMN shorturl.stats.scan_clients_blocked IS 'times a client of resolve() or link_status() passed shorturl.scan_limit and was blocked, since the server started';
COMMENT ON COLUMN shorturl.stats.scan_lookups_blocked IS 'lookups answered NULL or unknown because their client was blocked for scanning';
COMMENT ON COLUMN shorturl.stats.host_lookups_blocked IS 'lookups of links whose host is in shorturl.blocked_hosts (answered NULL or blocked)';
COMMENT ON COLUMN shorturl.stats.rate_keys IS 'keys in the rate-limit table, of every database: rate_limit() keys, scanning clients, owners with a quota';
COMMENT ON COLUMN shorturl.stats.rate_keys_reclaimed IS 'keys with full buckets forgotten to make room, since the server started (every database)';
COMMENT ON COLUMN shorturl.stats.rate_keys_full IS 'requests of new keys the full table had no room for, answered by shorturl.rate_limit_when_full (every database)';
COMMENT ON COLUMN shorturl.stats.max_rate_keys IS 'shorturl.max_rate_keys: the keys the rate-limit table can hold';

GRANT SELECT ON shorturl.stats TO PUBLIC;
