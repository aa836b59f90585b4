# 006_analytics.pl: visit analytics through a coordinator in front of two
# shards, each a server of its own, then a third (a database of the first
# shard's server).
#
# 1. update: a 0.7 cluster (shards and coordinator at 0.7) with clicked
#    links, and grants on the coordinator's resolve(text, text), one made
#    by a role other than the owner (to a role the owner granted it too).  The coordinator's update refuses
#    while the shards run 0.7 (55000); the shards are updated (a 0.7
#    coordinator keeps resolving through them); a view on the old
#    resolve() makes the update fail and change nothing (2BP01); with a
#    shard down, the update warns of it and goes on.  Then the grants are
#    on the new resolve() with their grantors and grant options, recorded
#    as the DBA's (pg_dump keeps them), the shards' analytics foreign
#    tables are there and not members of the extension, the coordinator
#    has the objects of a fresh one, and every old link's series adds up to
#    its count (the coordinator's update and the fresh one are pinned to
#    0.8, the shards run the latest pg_shorturl); then the coordinator is
#    updated to the latest version, which the rest of the test runs
#    (007_abuse.pl updates from 0.8);
# 2. analytics through the coordinator: clicks with referrers, countries,
#    user agents and visitors pass resolve() to the shards;
#    visit_breakdown() and unique_visitors() answer what the clicks made,
#    and visit_series() adds up to visits() for every link (bots' clicks
#    only with shorturl.count_bots on); the caller's TimeZone, count_bots
#    and a DateStyle the shards could not read come along (the shard's own
#    answers under the same settings) and do not stay on the shard's
#    connection; shorten() and import_links() store the times given under
#    that DateStyle; owners, unknown and NULL codes, domains and errors as
#    on a single server;
# 3. rebalance: a third shard takes its share while pgbench clicks some of
#    the moving links through the coordinator; the rebalance stops once
#    after copying a batch (a trigger on its old shard refuses the delete),
#    a click lands there on a link copied but not moved out, and a second
#    run finishes: every moved link's series adds up to its count (the late
#    click once), the links nobody clicked have exactly the series,
#    breakdowns and unique visitors they had, and their old shards keep
#    none of their analytics; forget_shard() drops a shard's analytics
#    foreign tables with the rest.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

my $t_start = time;

# ---------------------------------------------------------------------
# 1. A 0.7 cluster, updated
# ---------------------------------------------------------------------
my %shard = map { $_ => ShortURL::Test::shard_at($_, '0.7', "shorturl.flush_interval = '200ms'") } qw(alpha bravo);
my $coord = ShortURL::Test::coordinator_at('coord', '0.7');

sub co { return $coord->safe_psql('postgres', $_[0]); }
sub co_error { return ShortURL::Test::sql_error($coord, 'postgres', $_[0]); }
sub on { return $shard{ $_[0] }->safe_psql('postgres', $_[1]); }
sub flush_all { on($_, 'SELECT shorturl.flush()') for sort keys %shard; }

ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_} ] } sort keys %shard);
co('SET client_min_messages = warning; CALL shorturl.rebalance()');
co(q{CREATE TABLE old_links AS SELECT g, shorturl.shorten('https://example.com/old/' || g) AS code
	FROM generate_series(1, 60) g});
co(q{SELECT count(shorturl.resolve(code, NULL)) FROM old_links, generate_series(1, g % 5)});
co(q{CREATE ROLE app_admin; CREATE ROLE app});
co(q{GRANT EXECUTE ON FUNCTION shorturl.resolve(text, text) TO app_admin WITH GRANT OPTION});
co(q{GRANT EXECUTE ON FUNCTION shorturl.resolve(text, text) TO app});
co(q{SET ROLE app_admin; GRANT EXECUTE ON FUNCTION shorturl.resolve(text, text) TO app});

