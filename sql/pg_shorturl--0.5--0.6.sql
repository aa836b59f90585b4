/* pg_shorturl--0.5--0.6.sql: links get ids, counts move to their own
 * table, codes are never reissued, the coordinator leaves the core. */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_shorturl UPDATE TO '0.6'" to load this file. \quit

-- A 0.5 coordinator (links partitioned over its shards) cannot become a 0.6
-- database: coordinators are now the extension pg_shorturl_coordinator.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class
         WHERE oid = 'shorturl.links'::pg_catalog.regclass) = 'p' THEN
        RAISE EXCEPTION 'this database is a pg_shorturl 0.5 coordinator, which cannot be updated in place'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'In 0.6 a coordinator is the extension pg_shorturl_coordinator; the shards update as usual.',
                  HINT = 'See "Upgrading a 0.5 cluster" in the README: keep the key and the sequence, drop the extension, create pg_shorturl_coordinator and add the shards again.';
    END IF;
END
$$;

--
-- The 0.5 coordinator's and shard side's functions and objects go.
--
DROP PROCEDURE shorturl.rebalance(integer);
DROP FUNCTION shorturl.rebalance_plan();
DROP FUNCTION shorturl.active_map();
DROP FUNCTION shorturl.set_shard_weight(text, double precision);
DROP FUNCTION shorturl.remove_shard(text);
DROP FUNCTION shorturl.drop_shard(text);
DROP FUNCTION shorturl.add_shard(text, text, double precision);
DROP FUNCTION shorturl.repartition();
DROP FUNCTION shorturl.make_coordinator();
DROP FUNCTION shorturl.coordinator_shorten(text, timestamptz, bigint, text, boolean);
DROP FUNCTION shorturl.coordinator_visits(text);
DROP FUNCTION shorturl.coordinator_link_status(text);
DROP FUNCTION shorturl.coordinator_link(text);
DROP FUNCTION shorturl.coordinator_resolve(text);
DROP FUNCTION shorturl.rebalance_pending();
DROP FUNCTION shorturl.shard_store(text, text, text, timestamptz, bigint, boolean);
DROP FUNCTION shorturl.shard_link(text, text);
DROP FUNCTION shorturl.shard_resolve(text, text);
DROP FUNCTION shorturl.shard_query(text, text);
DROP FUNCTION shorturl.shard_failed(text, text);
DROP FUNCTION shorturl.shard_connection(text);
DROP TABLE shorturl.rebalance_state;
DROP OPERATOR CLASS shorturl.code_shard_ops USING hash;
DROP OPERATOR FAMILY shorturl.code_shard_ops USING hash;
DROP FUNCTION shorturl.shard_partition_hash32(text);
DROP FUNCTION shorturl.shard_partition_hash(text, bigint);
DROP FUNCTION shorturl.lock_rebalance(boolean);
DROP FUNCTION shorturl.conninfo_options(text);
DROP FUNCTION shorturl.move_out(text[]);
DROP FUNCTION shorturl.forget_counters(text[]);
DROP FUNCTION shorturl.link_here(text);
DROP FUNCTION shorturl.resolve_here(text);
DROP FUNCTION shorturl.store_link(text, text, timestamptz, bigint, boolean);

COMMENT ON COLUMN shorturl.shards.retiring IS
'true for a shard being removed from a cluster: route() gives it no keys, and a rebalance moves its links away, then drops it';

CREATE FUNCTION shorturl.route_position(key text)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_route_position_text'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION shorturl.route_position(text) IS
'position (from 0) of route(key) among all shards of shorturl.shards sorted by name, retiring ones included: how a coordinator numbers its PL/Proxy partitions';

--
-- The code key: no install-time row any more (the first shorten() makes
-- it), and the widths are data.
--
DROP TRIGGER code_key_replace ON shorturl.code_key;
DROP FUNCTION shorturl.code_key_replace();

COMMENT ON SEQUENCE shorturl.link_id_seq IS
'link ids: every link takes one, and a generated code is its id placed in the code space of shorturl.code_key';

-- 0.5 generated codes at shorturl.code_length (7 unless set otherwise):
-- the narrowest generated code tells the width they started at.
ALTER TABLE shorturl.code_key
    ADD COLUMN width_from bigint[] NOT NULL DEFAULT '{0}',
    ADD COLUMN widths integer[] NOT NULL DEFAULT '{7}',
    ADD CHECK (pg_catalog.cardinality(width_from) = pg_catalog.cardinality(widths)
               AND pg_catalog.cardinality(widths) BETWEEN 1 AND 10
               AND width_from[1] = 0);

