/* pg_shorturl 0.7 -> 0.8: visit analytics */

\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.8'" to load this file. \quit

-------------------------------------------------------------------------
-- Where the analytics are kept
--
-- Every table is keyed by the link and written by the flush (or the
-- worker's analytics job), never per click: a click adds to shared
-- memory only.  A link's rows go with it (links_deleted, links_truncated)
-- and with reset_visits().  Days are UTC days.
-------------------------------------------------------------------------

ALTER TABLE shorturl.pending_visits ADD COLUMN bots bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN shorturl.pending_visits.bots IS 'of those clicks, how many were bots''';

-- The fillfactor leaves room for the flush's updates of a row (HOT).
CREATE TABLE shorturl.link_visits_hourly (
    link_id bigint NOT NULL,
    hour timestamptz NOT NULL,
    visits bigint NOT NULL,
    bots bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, hour)
) WITH (fillfactor = 80);

CREATE INDEX link_visits_hourly_hour_idx ON shorturl.link_visits_hourly (hour);

COMMENT ON TABLE shorturl.link_visits_hourly IS
'visits of each link per hour, written by the flush with the counts; the analytics job merges hours older than shorturl.hourly_retention into shorturl.link_visits_daily';
COMMENT ON COLUMN shorturl.link_visits_hourly.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.link_visits_hourly.hour IS 'start of the hour';
COMMENT ON COLUMN shorturl.link_visits_hourly.visits IS 'visits in the hour, bots'' included';
COMMENT ON COLUMN shorturl.link_visits_hourly.bots IS 'of those, visits by bots';
COMMENT ON INDEX shorturl.link_visits_hourly_hour_idx IS 'finds the hours the analytics job merges into days';

CREATE TABLE shorturl.link_visits_daily (
    link_id bigint NOT NULL,
    day date NOT NULL,
    visits bigint NOT NULL,
    bots bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, day)
);

CREATE INDEX link_visits_daily_day_idx ON shorturl.link_visits_daily (day);

COMMENT ON TABLE shorturl.link_visits_daily IS
'visits of each link per UTC day, for the days older than shorturl.hourly_retention; deleted after shorturl.analytics_retention';
COMMENT ON COLUMN shorturl.link_visits_daily.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.link_visits_daily.day IS 'the UTC day';
COMMENT ON COLUMN shorturl.link_visits_daily.visits IS 'visits in the day, bots'' included';
COMMENT ON COLUMN shorturl.link_visits_daily.bots IS 'of those, visits by bots';
COMMENT ON INDEX shorturl.link_visits_daily_day_idx IS 'finds the days past shorturl.analytics_retention';

CREATE TABLE shorturl.link_visits_breakdown (
    link_id bigint NOT NULL,
    day date NOT NULL,
    dimension text NOT NULL CHECK (dimension IN ('referrer', 'country', 'device')),
    value text NOT NULL,
    visits bigint NOT NULL,
    bots bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, day, dimension, value)
) WITH (fillfactor = 80);

CREATE INDEX link_visits_breakdown_day_idx ON shorturl.link_visits_breakdown (day);

COMMENT ON TABLE shorturl.link_visits_breakdown IS
'visits of each link per UTC day by referrer host, country and device class, at most shorturl.max_dimension_values values per link, day and dimension (the rest under "other")';
COMMENT ON COLUMN shorturl.link_visits_breakdown.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.link_visits_breakdown.day IS 'the UTC day';
COMMENT ON COLUMN shorturl.link_visits_breakdown.dimension IS 'referrer, country or device';
COMMENT ON COLUMN shorturl.link_visits_breakdown.value IS 'a referrer''s host (direct: none; other: not a URL, or beyond the limit), an ISO 3166-1 alpha-2 country (unknown: none), or desktop, mobile, tablet, bot, other (unknown: no user agent)';
COMMENT ON COLUMN shorturl.link_visits_breakdown.visits IS 'visits with that value, bots'' included';
COMMENT ON COLUMN shorturl.link_visits_breakdown.bots IS 'of those, visits by bots';
COMMENT ON INDEX shorturl.link_visits_breakdown_day_idx IS 'finds the days past shorturl.analytics_retention';

CREATE TABLE shorturl.link_visitors_daily (
    link_id bigint NOT NULL,
    day date NOT NULL,
    sketch bytea NOT NULL,
    PRIMARY KEY (link_id, day)
);

CREATE INDEX link_visitors_daily_day_idx ON shorturl.link_visitors_daily (day);

-- A sketch has at most 3,074 bytes of random-looking data: not worth
-- compressing, and always small enough to stay in the row.
ALTER TABLE shorturl.link_visitors_daily ALTER COLUMN sketch SET STORAGE PLAIN;