# the grants on a function besides its owner's: grantor>grantee, * for a grant option
sub grants_on
{
	my ($f) = @_;
	return co(qq{SELECT string_agg(a.grantor::regrole || '>' || a.grantee::regrole || CASE WHEN a.is_grantable THEN '*' ELSE '' END,
		' ' ORDER BY a.grantee::regrole::text, a.grantor::regrole::text) FROM pg_proc p, aclexplode(p.proacl) a
		WHERE p.oid = '$f'::regprocedure AND a.grantee <> p.proowner});
}
my $su = co('SELECT current_user');
is(grants_on('shorturl.resolve(text, text)'), "app_admin>app $su>app $su>app_admin*",
	'0.7: resolve(text, text) is granted to app_admin with grant option, and to app by the owner and by app_admin');

like(co_error(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.8'}),
	qr/^55000: shard "alpha" runs pg_shorturl 0\.7, and this update needs 0\.8/,
	'the coordinator\'s update refuses while the shards run 0.7 (55000)');
on($_, 'ALTER EXTENSION pg_shorturl UPDATE') for sort keys %shard;
is(co('SELECT count(*) FROM old_links WHERE shorturl.resolve(code, NULL) IS NULL'), 0,
	'shards at 0.8, coordinator at 0.7: every old link resolves with resolve(code, domain)');

# an object of ours that depends on resolve(text, text) holds the update up
co(q{CREATE VIEW resolves AS SELECT shorturl.resolve('x', NULL) AS url});
like(co_error(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.8'}), qr/^2BP01: /,
	'a view on resolve(text, text) makes the update fail (2BP01)');
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}), '0.7', '... and it changed nothing');
co('DROP VIEW resolves');

# a shard that cannot be reached: a warning, and the update goes on
$shard{bravo}->stop;
my ($rc, $out, $err) = $coord->psql('postgres', q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.8'});
is($rc, 0, 'with bravo down, the coordinator\'s update succeeds');
like($err, qr/WARNING:  could not ask shard "bravo" for its version of pg_shorturl/, '... warning of bravo');
$shard{bravo}->start;
ShortURL::Test::wait_served($shard{bravo}, 'postgres') or die 'no worker serves bravo';
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}), '0.8', 'the coordinator is at 0.8');

my $resolve = 'shorturl.resolve(text, text, text, text, text, text)';
is(co(q{SELECT count(*) FROM pg_proc WHERE oid = to_regprocedure('shorturl.resolve(text, text)')}), 0,
	'resolve(text, text) is gone');
is(grants_on($resolve), "app_admin>app $su>app $su>app_admin*",
	'the new resolve() has the same grants, grantors and grant options');
is(co(qq{SELECT count(*) FROM pg_init_privs i, aclexplode(i.initprivs) a
	WHERE i.objoid = '$resolve'::regprocedure AND a.grantee IN ('app'::regrole, 'app_admin'::regrole)}), 0,
	'... recorded as the DBA\'s, not the extension\'s');