UPDATE shorturl.code_key
   SET widths = ARRAY[w]
  FROM (SELECT pg_catalog.min(pg_catalog.length(code)) AS w
          FROM shorturl.links WHERE NOT is_alias) s
 WHERE s.w BETWEEN 4 AND 10;

COMMENT ON TABLE shorturl.code_key IS
'the 128-bit key of the permutation that turns link ids into codes, and the code widths; secret, one row, readable by the extension owner only';
COMMENT ON COLUMN shorturl.code_key.width_from IS 'first link id of each width segment (the first is 0); change with shorturl.set_code_width()';
COMMENT ON COLUMN shorturl.code_key.widths IS 'code width each segment starts at; ids then fill wider codes as each width is used up';

--
-- Links get ids: a generated code's is the id it was made from, an alias
-- takes a fresh one.  Counts move to shorturl.visit_counts.
--
DROP TRIGGER quarantine_aliases ON shorturl.links;
DROP FUNCTION shorturl.quarantine_aliases();

ALTER TABLE shorturl.links
    ADD COLUMN id bigint,
    ADD COLUMN domain text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN disabled_reason text;

UPDATE shorturl.links
   SET id = CASE WHEN NOT is_alias THEN shorturl.decode_id(code) END;
-- A generated code that this database's sequence did not issue was made
-- by a 0.5 coordinator (with its key) for this database as its shard.
-- Such a shard's links take ids no coordinator will ever issue: the
-- negative range, from a hash of the code (a code lives on one shard, so
-- ids stay distinct across the cluster, save a 2^-63 chance per pair that
-- the primary key would refuse).  Elsewhere an alias takes the next id.
DO $$
DECLARE
    issued bigint := (SELECT CASE WHEN is_called THEN last_value ELSE -1 END
                        FROM shorturl.link_id_seq);
BEGIN
    UPDATE shorturl.links SET id = NULL WHERE id > issued;
    IF EXISTS (SELECT FROM shorturl.links WHERE id IS NULL AND NOT is_alias) THEN
        RAISE NOTICE 'pg_shorturl: this database holds links a 0.5 coordinator made: they get ids of their own (see "Upgrading a 0.5 cluster" in the README)';
        UPDATE shorturl.links
           SET id = -1 - (shorturl.hash64(code) OPERATOR(pg_catalog.&) 9223372036854775807)
         WHERE id IS NULL;
    END IF;
END
$$;
UPDATE shorturl.links
   SET id = pg_catalog.nextval('shorturl.link_id_seq')
 WHERE id IS NULL;

CREATE TABLE shorturl.visit_counts (
    link_id bigint PRIMARY KEY,
    visits bigint NOT NULL CHECK (visits >= 0),
    last_visit_at timestamptz
) WITH (fillfactor = 50);

INSERT INTO shorturl.visit_counts (link_id, visits, last_visit_at)
SELECT id, visits, last_visit_at FROM shorturl.links
 WHERE visits > 0 OR last_visit_at IS NOT NULL;

ALTER TABLE shorturl.links
    DROP CONSTRAINT links_pkey,
    DROP COLUMN visits,
    DROP COLUMN last_visit_at,
    ALTER COLUMN id SET NOT NULL,
    ADD PRIMARY KEY (id),
    ADD CONSTRAINT links_code_key UNIQUE (code, domain);

DROP INDEX shorturl.links_url_hash_idx;
CREATE INDEX links_url_hash_idx ON shorturl.links (url_hash, id);