COMMENT ON TABLE shorturl.link_visitors_daily IS
'the distinct visitors of each link per UTC day, as a HyperLogLog sketch: exact up to 384 visitors (8 bytes each), then 4,096 registers of 6 bits (3,074 bytes; standard error 1.6%)';
COMMENT ON COLUMN shorturl.link_visitors_daily.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.link_visitors_daily.day IS 'the UTC day';
COMMENT ON COLUMN shorturl.link_visitors_daily.sketch IS 'the sketch (format in src/hll.c): the visitors'' hashes, or registers';
COMMENT ON INDEX shorturl.link_visitors_daily_day_idx IS 'finds the days past shorturl.analytics_retention';

SELECT pg_catalog.pg_extension_config_dump('shorturl.link_visits_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.link_visits_daily', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.link_visits_breakdown', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.link_visitors_daily', '');
REVOKE ALL ON shorturl.link_visits_hourly FROM PUBLIC;
REVOKE ALL ON shorturl.link_visits_daily FROM PUBLIC;
REVOKE ALL ON shorturl.link_visits_breakdown FROM PUBLIC;
REVOKE ALL ON shorturl.link_visitors_daily FROM PUBLIC;

-- The visits counted before 0.8 have no hour: each link's go to the hour
-- of its latest visit (or of its creation), so its series adds up to its
-- count.  The analytics job moves the old ones into days.
INSERT INTO shorturl.link_visits_hourly (link_id, hour, visits)
SELECT c.link_id,
       pg_catalog.date_bin('1 hour', coalesce(c.last_visit_at, l.created_at), '2000-01-01 00:00+00'),
       c.visits
  FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
 WHERE c.visits > 0;

-- A link's analytics go with it.
CREATE OR REPLACE FUNCTION shorturl.links_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT shorturl._moving() THEN
        INSERT INTO shorturl.retired_codes (code, domain)
        SELECT code, domain FROM gone WHERE is_alias
        ON CONFLICT DO NOTHING;
    END IF;
    DELETE FROM shorturl.visit_counts WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.pending_visits WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visits_hourly WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visits_daily WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visits_breakdown WHERE link_id IN (SELECT id FROM gone);
    DELETE FROM shorturl.link_visitors_daily WHERE link_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_deleted() IS
'trigger on shorturl.links: retires the aliases of deleted links and deletes their counts and analytics';

CREATE OR REPLACE FUNCTION shorturl.links_truncated()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO shorturl.retired_codes (code, domain)
    SELECT code, domain FROM shorturl.links WHERE is_alias
    ON CONFLICT DO NOTHING;
    TRUNCATE shorturl.visit_counts, shorturl.pending_visits, shorturl.link_visits_hourly,
             shorturl.link_visits_daily, shorturl.link_visits_breakdown, shorturl.link_visitors_daily;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_truncated() IS
'trigger on shorturl.links: retires every alias and empties the counts and analytics before a TRUNCATE';

-- An imported link's visits go to the hour it was made in, so its series
-- adds up to its count.
CREATE OR REPLACE FUNCTION shorturl._import_link(code text, url text, created_at timestamptz, visits bigint,
                                      expires_at timestamptz, owner text, title text, tags text[],
                                      domain text, OUT outcome text, OUT detail text,
                                      link_id bigint DEFAULT NULL, issued boolean DEFAULT false)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored_url text;
    checked_tags text[];
    new_id bigint;
    d text := lower(coalesce(domain, ''));
