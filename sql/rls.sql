--
-- rls: the README's recipe for deployments that give each tenant its own
-- database role (README "Row-level security for per-tenant roles"), run as
-- written there with every role name prefixed regress_.  A tenant manages
-- its own links through SECURITY DEFINER wrappers that pin owner to
-- session_user, and reads its own rows of shorturl.links under a policy;
-- another tenant's link reads as unknown.  The extension's own functions
-- and the worker's flush and purge run as the table's owner and still see
-- every row.  Errors are shown tersely (the same on every PostgreSQL
-- version) with their SQLSTATE.
--
CREATE EXTENSION pg_shorturl;
\pset null '(null)'
\set VERBOSITY terse
-- a known key, so that generated codes are the same on every run
SELECT shorturl.set_code_width(7) AS width;
UPDATE shorturl.code_key SET key = '\xfedcba98765432100123456789abcdef';

--
-- The recipe
--
-- 1. Roles: the wrappers' owner, a group for the tenants, one login role
-- per tenant.  The wrappers' owner may call shorturl's functions; the
-- tenants may not.
CREATE ROLE regress_shorturl_admin NOLOGIN;
CREATE ROLE regress_tenants NOLOGIN;
CREATE ROLE regress_tenant_a LOGIN IN ROLE regress_tenants;
CREATE ROLE regress_tenant_b LOGIN IN ROLE regress_tenants;
GRANT EXECUTE ON FUNCTION
    shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text),
    shorturl.get_link(text, text, text),
    shorturl.list_links(text, text, text, text, integer, text),
    shorturl.update_link(text, jsonb, text, text),
    shorturl.disable_link(text, text, text, text),
    shorturl.enable_link(text, text, text),
    shorturl.delete_link(text, text, text),
    shorturl.reset_visits(text, text, text)
TO regress_shorturl_admin;

-- 2. The wrappers, owned by the admin role.
CREATE SCHEMA tenant_api AUTHORIZATION regress_shorturl_admin;
SET ROLE regress_shorturl_admin;

-- The owner a wrapper acts for: the role the session logged in as.  Under
-- SET ROLE to another role it refuses, rather than act for the login role.
CREATE FUNCTION tenant_api.me()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('role') NOT IN ('none', session_user) THEN
        RAISE EXCEPTION 'tenant_api acts for the role the session logged in as, not under SET ROLE'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN session_user;
END
$$;

-- Whether the operator took the link down (it is disabled, and not by
-- tenant_api.disable_link); NULL for no link of this tenant.  update_link()
-- with an empty patch locks the row, so the answer holds to the end of
-- the transaction.
CREATE FUNCTION tenant_api.taken_down(code text, domain text)
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.disabled_at IS NOT NULL AND l.disabled_reason IS DISTINCT FROM 'disabled by its owner'
    FROM shorturl.update_link(code, '{}', owner => tenant_api.me(), domain => domain) l
$$;

CREATE FUNCTION tenant_api.shorten(url text, expires_at timestamptz DEFAULT NULL,
                                   max_visits bigint DEFAULT NULL, alias text DEFAULT NULL,
                                   reuse boolean DEFAULT false, title text DEFAULT NULL,
                                   tags text[] DEFAULT NULL, domain text DEFAULT NULL)
RETURNS text
LANGUAGE sql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT shorturl.shorten(url, expires_at => expires_at, max_visits => max_visits, alias => alias,
                            reuse => reuse, owner => tenant_api.me(), title => title, tags => tags,
                            domain => domain)
$$;