COMMENT ON TABLE shorturl.links IS 'the short links: code (on a domain) -> url, with expiry by date and by visit count';
COMMENT ON COLUMN shorturl.links.id IS 'the link''s identity, from shorturl.link_id_seq: never shared by two links, even after one is deleted';
COMMENT ON COLUMN shorturl.links.domain IS 'the short domain the code lives on; '''' for the default one';
COMMENT ON COLUMN shorturl.links.url IS 'the target URL, as given to shorten() (a non-ASCII host in its ASCII form)';
COMMENT ON COLUMN shorturl.links.exhausted_at IS 'when its visits reached max_visits; NULL while the link has visits left';
COMMENT ON COLUMN shorturl.links.disabled_at IS 'when the link was disabled; NULL while it is enabled';
COMMENT ON COLUMN shorturl.links.disabled_reason IS 'why the link was disabled';
COMMENT ON INDEX shorturl.links_code_key IS 'finds a link by code and domain: the one probe resolve() makes';
COMMENT ON INDEX shorturl.links_url_hash_idx IS 'finds the newest links with a URL for shorten(reuse => true)';

COMMENT ON TABLE shorturl.visit_counts IS
'visits of each link, as flushed from shared memory (shorturl.visits() adds those not yet written)';
COMMENT ON COLUMN shorturl.visit_counts.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.visit_counts.visits IS 'visits written so far';
COMMENT ON COLUMN shorturl.visit_counts.last_visit_at IS 'time of the latest visit written';

CREATE TABLE shorturl.pending_visits (
    link_id bigint NOT NULL,
    visits bigint NOT NULL DEFAULT 1 CHECK (visits >= 1),
    visited_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp()
);

CREATE INDEX pending_visits_link_id_idx ON shorturl.pending_visits (link_id);

COMMENT ON TABLE shorturl.pending_visits IS
'clicks counted synchronously (without shared memory) and not yet folded into shorturl.visit_counts by a flush; appending a row makes concurrent clicks of one link never wait for each other';
COMMENT ON COLUMN shorturl.pending_visits.link_id IS 'the link (shorturl.links.id)';
COMMENT ON COLUMN shorturl.pending_visits.visits IS 'clicks this row counts';
COMMENT ON COLUMN shorturl.pending_visits.visited_at IS 'when they happened';
COMMENT ON INDEX shorturl.pending_visits_link_id_idx IS 'adds up a link''s unfolded clicks';

--
-- The alias quarantine becomes permanent retirement.
--
CREATE TABLE shorturl.retired_codes (
    code text COLLATE "C" NOT NULL,
    domain text COLLATE "C" NOT NULL DEFAULT '',
    retired_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (code, domain)
);

INSERT INTO shorturl.retired_codes (code, retired_at)
SELECT alias, deleted_at FROM shorturl.alias_quarantine;
DROP TABLE shorturl.alias_quarantine;

COMMENT ON TABLE shorturl.retired_codes IS
'aliases of deleted links, which shorten() never hands out again; the owner may delete a row to release an alias on purpose';
COMMENT ON COLUMN shorturl.retired_codes.code IS 'the alias';
COMMENT ON COLUMN shorturl.retired_codes.domain IS 'its domain; '''' for the default one';
COMMENT ON COLUMN shorturl.retired_codes.retired_at IS 'when its link was deleted';

-- What goes with a deleted link, whoever deletes it (purge, DELETE, a
-- management function): its alias is retired and its counts are deleted.
-- A rebalance moving links away (move_out(), which _moving() reports)
-- deletes without retiring: the links live on elsewhere.  SECURITY
-- DEFINER: whoever deletes, the retirement is written.
CREATE FUNCTION shorturl._moving()
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_moving'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl._moving() IS
'true while this session''s move_out() deletes the links it moves (for the links_deleted trigger)';

REVOKE ALL ON FUNCTION shorturl._moving() FROM PUBLIC;

CREATE FUNCTION shorturl.links_deleted()
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
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_deleted() IS
'trigger on shorturl.links: retires the aliases of deleted links and deletes their counts';

CREATE TRIGGER links_deleted
AFTER DELETE ON shorturl.links
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.links_deleted();

COMMENT ON TRIGGER links_deleted ON shorturl.links IS
'retires the aliases of deleted links and deletes their counts, whoever deletes them';

CREATE FUNCTION shorturl.links_truncated()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO shorturl.retired_codes (code, domain)
    SELECT code, domain FROM shorturl.links WHERE is_alias
    ON CONFLICT DO NOTHING;
    TRUNCATE shorturl.visit_counts, shorturl.pending_visits;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION shorturl.links_truncated() IS
'trigger on shorturl.links: retires every alias and empties the counts before a TRUNCATE';

CREATE TRIGGER links_truncated
BEFORE TRUNCATE ON shorturl.links
FOR EACH STATEMENT EXECUTE FUNCTION shorturl.links_truncated();