BEGIN
    outcome := 'rejected';
    IF d <> '' AND NOT EXISTS (SELECT FROM shorturl.domains x WHERE x.domain = d) THEN
        detail := format('unknown domain "%s"', domain);
        RETURN;
    ELSIF code IS NULL OR url IS NULL THEN
        detail := 'code and url must not be null';
        RETURN;
    ELSIF visits < 0 THEN
        detail := format('visits must not be negative, not %s', visits);
        RETURN;
    ELSIF visits > 1000000000000000 THEN
        -- counting on from near 2^63 would overflow at a flush
        detail := format('visits must be at most 1000000000000000, not %s', visits);
        RETURN;
    END IF;
    BEGIN
        stored_url := shorturl._check_url(url);
        checked_tags := shorturl._check_meta(owner, title, tags);
    EXCEPTION WHEN others THEN
        detail := SQLERRM;
        RETURN;
    END;
    -- imported before (idempotence), or taken by another link
    IF EXISTS (SELECT FROM shorturl.links l WHERE l.code = _import_link.code AND l.domain = d) THEN
        IF EXISTS (SELECT FROM shorturl.links l
                   WHERE l.code = _import_link.code AND l.domain = d AND l.url = stored_url) THEN
            outcome := 'unchanged';
        ELSE
            detail := format('code "%s" is taken by a link to another URL', code);
        END IF;
        RETURN;
    END IF;
    -- (the coordinator knows whether the code is one it handed out)
    IF issued THEN
        detail := format('alias "%s" is already taken: it is a generated code that was handed out before', code);
        RETURN;
    END IF;
    BEGIN
        PERFORM shorturl._check_alias(code, d);
    EXCEPTION WHEN others THEN
        detail := SQLERRM;
        RETURN;
    END;
    INSERT INTO shorturl.links AS l (id, code, domain, url, created_at, expires_at, is_alias, owner, title, tags)
    VALUES (coalesce(link_id, nextval('shorturl.link_id_seq')), code, d, stored_url,
            coalesce(created_at, now()), expires_at,
            true, owner, title, checked_tags)
    ON CONFLICT DO NOTHING
    RETURNING l.id INTO new_id;
    IF new_id IS NULL THEN
        detail := format('code "%s" was taken meanwhile', code);
        RETURN;
    END IF;
    IF visits > 0 THEN
        INSERT INTO shorturl.visit_counts (link_id, visits) VALUES (new_id, visits);
        -- the only time known for them: the link's creation
        INSERT INTO shorturl.link_visits_hourly (link_id, hour, visits)
        VALUES (new_id, date_bin('1 hour', coalesce(created_at, now()), '2000-01-01 00:00+00'), visits);
    END IF;
    outcome := 'imported';
    detail := NULL;
END
$$;

-------------------------------------------------------------------------
-- resolve() with what the application knows of the visit
--
-- resolve(code, domain) gains referrer, country, user_agent and visitor,
-- all optional; it is dropped and made again, with its grants.
-------------------------------------------------------------------------

SELECT pg_catalog.set_config('pg_shorturl.acl_resolve',
    (SELECT coalesce(p.proacl::text, '') FROM pg_catalog.pg_proc p
      WHERE p.oid = 'shorturl.resolve(text, text)'::pg_catalog.regprocedure), true);

DROP FUNCTION shorturl.resolve(text, text);