my ($dump) = run_command([ $coord->installed_command('pg_dump'), '-s', '-d', $coord->connstr('postgres') ]);
my @dumped = grep { /^GRANT ALL ON FUNCTION shorturl\.resolve\(code text, domain text, referrer text/ } split /\n/, $dump;
is(scalar @dumped, 3, 'pg_dump keeps the three grants');
is(co(q{SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class
	WHERE relnamespace = 'shorturl_remote'::regnamespace AND relname LIKE '%link_vis%'}),
	join(' ', map { my $s = $_; map { "${s}_$_" } qw(link_visitors_daily link_visits_breakdown link_visits_daily link_visits_hourly) }
		qw(alpha bravo)),
	'each shard has its analytics foreign tables');
is(co(q{SELECT count(*) FROM pg_depend d JOIN pg_foreign_table f ON f.ftrelid = d.objid
	WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'}), 0, '... none a member of the extension');

# a fresh coordinator in a database of its own
co('CREATE DATABASE fresh');
$coord->safe_psql('fresh', q{CREATE EXTENSION pg_shorturl_coordinator VERSION '0.8' CASCADE});
my $objects = q{SELECT string_agg(pg_describe_object(classid, objid, 0), E'\n' ORDER BY 1)
	FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl_coordinator')};
is(co($objects), $coord->safe_psql('fresh', $objects), 'an updated coordinator has the objects of a fresh one');

is(co(q{SELECT count(*) FROM old_links WHERE shorturl.resolve(code, NULL) = 'https://example.com/old/' || g}), 60,
	'after the update every old link resolves to its URL');
# the hourly series of a link, summed (the caller's count_bots as it is)
my $series_sum = q{(SELECT coalesce(sum(s.visits), 0) FROM shorturl.visit_series(CODE, NULL, NULL, 'hour') s)};
sub series_sum { my ($code) = @_; return $series_sum =~ s/CODE/$code/r; }
is(co('SELECT count(*) FROM old_links WHERE ' . series_sum('code') . ' = shorturl.visits(code)'), 60,
	'every old link\'s series, through the coordinator, adds up to its count');
my $old1 = co('SELECT code FROM old_links WHERE g = 1');
is(co(qq{SET ROLE app; SELECT shorturl.resolve('$old1', NULL, 'https://news.example/', 'fr', NULL, 'app-visitor')}),
	'https://example.com/old/1', 'the application role resolves with dimensions');

# the rest runs on the latest version
co('ALTER EXTENSION pg_shorturl_coordinator UPDATE');
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}),
	co(q{SELECT default_version FROM pg_available_extensions WHERE name = 'pg_shorturl_coordinator'}),
	'the coordinator is updated to the latest version');

# ---------------------------------------------------------------------
# 2. Analytics through the coordinator
# ---------------------------------------------------------------------
co(q{INSERT INTO shorturl.domains (domain) VALUES ('go.example')});
co(q{CREATE TABLE links AS SELECT g, shorturl.shorten('https://example.com/a/' || g,
	owner => CASE WHEN g <= 10 THEN 'ann' END) AS code FROM generate_series(1, 60) g});
# each click: a referrer, a country, a user agent (a quarter of them a
# bot's) and a visitor, and the values the shard should count them under
co(q{CREATE TABLE clicks AS
	SELECT l.code, l.g, i,
	       (ARRAY['https://www.Example.COM:8443/x', 'https://news.example/a?b=1', NULL, 'not a url', ''])[1 + (l.g + i) % 5] AS referrer,
	       (ARRAY['DE', 'fr', 'US', NULL])[1 + (l.g * i) % 4] AS country,
	       (ARRAY['Mozilla/5.0 (Windows NT 10.0; Win64; x64)',
	              'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148',
	              'Googlebot/2.1 (+http://www.google.com/bot.html)', NULL])[1 + i % 4] AS user_agent,
	       'visitor-' || ((l.g + i) % 7) AS visitor
	FROM links l, generate_series(1, 1 + l.g % 9) i});
co(q{CREATE VIEW click_values AS
	SELECT code, 'referrer' AS dimension,
	       CASE WHEN coalesce(referrer, '') = '' THEN 'direct' WHEN referrer = 'not a url' THEN 'other'
	            ELSE lower(substring(referrer FROM '://([^:/?]+)')) END AS value, user_agent FROM clicks
	UNION ALL SELECT code, 'country', coalesce(upper(country), 'unknown'), user_agent FROM clicks
	UNION ALL SELECT code, 'device', coalesce(shorturl.device_class(user_agent), 'unknown'), user_agent FROM clicks});
is(co(q{SELECT count(shorturl.resolve(code, NULL, referrer, country, user_agent, visitor)) FROM clicks}),
	co('SELECT count(*) FROM clicks'), 'every click with dimensions resolves through the coordinator');
flush_all();

# what the coordinator answers for every link, one line each
my $breakdowns = q{SELECT string_agg(l.code || ' ' || dim || ' ' || b.value || '=' || b.visits, E'\n'
	ORDER BY l.code, dim, b.value) FROM links l, unnest(ARRAY['referrer', 'country', 'device']) dim,
	shorturl.visit_breakdown(l.code, dim) b};
my $expected_breakdowns = q{SELECT string_agg(code || ' ' || dimension || ' ' || value || '=' || n, E'\n'
	ORDER BY code, dimension, value) FROM (SELECT code, dimension, value,
	count(*) FILTER (WHERE BOTS OR shorturl.device_class(user_agent) IS DISTINCT FROM 'bot') AS n
	FROM click_values GROUP BY 1, 2, 3) x WHERE n > 0};
is(co($breakdowns), co($expected_breakdowns =~ s/BOTS/false/r),
	'visit_breakdown: every link\'s referrers, countries and devices, bots left out');
is(co("SET shorturl.count_bots = on; $breakdowns"), co($expected_breakdowns =~ s/BOTS/true/r),
	'... and with shorturl.count_bots on, bots\' clicks too');
is(co(q{SELECT count(*) FROM links l WHERE shorturl.unique_visitors(l.code) =
	(SELECT count(DISTINCT c.visitor) FROM clicks c WHERE c.code = l.code
	 AND shorturl.device_class(c.user_agent) IS DISTINCT FROM 'bot')}), 60,
	'unique_visitors: each link\'s distinct visitors, bots left out');
is(co('SET shorturl.count_bots = on; SELECT count(*) FROM links WHERE ' . series_sum('code') . ' = shorturl.visits(code)'), 60,
	'visit_series with count_bots on adds up to visits() for every link');
is(co('SELECT count(*) FROM links l WHERE ' . series_sum('l.code') . q{ = shorturl.visits(l.code)
	- (SELECT count(*) FROM clicks c WHERE c.code = l.code AND shorturl.device_class(c.user_agent) = 'bot')}), 60,
	'... and with it off, to visits() less the bots\' clicks');

# the caller's settings travel: Asia/Kolkata is UTC+05:30
my $code8 = co('SELECT code FROM links WHERE g = 8');
my $shard8 = co("SELECT shorturl.route('$code8')");
my $bots8 = co("SELECT count(*) FROM clicks WHERE code = '$code8' AND shorturl.device_class(user_agent) = 'bot'");
is(co("SET shorturl.count_bots = on; SELECT string_agg(value || '=' || visits, ' ') FROM shorturl.visit_breakdown('$code8', 'device')"),
	$shard{$shard8}->safe_psql('postgres', "SET shorturl.count_bots = on;
		SELECT string_agg(value || '=' || visits, ' ') FROM shorturl.visit_breakdown('$code8', 'device')"),
	'a breakdown comes in the shard\'s order, largest first');
my ($t1, $t2) = split /\|/, co(q{SELECT now() - interval '50 hours', now() + interval '1 hour'});
my $epochs = "SELECT string_agg(extract(epoch FROM bucket_start)::bigint || '=' || visits, ' ' ORDER BY bucket_start)";
my $kolkata = "$epochs FROM shorturl.visit_series('$code8', '$t1', '$t2', 'BUCKET')";
for my $bucket (qw(day hour))
{
	my $via = co(qq{SET timezone = 'Asia/Kolkata'; SET datestyle = 'SQL, DMY'; SET shorturl.count_bots = on;
		} . ($kolkata =~ s/BUCKET/$bucket/r));
	my $own = $shard{$shard8}->safe_psql('postgres', qq{SET timezone = 'Asia/Kolkata'; SET shorturl.count_bots = on;
		} . ($kolkata =~ s/BUCKET/$bucket/r));
	is($via, $own, "$bucket buckets in Asia/Kolkata, bots counted, DateStyle SQL, DMY: the shard's own answer");
}
is(co(qq{SET timezone = 'Asia/Kolkata'; SELECT bool_and(bucket_start::time = '00:00')
	AND bool_and(to_char(bucket_start AT TIME ZONE 'UTC', 'HH24:MI') = '18:30') AND count(*) = 4
	FROM shorturl.visit_series('$code8', now() - interval '3 days', now(), 'day')}), 't',
	'in Asia/Kolkata the days start at local midnight, 18:30 UTC');
is(co(qq{SET timezone = 'Asia/Kolkata'; SET shorturl.count_bots = on;
	SELECT bool_and(to_char(bucket_start AT TIME ZONE 'UTC', 'HH24:MI') = '18:30') AND sum(visits) = shorturl.visits('$code8')
	FROM shorturl.visit_series('$code8', now() - interval '1 day', now(), 'day');
	RESET timezone; RESET shorturl.count_bots;
	SELECT bool_and(to_char(bucket_start AT TIME ZONE 'UTC', 'HH24:MI') = '00:00') AND sum(visits) = shorturl.visits('$code8') - $bots8
	FROM shorturl.visit_series('$code8', now() - interval '1 day', now(), 'day')}), "t\nt",
	'in the same session afterwards, UTC days and no bots: nothing stays on the shard\'s connection');

# the times shorten() and import_links() send go with their offsets too
# (PL/Proxy writes them in the caller's DateStyle, which a 0.7 coordinator
# left as it was: "01/02/2030 17:30:00 IST", read on the shard as 2 January
# in Israel)
co(q{CREATE TABLE legacy (code text, url text, created_at timestamptz, visits bigint)});
co(q{INSERT INTO legacy VALUES ('legacy-1', 'https://legacy.example/1', '2020-02-01 12:00+00', 3)});
is(co(q{SET timezone = 'Asia/Kolkata'; SET datestyle = 'SQL, DMY';
	SELECT shorturl.shorten('https://example.com/expiring', alias => 'expiring', expires_at => '2030-02-01 12:00+00');
	SELECT outcome FROM shorturl.import_links('legacy');
	SET datestyle = 'ISO';
	SELECT expires_at = '2030-02-01 12:00+00' FROM shorturl.get_link('expiring');
	SELECT created_at = '2020-02-01 12:00+00' FROM shorturl.get_link('legacy-1')}), "expiring\nimported\nt\nt",
	'under DateStyle SQL, DMY in Asia/Kolkata, shorten() and import_links() store the times given');

# as on a single server: owners, unknown codes, NULLs, domains, errors
is(co(qq{SELECT (SELECT count(*) FROM shorturl.visit_series('$code8', NULL, NULL, owner => 'bob'))
	|| ' ' || (SELECT count(*) FROM shorturl.visit_breakdown('$code8', 'country', owner => 'bob'))
	|| ' ' || coalesce(shorturl.unique_visitors('$code8', owner => 'bob')::text, 'null')
	|| ' ' || (SELECT count(*) FROM shorturl.visit_series('nosuchcode', NULL, NULL))
	|| ' ' || coalesce(shorturl.unique_visitors('nosuchcode')::text, 'null')
	|| ' ' || (SELECT count(*) FROM shorturl.visit_series(NULL, NULL, NULL))
	|| ' ' || coalesce(shorturl.resolve(NULL, NULL, 'https://x.example/')::text, 'null')}),
	'0 0 null 0 null 0 null', "another owner's link and an unknown or NULL code: no rows, NULL");
my $ann = co('SELECT code FROM links WHERE g = 1');
is(co(qq{SET shorturl.count_bots = on;
	SELECT sum(visits) = shorturl.visits('$ann') FROM shorturl.visit_series('$ann', NULL, NULL, owner => 'ann')}), 't',
	"the owner reads her link's series");
co(q{SELECT shorturl.shorten('https://example.com/promo-default', alias => 'promo');
	SELECT shorturl.shorten('https://example.com/promo-go', alias => 'promo', domain => 'go.example')});
co(q{SELECT count(shorturl.resolve('promo', NULL, NULL, 'DE')) FROM generate_series(1, 3);
	SELECT count(shorturl.resolve('promo', 'GO.example', NULL, 'JP')) FROM generate_series(1, 5)});
flush_all();
is(co(q{SELECT (SELECT string_agg(value || '=' || visits, ',') FROM shorturl.visit_breakdown('promo', 'country'))
	|| ' ' || (SELECT string_agg(value || '=' || visits, ',') FROM shorturl.visit_breakdown('promo', 'country', domain => 'go.example'))
	|| ' ' || (SELECT sum(visits) FROM shorturl.visit_series('promo', NULL, NULL, domain => 'GO.example'))}),
	'DE=3 JP=5 5', 'one alias on two domains: each link\'s own analytics, routed by its key');
like(co_error(qq{SELECT * FROM shorturl.visit_breakdown('$code8', 'browser')}),
	qr/^22023: unknown dimension "browser"/, 'an unknown dimension is the shard\'s 22023');
like(co_error(q{SELECT * FROM shorturl.visit_breakdown(NULL, 'browser')}),
	qr/^22023: unknown dimension "browser"/, '... for a NULL code too, as on a single server');
like(co_error(qq{SELECT * FROM shorturl.visit_series('$code8', NULL, NULL, 'year')}),
	qr/^22023: unknown bucket "year"/, 'an unknown bucket is 22023');
like(co_error(qq{SELECT * FROM shorturl.visit_series('$code8', '-infinity', NULL)}),
	qr/^22023: /, 'an infinite bound is 22023');
is(co(qq{BEGIN READ ONLY; SELECT count(*) > 0 FROM shorturl.visit_series('$code8', NULL, NULL);
	SELECT shorturl.unique_visitors('$code8') > 0; COMMIT}), "t\nt", 'the analytics read in a read-only transaction');
is(co(q{SELECT string_agg(p.proname || '=' || has_function_privilege('app', p.oid, 'EXECUTE'), ' ' ORDER BY p.proname)
	FROM pg_proc p WHERE p.pronamespace = 'shorturl'::regnamespace
	AND p.proname IN ('visit_series', 'visit_breakdown', 'unique_visitors', 'device_class')}),
	'device_class=true unique_visitors=false visit_breakdown=false visit_series=false',
	'the analytics are the owner\'s until granted; device_class() is every role\'s');
is(co(q{SELECT to_regprocedure('shorturl.purge_analytics()') IS NULL}), 't', 'purge_analytics() is each shard\'s, not the coordinator\'s');

# ---------------------------------------------------------------------
# 3. A third shard: the analytics move with the links
# ---------------------------------------------------------------------
# where each link of the test is now
my %where = %{ ShortURL::Test::census(%shard)->{where} };
# delta is a database of alpha's server (a shard is a database)
$shard{alpha}->safe_psql('postgres', 'CREATE DATABASE delta');
$shard{alpha}->safe_psql('delta', 'CREATE EXTENSION pg_shorturl');
ShortURL::Test::wait_served($shard{alpha}, 'delta') or die 'no worker serves delta';
sub on_delta { return $shard{alpha}->safe_psql('delta', $_[0]); }
co(q{SELECT shorturl.add_shard('delta', '} . ShortURL::Test::conninfo($shard{alpha}, 'delta') . q{', 2)});
# the links that move; pgbench clicks the busy ones, numbered 1 .. n
co(q{CREATE TABLE moving AS SELECT code, g % 2 = 0 AS busy FROM links WHERE shorturl.route(code) = 'delta'
	UNION ALL SELECT code, false FROM old_links WHERE shorturl.route(code) = 'delta';
	ALTER TABLE moving ADD COLUMN busy_n integer;
	UPDATE moving m SET busy_n = b.n FROM (SELECT code, row_number() OVER (ORDER BY code) AS n FROM moving WHERE busy) b
	WHERE b.code = m.code});
my $n_busy = co('SELECT count(*) FROM moving WHERE busy');
my $n_moving = co('SELECT count(*) FROM moving');
cmp_ok($n_moving, '>=', 30, "$n_moving links are to move to delta");

# the straggler: a link nobody else clicks, last clicked three hours ago
my $late = co(q{SELECT code FROM moving WHERE NOT busy ORDER BY code LIMIT 1});
my $late_source = $where{$late};
my $late_id = $shard{$late_source}->safe_psql('postgres', "SELECT id FROM shorturl.links WHERE code = '$late'");
$shard{$late_source}->safe_psql('postgres', qq{
	UPDATE shorturl.links SET created_at = created_at - interval '4 hours' WHERE id = $late_id;
	UPDATE shorturl.link_visits_hourly SET hour = hour - interval '3 hours' WHERE link_id = $late_id});

# what the links had before, through the coordinator (bots counted)
flush_all();
my $snapshot = q{SET shorturl.count_bots = on;
	SELECT string_agg(m.code || ' ' || x, E'\n' ORDER BY m.code, x) FROM moving m, LATERAL (
		SELECT 'series ' || string_agg(extract(epoch FROM s.bucket_start)::bigint || '=' || s.visits, ',' ORDER BY s.bucket_start)
		FROM shorturl.visit_series(m.code, NULL, NULL, 'hour') s WHERE s.visits > 0
		UNION ALL
		SELECT 'breakdown ' || string_agg(dim || ':' || b.value || '=' || b.visits, ',' ORDER BY dim, b.value)
		FROM unnest(ARRAY['referrer', 'country', 'device']) dim, shorturl.visit_breakdown(m.code, dim) b
		UNION ALL
		SELECT 'visitors ' || shorturl.unique_visitors(m.code)) y(x)
	WHERE NOT m.busy AND m.code <> '__late__'} =~ s/__late__/$late/r;
my $before = co($snapshot);
my $visits_before = co('SELECT sum(shorturl.visits(code)) FROM moving');
my $late_before = co("SELECT shorturl.visits('$late')");
is(co(qq{SET shorturl.count_bots = on; SELECT } . series_sum("'$late'") . qq{ = shorturl.visits('$late')}), 't',
	"$late (on $late_source), its clicks three hours back, adds up before the move");

# the delete of the batch with $late fails on its old shard: the rebalance
# stops after the copy of that batch
$shard{$late_source}->safe_psql('postgres', qq{
	CREATE TABLE public.held (id bigint);
	INSERT INTO public.held VALUES ($late_id);
	CREATE FUNCTION public.hold() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		IF EXISTS (SELECT FROM public.held h WHERE h.id = OLD.id) THEN
			RAISE EXCEPTION 'held by the test';
		END IF;
		RETURN OLD;
	END \$\$;
	CREATE TRIGGER hold BEFORE DELETE ON shorturl.links FOR EACH ROW EXECUTE FUNCTION public.hold()});

# clicks on the busy ones all along, through the coordinator
my $bench = ShortURL::Test::start_pgbench($coord, 'postgres', '--client=2 --jobs=2 --time=4',
	qq{\\set n random(1, $n_busy)
SELECT 1 / (shorturl.resolve(code, NULL, 'https://bench.example/', 'NL', 'Mozilla/5.0 (Windows NT 10.0)', 'bench-' || :n)
	IS NOT NULL)::int FROM moving WHERE busy_n = :n;
});
# (one session for both runs: the second starts where the first, its own, stopped)
my $run = ShortURL::Test::session($coord, 'postgres');
ShortURL::Test::ask($run, 'SET client_min_messages = warning');
my @first = ShortURL::Test::ask($run, 'CALL shorturl.rebalance(10)');
like($first[1], qr/held by the test/, 'the rebalance stops where the old shard refuses to let the batch go');
is(join(',', map { on($_, "SELECT count(*) FROM shorturl.links WHERE code = '$late'") } $late_source)
	. ' ' . on_delta("SELECT count(*) FROM shorturl.links WHERE code = '$late'")
	. ' ' . co("SELECT count(*) FROM shorturl.rebalance_moves WHERE id = $late_id"),
	'1 1 1', "$late is copied to delta and journalled, and still on $late_source");
# a click that went to the old shard after the copy, in an hour it had no row for
is($shard{$late_source}->safe_psql('postgres', qq{SELECT shorturl.resolve('$late', NULL, 'https://late.example/', 'JP',
	'Mozilla/5.0 (Windows NT 10.0)', 'late-visitor') IS NOT NULL; SELECT shorturl.flush() >= 0}), "t\nt",
	"a click on $late_source after the copy, flushed there");
$shard{$late_source}->safe_psql('postgres', 'DELETE FROM public.held');
my @second = ShortURL::Test::ask($run, 'CALL shorturl.rebalance(10)');
is($second[1], '', 'run again, it finishes');
ShortURL::Test::end_session($run);
my ($bench_rc, $bench_out) = ShortURL::Test::finish_pgbench($bench);
my ($served) = $bench_out =~ /number of transactions actually processed: (\d+)/;
is($bench_rc, 0, "pgbench clicked the busy links through the coordinator: $served clicks");
is(co('SELECT pending FROM shorturl.rebalance_state'), 'f', 'the rebalance finished');
flush_all();
on_delta('SELECT shorturl.flush()');

my $moving = join ',', map { "'$_'" } @{ ShortURL::Test::rows($coord, 'postgres', 'SELECT code FROM moving') };
is(join(' ', on_delta("SELECT count(*) FROM shorturl.links WHERE code IN ($moving)"),
		map { on($_, "SELECT count(*) FROM shorturl.links WHERE code IN ($moving)") } sort keys %shard),
	"$n_moving 0 0", 'every moving link is on delta, and on no other shard');
is(co('SELECT sum(shorturl.visits(code)) FROM moving'), $visits_before + $served + 1,
	'the moved links have every click: before, pgbench\'s and the late one');
is(co('SET shorturl.count_bots = on; SELECT count(*) FROM moving WHERE ' . series_sum('code') . ' = shorturl.visits(code)'), $n_moving,
	'every moved link\'s series adds up to its count (bots counted), clicked during the move or not');
is(co(qq{SET shorturl.count_bots = on; SELECT } . series_sum("'$late'") . qq{ || ' ' || shorturl.visits('$late')}),
	($late_before + 1) . ' ' . ($late_before + 1), "$late: its count and series have the late click once (the rerun copied no row twice)");
is(co(qq{SELECT count(*) FROM shorturl.visit_breakdown('$late', 'referrer') WHERE value = 'late.example'}), 0,
	'... and its breakdown does not have it (step 4 carries counts, not dimensions)');
is(co($snapshot), $before, 'the links nobody clicked have the series, breakdowns and unique visitors they had');
my $moved_ids = on_delta(q{SELECT string_agg(id::text, ',') FROM shorturl.links});
is(join(' ', map { on($_, qq{SELECT (SELECT count(*) FROM shorturl.link_visits_hourly WHERE link_id IN ($moved_ids))
	+ (SELECT count(*) FROM shorturl.link_visits_daily WHERE link_id IN ($moved_ids))
	+ (SELECT count(*) FROM shorturl.link_visits_breakdown WHERE link_id IN ($moved_ids))
	+ (SELECT count(*) FROM shorturl.link_visitors_daily WHERE link_id IN ($moved_ids))}) } sort keys %shard),
	'0 0', 'their old shards keep none of their analytics');

# forget_shard drops a shard's analytics foreign tables with the others
$shard{bravo}->safe_psql('postgres', 'CREATE DATABASE spare');
$shard{bravo}->safe_psql('spare', 'CREATE EXTENSION pg_shorturl');
co(q{SELECT shorturl.add_shard('spare', '} . ShortURL::Test::conninfo($shard{bravo}, 'spare') . q{')});
my $spare_tables = q{SELECT count(*) FROM pg_class WHERE relnamespace = 'shorturl_remote'::regnamespace AND relname LIKE 'spare\_%'};
is(co($spare_tables), 11, 'add_shard made eleven foreign tables, four of them for analytics, one for the blocklist and one for copied counts');
co(q{SELECT shorturl.remove_shard('spare'); SET client_min_messages = error; SELECT shorturl.forget_shard('spare')});
is(co($spare_tables), 0, 'forget_shard dropped them all');

note sprintf 'ran in %.1f s', time - $t_start;
done_testing();