CREATE FUNCTION tenant_api.get_link(code text, domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE sql VOLATILE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM shorturl.get_link(code, owner => tenant_api.me(), domain => domain)
$$;

CREATE FUNCTION tenant_api.list_links(tag text DEFAULT NULL, search text DEFAULT NULL,
                                      after text DEFAULT NULL, lim integer DEFAULT 100,
                                      domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE sql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM shorturl.list_links(owner => tenant_api.me(), tag => tag, search => search,
                                      after => after, lim => lim, domain => domain)
$$;

-- The change and the check are one statement: a link the operator took
-- down raises, and the change rolls back.
CREATE FUNCTION tenant_api.update_link(code text, patch jsonb, domain text DEFAULT NULL)
RETURNS SETOF shorturl.link_info
LANGUAGE plpgsql VOLATILE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l shorturl.link_info;
BEGIN
    FOR l IN SELECT * FROM shorturl.update_link(code, patch, owner => tenant_api.me(), domain => domain) LOOP
        IF l.disabled_at IS NOT NULL AND l.disabled_reason IS DISTINCT FROM 'disabled by its owner' THEN
            RAISE EXCEPTION 'link "%" was taken down by the operator', code
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEXT l;
    END LOOP;
END
$$;

-- A tenant's takedown has its own reason, so the operator's stays apart.
CREATE FUNCTION tenant_api.disable_link(code text, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    taken boolean := tenant_api.taken_down(code, domain);
BEGIN
    IF taken IS NULL THEN
        RETURN false;
    ELSIF taken THEN
        RETURN true;    -- down already, with the operator's reason kept
    END IF;
    RETURN shorturl.disable_link(code, reason => 'disabled by its owner', owner => tenant_api.me(),
                                 domain => domain);
END
$$;

CREATE FUNCTION tenant_api.enable_link(code text, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    taken boolean := tenant_api.taken_down(code, domain);
BEGIN
    IF taken IS NULL THEN
        RETURN false;
    ELSIF taken THEN
        RAISE EXCEPTION 'link "%" was taken down by the operator', code
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN shorturl.enable_link(code, owner => tenant_api.me(), domain => domain);
END
$$;

CREATE FUNCTION tenant_api.delete_link(code text, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT shorturl.delete_link(code, owner => tenant_api.me(), domain => domain)
$$;

CREATE FUNCTION tenant_api.reset_visits(code text, domain text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT shorturl.reset_visits(code, owner => tenant_api.me(), domain => domain)
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenant_api FROM PUBLIC;
GRANT USAGE ON SCHEMA tenant_api TO regress_tenants;
GRANT EXECUTE ON FUNCTION tenant_api.shorten, tenant_api.get_link, tenant_api.list_links,
    tenant_api.update_link, tenant_api.disable_link, tenant_api.enable_link,
    tenant_api.delete_link, tenant_api.reset_visits
TO regress_tenants;
RESET ROLE;

-- 3. Reading the table: each tenant sees its own rows.
ALTER TABLE shorturl.links ENABLE ROW LEVEL SECURITY;
CREATE POLICY links_of_tenant ON shorturl.links FOR SELECT TO regress_tenants
    USING (owner = session_user);
GRANT SELECT ON shorturl.links TO regress_tenants;
-- (end of the recipe)

-- the wrappers: SECURITY DEFINER but for the two helpers, each with a
-- pinned search_path; tenants may call the eight and nothing else
SELECT p.oid::regprocedure AS function, p.prosecdef AS secdef, p.proconfig AS config,
       has_function_privilege('regress_tenant_a', p.oid, 'EXECUTE') AS tenant_may_call,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_call
FROM pg_proc p
WHERE p.pronamespace = 'tenant_api'::regnamespace
ORDER BY p.proname;

--
-- Links of both tenants, and one of nobody, made by the operator (a
-- superuser)
--
SELECT shorturl.shorten('https://b.example/one', alias => 'b-one', owner => 'regress_tenant_b') AS code;
SELECT shorturl.shorten('https://nobody.example/', alias => 'nobody') AS code;
SELECT shorturl.shorten('https://b.example/gen', owner => 'regress_tenant_b') AS code;

--
-- Tenant A, logged in as itself
--
SET SESSION AUTHORIZATION regress_tenant_a;
SELECT session_user, current_user;
-- makes links; the owner is its login role, whatever else it passes
SELECT tenant_api.shorten('https://a.example/one', alias => 'a-one', title => 'One',
                          tags => ARRAY['spring']) AS code;
SELECT tenant_api.shorten('https://a.example/two', alias => 'a-two') AS code;
SELECT tenant_api.shorten('https://a.example/gen') AS code;
-- reuse finds its own link, and not B's link to the same URL
SELECT tenant_api.shorten('https://a.example/gen', reuse => true) AS code;
SELECT tenant_api.shorten('https://b.example/gen', reuse => true) AS code;
-- an alias is unique per domain, whoever holds it (23505 tells that it is taken)
SELECT tenant_api.shorten('https://a.example/', alias => 'b-one');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the wrappers take no owner
SELECT tenant_api.shorten('https://a.example/', owner => 'regress_tenant_b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- reads and lists its own links
SELECT code, url, status, owner, title, tags FROM tenant_api.get_link('a-one');
SELECT code, owner FROM tenant_api.list_links();
SELECT code FROM tenant_api.list_links(tag => 'spring');
-- B's link reads as a code that does not exist: no row, false or NULL
SELECT count(*) AS b_rows FROM tenant_api.get_link('b-one');
SELECT count(*) AS unknown_rows FROM tenant_api.get_link('no-such');
SELECT count(*) AS nobodys_rows FROM tenant_api.get_link('nobody');
SELECT count(*) AS b_rows FROM tenant_api.update_link('b-one', '{"url": "https://evil.example/"}');
SELECT count(*) AS unknown_rows FROM tenant_api.update_link('no-such', '{"url": "https://evil.example/"}');
SELECT tenant_api.disable_link('b-one') AS b, tenant_api.disable_link('no-such') AS unknown;
SELECT tenant_api.enable_link('b-one') AS b, tenant_api.enable_link('no-such') AS unknown;
SELECT tenant_api.reset_visits('b-one') AS b, tenant_api.reset_visits('no-such') AS unknown;
SELECT tenant_api.delete_link('b-one') AS b, tenant_api.delete_link('no-such') AS unknown;
SELECT count(*) AS b_rows FROM tenant_api.list_links(search => 'b.example/one');

-- edits, disables, enables and deletes its own
SELECT code, url, title, status FROM tenant_api.update_link('a-one', '{"url": "https://a.example/uno", "title": null}');
SELECT tenant_api.disable_link('a-two') AS disabled;
SELECT status, disabled_reason FROM tenant_api.get_link('a-two');
SELECT tenant_api.enable_link('a-two') AS enabled;
SELECT status, disabled_reason FROM tenant_api.get_link('a-two');
SELECT tenant_api.reset_visits('a-two') AS visits_before;
SELECT tenant_api.delete_link('a-two') AS deleted, tenant_api.delete_link('a-two') AS again;

-- shorturl's own functions are not for tenants (42501)
SELECT * FROM shorturl.get_link('b-one', owner => 'regress_tenant_b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shorturl.update_link('b-one', '{"url": "https://evil.example/"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.delete_link('b-one');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shorturl.shorten('https://a.example/', owner => 'regress_tenant_b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- nor are the helpers
SELECT tenant_api.taken_down('a-one', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- the table: its own rows only, and no writing
SELECT code, owner FROM shorturl.links ORDER BY code;
SELECT count(*) AS visible FROM shorturl.links WHERE code IN ('b-one', 'nobody');
UPDATE shorturl.links SET url = 'https://evil.example/' WHERE code = 'a-one';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM shorturl.links WHERE code = 'a-one';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO shorturl.links (id, code, url, owner) VALUES (-1, 'forged', 'https://evil.example/', 'regress_tenant_b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the counts are not granted: get_link() and list_links() give the live ones
SELECT * FROM shorturl.visit_counts;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- SET ROLE does not change the owner: a tenant may SET ROLE to the group
-- it is a member of, and then the wrappers refuse (42501), while its
-- reads of the table still show the rows of its login role
SET ROLE regress_tenants;
SELECT session_user, current_user;
SELECT count(*) FROM tenant_api.get_link('a-one');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tenant_api.shorten('https://a.example/shared');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT code, owner FROM shorturl.links ORDER BY code;
RESET ROLE;
RESET SESSION AUTHORIZATION;

--
-- Tenant B sees its own link, and none of A's
--
SET SESSION AUTHORIZATION regress_tenant_b;
SELECT code, owner FROM tenant_api.list_links();
SELECT code, owner FROM shorturl.links ORDER BY code;
SELECT count(*) AS a_rows FROM tenant_api.get_link('a-one');
RESET SESSION AUTHORIZATION;

--
-- A pool that logs in as one role and SET ROLEs to each tenant gets an
-- error from the wrappers (42501), not one owner for all its tenants
--
CREATE ROLE regress_pool LOGIN IN ROLE regress_tenant_a, regress_tenant_b;
SET SESSION AUTHORIZATION regress_pool;
SET ROLE regress_tenant_a;
SELECT session_user, current_user;
SELECT code FROM tenant_api.list_links();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET SESSION AUTHORIZATION;
-- so does an administrator's SET ROLE
SET ROLE regress_tenant_a;
SELECT code FROM tenant_api.list_links();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

--
-- A takedown by the operator stays: the tenant cannot enable the link, nor
-- change it, and disabling it again keeps the operator's reason
--
SELECT shorturl.disable_link('a-one', 'phishing report #1234') AS disabled;
SET SESSION AUTHORIZATION regress_tenant_a;
SELECT tenant_api.enable_link('a-one');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT url FROM tenant_api.update_link('a-one', '{"url": "https://a.example/elsewhere"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tenant_api.disable_link('a-one') AS disabled;
SELECT url, status, disabled_reason FROM tenant_api.get_link('a-one');
-- it may still delete the link
SELECT tenant_api.delete_link('a-one') AS deleted;
RESET SESSION AUTHORIZATION;

--
-- A role with SELECT but no policy sees no row once RLS is enabled; a
-- policy of its own lets it read every row
--
CREATE ROLE regress_reader;
GRANT SELECT ON shorturl.links TO regress_reader;
SET ROLE regress_reader;
SELECT count(*) AS rows_without_policy FROM shorturl.links;
RESET ROLE;
CREATE POLICY links_reader ON shorturl.links FOR SELECT TO regress_reader USING (true);
SET ROLE regress_reader;
SELECT count(*) AS rows_with_policy FROM shorturl.links;
RESET ROLE;
DROP POLICY links_reader ON shorturl.links;
REVOKE SELECT ON shorturl.links FROM regress_reader;
DROP ROLE regress_reader;

--
-- The extension's own work is unaffected: resolve() by an application role
-- that is not the owner, the flush and the purge see every row
--
CREATE ROLE regress_app;
GRANT EXECUTE ON FUNCTION shorturl.resolve(text), shorturl.link_status(text),
    shorturl.visits(text) TO regress_app;
SET SESSION AUTHORIZATION regress_tenant_b;
SELECT tenant_api.shorten('https://b.example/once', alias => 'b-once', max_visits => 1) AS code;
SELECT tenant_api.shorten('https://b.example/soon', alias => 'b-soon',
                          expires_at => now() + interval '1 hour') AS code;
RESET SESSION AUTHORIZATION;
SET ROLE regress_app;
SELECT shorturl.resolve('b-one') AS url, shorturl.resolve('b-one') AS again,
       shorturl.resolve('b-once') AS once, shorturl.resolve('b-once') AS twice;
SELECT shorturl.link_status('b-once') AS status, shorturl.visits('b-one') AS visits;
RESET ROLE;
-- the flush writes the counts and marks b-once exhausted in shorturl.links
SELECT shorturl.flush() AS flushed;
SELECT l.code, c.visits, l.exhausted_at IS NOT NULL AS exhausted
FROM shorturl.links l JOIN shorturl.visit_counts c ON c.link_id = l.id ORDER BY l.code;
SET SESSION AUTHORIZATION regress_tenant_b;
SELECT code, status, visits FROM tenant_api.list_links();
RESET SESSION AUTHORIZATION;
-- the purge deletes an expired link
UPDATE shorturl.links SET expires_at = now() - interval '1 second' WHERE code = 'b-soon';
SELECT shorturl.purge_expired() AS purged;
SELECT code FROM shorturl.links ORDER BY code;
-- the aliases the tenants deleted are retired, by the trigger that runs as the owner
SELECT code FROM shorturl.retired_codes ORDER BY code;

--
-- Clean up: the recipe's objects, then the roles
--
DROP SCHEMA tenant_api CASCADE;
DROP EXTENSION pg_shorturl;
DROP ROLE regress_app;
DROP ROLE regress_pool;
DROP ROLE regress_tenant_a;
DROP ROLE regress_tenant_b;
DROP ROLE regress_tenants;
DROP ROLE regress_shorturl_admin;