CREATE FUNCTION shorturl.resolve(code text, domain text, referrer text DEFAULT NULL,
                                 country text DEFAULT NULL, user_agent text DEFAULT NULL,
                                 visitor text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_resolve_visit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.resolve(text, text, text, text, text, text) IS
'URL of an active link on a short domain (NULL or '''': the default one), counting one visit with its referrer, country, user agent and visitor for the link''s analytics (each optional); NULL for an unknown, expired, exhausted or disabled code or domain';

REVOKE ALL ON FUNCTION shorturl.resolve(text, text, text, text, text, text) FROM PUBLIC;

-- the grants resolve(text, text) had, each by its grantor (see 0.7's
-- _carry_grants(), which this repeats for one function)
DO $$
DECLARE
    f regprocedure := 'shorturl.resolve(text, text, text, text, text, text)';
    old_acl text := pg_catalog.current_setting('pg_shorturl.acl_resolve');
    fresh aclitem[] := (SELECT p.proacl FROM pg_catalog.pg_proc p WHERE p.oid = f);
    fn_owner oid := (SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.oid = f);
    a record;
    progress boolean := true;
    done text[] := '{}';        -- grantor/grantee pairs granted
BEGIN
    IF old_acl = '' THEN
        RETURN;
    END IF;
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
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh
        WHERE i.objoid = f AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objsubid = 0;
    END IF;
END
$$;

-------------------------------------------------------------------------
-- Reading the analytics
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.device_class(user_agent text)
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_device_class'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.device_class(text) IS
'desktop, mobile, tablet, bot or other: the device class of a User-Agent header, as resolve() records it';

CREATE FUNCTION shorturl._visit_series(link_id bigint, from_time timestamptz, to_time timestamptz,
                                       bucket text)
RETURNS TABLE (bucket_start timestamptz, visits bigint)
AS 'MODULE_PATHNAME', 'shorturl_visit_series_by_id'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl._visit_series(bigint, timestamptz, timestamptz, text) IS
'visit_series() for a link the caller found';

REVOKE ALL ON FUNCTION shorturl._visit_series(bigint, timestamptz, timestamptz, text) FROM PUBLIC;

CREATE FUNCTION shorturl._unique_visitors(link_id bigint, from_day date, to_day date)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_unique_visitors_by_id'
LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl._unique_visitors(bigint, date, date) IS
'unique_visitors() for a link the caller found, over the UTC days [from_day, to_day)';

REVOKE ALL ON FUNCTION shorturl._unique_visitors(bigint, date, date) FROM PUBLIC;

CREATE FUNCTION shorturl.visit_series(code text, "from" timestamptz, "to" timestamptz,
                                      bucket text DEFAULT 'day', owner text DEFAULT NULL,
                                      domain text DEFAULT NULL)
RETURNS TABLE (bucket_start timestamptz, visits bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links := shorturl._find(code, owner, domain, false);
BEGIN
    IF l.id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM shorturl._visit_series(l.id, coalesce("from", l.created_at),
                                                       coalesce("to", pg_catalog.clock_timestamp()),
                                                       coalesce(bucket, 'day'));
END
$$;

COMMENT ON FUNCTION shorturl.visit_series(text, timestamptz, timestamptz, text, text, text) IS
'a link''s visits per hour, day, week or month of the session''s time zone, from the bucket holding "from" (NULL: the link''s creation) to the one before "to" (NULL: now), empty buckets included, unflushed clicks included; bots'' only when shorturl.count_bots is on; no rows for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.visit_breakdown(code text, dimension text, "from" timestamptz DEFAULT NULL,
                                         "to" timestamptz DEFAULT NULL, owner text DEFAULT NULL,
                                         domain text DEFAULT NULL)
RETURNS TABLE (value text, visits bigint)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links;
    with_bots boolean := pg_catalog.current_setting('shorturl.count_bots')::boolean;
BEGIN
    IF dimension IS NULL OR dimension NOT IN ('referrer', 'country', 'device') THEN
        RAISE EXCEPTION 'unknown dimension "%"', dimension
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A dimension is referrer, country or device.';
    END IF;
    l := shorturl._find(code, owner, domain, false);
    IF l.id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT b.value, (pg_catalog.sum(b.visits) - CASE WHEN with_bots THEN 0 ELSE pg_catalog.sum(b.bots) END)::bigint AS n
          FROM shorturl.link_visits_breakdown b
         WHERE b.link_id = l.id AND b.dimension = visit_breakdown.dimension
           AND b.day >= coalesce(("from" AT TIME ZONE 'UTC')::date, '-infinity')
           AND b.day::timestamp AT TIME ZONE 'UTC' < coalesce("to", 'infinity')
         GROUP BY b.value
        HAVING pg_catalog.sum(b.visits) - CASE WHEN with_bots THEN 0 ELSE pg_catalog.sum(b.bots) END > 0
         ORDER BY n DESC, b.value COLLATE "C";
END
$$;

COMMENT ON FUNCTION shorturl.visit_breakdown(text, text, timestamptz, timestamptz, text, text) IS
'a link''s flushed visits by referrer, country or device over the UTC days that overlap ["from", "to") (NULL: no bound), largest first; bots'' only when shorturl.count_bots is on; no rows for an unknown code or another owner''s link';

CREATE FUNCTION shorturl.unique_visitors(code text, "from" timestamptz DEFAULT NULL,
                                         "to" timestamptz DEFAULT NULL, owner text DEFAULT NULL,
                                         domain text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.links := shorturl._find(code, owner, domain, false);
BEGIN
    IF l.id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN shorturl._unique_visitors(l.id,
        coalesce(("from" AT TIME ZONE 'UTC')::date, '-infinity'),
        coalesce(CASE WHEN ("to" AT TIME ZONE 'UTC')::time = '00:00' THEN ("to" AT TIME ZONE 'UTC')::date
                      ELSE ("to" AT TIME ZONE 'UTC')::date + 1 END, 'infinity'));
END
$$;

COMMENT ON FUNCTION shorturl.unique_visitors(text, timestamptz, timestamptz, text, text) IS
'estimated distinct visitors (resolve()''s visitor, bots excluded) of a link over the UTC days that overlap ["from", "to") (NULL: no bound), from its flushed daily sketches merged; NULL for an unknown code or another owner''s link';

REVOKE ALL ON FUNCTION shorturl.visit_series(text, timestamptz, timestamptz, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.visit_breakdown(text, text, timestamptz, timestamptz, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.unique_visitors(text, timestamptz, timestamptz, text, text) FROM PUBLIC;

CREATE FUNCTION shorturl.purge_analytics()
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_purge_analytics'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.purge_analytics() IS
'runs the worker''s analytics job now, in this transaction: merges hours older than shorturl.hourly_retention into days and deletes days older than shorturl.analytics_retention; returns the rows it merged or deleted';

REVOKE ALL ON FUNCTION shorturl.purge_analytics() FROM PUBLIC;

-------------------------------------------------------------------------
-- shorturl.stats gains the analytics' memory
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
    OUT max_pending_visitors integer)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the worker of this database: mode, unflushed clicks and analytics, flushes, purges, waits, fallbacks, errors';
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

GRANT SELECT ON shorturl.stats TO PUBLIC;