COMMENT ON TRIGGER links_truncated ON shorturl.links IS
'retires every alias and empties the counts, so TRUNCATE keeps the promise that a code is never issued twice';

-- Not ENABLE ALWAYS: a logical replica gets retired_codes from its
-- publisher, and a data-only restore with --disable-triggers would reset
-- the setting anyway; session_replication_role = replica is a deliberate
-- bypass, as DISABLE TRIGGER is.

SELECT pg_catalog.pg_extension_config_dump('shorturl.visit_counts', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.pending_visits', '');
SELECT pg_catalog.pg_extension_config_dump('shorturl.retired_codes', '');

REVOKE ALL ON shorturl.visit_counts FROM PUBLIC;
REVOKE ALL ON shorturl.pending_visits FROM PUBLIC;
REVOKE ALL ON shorturl.retired_codes FROM PUBLIC;

--
-- The API: expiry by the clock, exact reads labelled PARALLEL UNSAFE,
-- the code width as data, trigger functions not executable by PUBLIC.
--
COMMENT ON FUNCTION shorturl.resolve(text) IS
'URL of an active link, counting one visit; NULL for an unknown, expired, exhausted or disabled code, or any other text';

ALTER FUNCTION shorturl.link_status(text) PARALLEL UNSAFE;
ALTER FUNCTION shorturl.visits(text) PARALLEL UNSAFE;

COMMENT ON FUNCTION shorturl.link_status(text) IS
'active, expired, exhausted, disabled or unknown, without counting a visit (for answering 302, 410 or 404)';
COMMENT ON FUNCTION shorturl.visits(text) IS
'visits of a link so far, counting those not yet flushed, or NULL for an unknown code';
COMMENT ON FUNCTION shorturl.encode_id(bigint) IS
'the code the generator makes of a link id (for operators: reveals the permutation)';
COMMENT ON FUNCTION shorturl.decode_id(text) IS
'the link id a generated code came from, or NULL (for operators: reveals how many links exist)';

CREATE FUNCTION shorturl.set_code_width(width integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'shorturl_set_code_width'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.set_code_width(integer) IS
'sets the width (4..10) new generated codes start at; refuses a width the codes already issued have reached';

CREATE FUNCTION shorturl.reset_visits(code text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_reset_visits'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.reset_visits(text) IS
'sets a link''s visit count back to zero, unflushed clicks included, when the transaction commits; returns the count it had, or NULL for an unknown code';

REVOKE ALL ON FUNCTION shorturl.reset_visits(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.set_code_width(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.code_key_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.shards_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.links_deleted() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.links_truncated() FROM PUBLIC;

COMMENT ON FUNCTION shorturl.flush() IS
'writes this database''s unflushed clicks (shared memory, shorturl.pending_visits) to shorturl.visit_counts now, in this transaction; returns the visits written';

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
    OUT max_pending_links integer)
AS 'MODULE_PATHNAME', 'shorturl_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION shorturl.stats() IS
'the row of shorturl.stats';

CREATE VIEW shorturl.stats AS SELECT * FROM shorturl.stats();

COMMENT ON VIEW shorturl.stats IS
'click counting and the worker of this database: mode, unflushed clicks, flushes, purges, waits, fallbacks, errors';
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

GRANT SELECT ON shorturl.stats TO PUBLIC;

-------------------------------------------------------------------------
-- The shard side: what a coordinator (the extension
-- pg_shorturl_coordinator) calls on each shard through PL/Proxy.  Only
-- the owner may call them; a coordinator connects as the shard's owner.
-------------------------------------------------------------------------

CREATE FUNCTION shorturl.store_link(id bigint, code text, url text,
                                    expires_at timestamptz, max_visits bigint,
                                    is_alias boolean, domain text DEFAULT '')
RETURNS boolean
AS 'MODULE_PATHNAME', 'shorturl_store_link'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.store_link(bigint, text, text, timestamptz, bigint, boolean, text) IS
'shard side: stores a link whose id and code a coordinator chose; false if the code is taken';

CREATE FUNCTION shorturl.reusable_code(url text, expires_at timestamptz, max_visits bigint,
                                       alias text, domain text DEFAULT '')
RETURNS text
AS 'MODULE_PATHNAME', 'shorturl_reusable_code'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.reusable_code(text, timestamptz, bigint, text, text) IS
'shard side: the code shorten(reuse => true) would hand out again on this shard, or NULL';

CREATE TABLE shorturl.moved_links (
    id bigint PRIMARY KEY,
    code text COLLATE "C" NOT NULL,
    domain text COLLATE "C" NOT NULL,
    visits bigint NOT NULL,
    moved_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.moved_links IS
'links a rebalance moved to another shard, with their final count here, until the coordinator has added it to the new shard''s copy';
COMMENT ON COLUMN shorturl.moved_links.id IS 'the link';
COMMENT ON COLUMN shorturl.moved_links.code IS 'its code';
COMMENT ON COLUMN shorturl.moved_links.domain IS 'its domain';
COMMENT ON COLUMN shorturl.moved_links.visits IS 'its count here when it left, unflushed clicks included';
COMMENT ON COLUMN shorturl.moved_links.moved_at IS 'when it left';

SELECT pg_catalog.pg_extension_config_dump('shorturl.moved_links', '');
REVOKE ALL ON shorturl.moved_links FROM PUBLIC;

CREATE FUNCTION shorturl.move_out(ids bigint[])
RETURNS bigint
AS 'MODULE_PATHNAME', 'shorturl_move_out'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.move_out(bigint[]) IS
'shard side of a rebalance: deletes links copied to their new shard (their aliases move, so they are not retired), leaving their final counts in shorturl.moved_links';

CREATE TABLE shorturl.arrived_links (
    id bigint PRIMARY KEY,
    arrived_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE shorturl.arrived_links IS
'links a rebalance moved here whose last clicks on the old shard were added (add_visits adds them once), until the coordinator forgets them';
COMMENT ON COLUMN shorturl.arrived_links.id IS 'the link';
COMMENT ON COLUMN shorturl.arrived_links.arrived_at IS 'when its last clicks were added';

SELECT pg_catalog.pg_extension_config_dump('shorturl.arrived_links', '');
REVOKE ALL ON shorturl.arrived_links FROM PUBLIC;

CREATE FUNCTION shorturl.add_visits(ids bigint[], visits bigint[])
RETURNS void
AS 'MODULE_PATHNAME', 'shorturl_add_visits'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION shorturl.add_visits(bigint[], bigint[]) IS
'shard side of a rebalance: adds the last clicks moved links got on their old shard to their counts here, once per link';

CREATE FUNCTION shorturl.forget_arrived(ids bigint[])
RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM shorturl.arrived_links WHERE id = ANY (ids) RETURNING 1)
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION shorturl.forget_arrived(bigint[]) IS
'shard side of a rebalance: forgets that moved links arrived, once the coordinator is done with them';

CREATE FUNCTION shorturl.forget_moved(ids bigint[])
RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM shorturl.moved_links WHERE id = ANY (ids) RETURNING 1)
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION shorturl.forget_moved(bigint[]) IS
'shard side of a rebalance: forgets moved links once their counts have reached the new shard';

REVOKE ALL ON FUNCTION shorturl.store_link(bigint, text, text, timestamptz, bigint, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.reusable_code(text, timestamptz, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.move_out(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.add_visits(bigint[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.forget_moved(bigint[]) FROM PUBLIC;

-- What a coordinator asks a shard before it trusts it: whether a code is
-- free there, and which database the shard is (two names for one database
-- would lose links in a rebalance).
CREATE FUNCTION shorturl.code_state(code text, domain text DEFAULT '')
RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN EXISTS (SELECT FROM shorturl.links l WHERE l.code = $1 AND l.domain = $2) THEN 'taken'
        WHEN EXISTS (SELECT FROM shorturl.retired_codes r WHERE r.code = $1 AND r.domain = $2) THEN 'retired'
        ELSE 'free'
    END
$$;

COMMENT ON FUNCTION shorturl.code_state(text, text) IS
'shard side: taken, retired or free, for a code on a domain';

CREATE FUNCTION shorturl.store_identity()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.system_identifier::text || '/' || d.oid::text
      FROM pg_catalog.pg_control_system() s, pg_catalog.pg_database d
     WHERE d.datname = pg_catalog.current_database()
$$;

COMMENT ON FUNCTION shorturl.store_identity() IS
'shard side: this database''s identity (the cluster''s system identifier and the database''s OID), so a coordinator can refuse one database under two shard names';

REVOKE ALL ON FUNCTION shorturl.code_state(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.store_identity() FROM PUBLIC;
REVOKE ALL ON FUNCTION shorturl.forget_arrived(bigint[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION shorturl.estimate(daily_active_users bigint,
                                  urls_per_user_per_day double precision,
                                  read_write_ratio double precision,
                                  avg_url_bytes integer,
                                  retention_years double precision,
                                  peak_factor double precision DEFAULT 3,
                                  max_guess_rate double precision DEFAULT 1e-4,
                                  OUT write_qps double precision,
                                  OUT read_qps double precision,
                                  OUT peak_write_qps double precision,
                                  OUT peak_read_qps double precision,
                                  OUT total_urls bigint,
                                  OUT storage_bytes numeric,
                                  OUT write_bytes_per_s double precision,
                                  OUT read_bytes_per_s double precision,
                                  OUT min_code_length integer)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    seconds_per_day CONSTANT double precision := 86400;
    days_per_year CONSTANT double precision := 365;
    -- codes are at most 10 characters wide (62^10 < 2^63)
    widest_code CONSTANT integer := 10;
    urls double precision;
BEGIN
    -- NaN compares equal to itself and greater than every number in
    -- PostgreSQL, so it is refused by name
    IF 'NaN' IN (urls_per_user_per_day, read_write_ratio, retention_years,
                 peak_factor, max_guess_rate)
       OR 'Infinity' IN (urls_per_user_per_day, read_write_ratio, retention_years, peak_factor)
       OR daily_active_users < 0 OR urls_per_user_per_day < 0 OR read_write_ratio < 0
       OR avg_url_bytes < 0 OR retention_years < 0 OR peak_factor < 1
       OR NOT (max_guess_rate > 0 AND max_guess_rate <= 1) THEN
        RAISE EXCEPTION 'invalid capacity estimate input'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Counts, ratios, sizes and years must be finite and not negative, peak_factor must be at least 1, and max_guess_rate must be in (0, 1].';
    END IF;

    write_qps := daily_active_users * urls_per_user_per_day / seconds_per_day;
    read_qps := write_qps * read_write_ratio;
    peak_write_qps := write_qps * peak_factor;
    peak_read_qps := read_qps * peak_factor;
    urls := daily_active_users * urls_per_user_per_day * days_per_year * retention_years;
    IF urls >= 9.2e18 THEN
        RAISE EXCEPTION 'capacity estimate out of range: % URLs', urls
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    total_urls := round(urls)::bigint;
    storage_bytes := total_urls::numeric * avg_url_bytes;
    write_bytes_per_s := write_qps * avg_url_bytes;
    read_bytes_per_s := read_qps * avg_url_bytes;
    -- the narrowest width L whose space makes a random guess hit a link
    -- with probability total_urls / 62^L of at most max_guess_rate, in
    -- numeric, which neither rounds nor overflows
    min_code_length := 1;
    WHILE total_urls::numeric / 62::numeric ^ min_code_length > max_guess_rate::numeric LOOP
        min_code_length := min_code_length + 1;
        IF min_code_length > widest_code THEN
            RAISE EXCEPTION 'no code width up to % characters keeps the guess rate at or below %',
                            widest_code, max_guess_rate
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Raise max_guess_rate, or plan for fewer links.';
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION shorturl.estimate(bigint, double precision, double precision, integer, double precision, double precision, double precision) IS
'back-of-envelope capacity estimate for a shortener: QPS, peaks, URL count, storage, bandwidth, and the shortest code length that keeps a random guess below max_guess_rate';

COMMENT ON SCHEMA shorturl IS
'pg_shorturl: short codes, shard routing, the links store and its click counts';
COMMENT ON INDEX shorturl.shards_pkey IS 'one row per shard name';
COMMENT ON INDEX shorturl.code_key_pkey IS 'keeps shorturl.code_key to one row';
COMMENT ON INDEX shorturl.links_pkey IS 'finds a link by id: flushes, counts and moves go through it';
COMMENT ON INDEX shorturl.visit_counts_pkey IS 'finds a link''s stored count';
COMMENT ON INDEX shorturl.retired_codes_pkey IS 'finds whether a code was ever handed out';
COMMENT ON INDEX shorturl.reserved_aliases_pkey IS 'one row per reserved word';
COMMENT ON INDEX shorturl.moved_links_pkey IS 'one row per link moved away';
COMMENT ON INDEX shorturl.arrived_links_pkey IS 'one row per link that arrived';
