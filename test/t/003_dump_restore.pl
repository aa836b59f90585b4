# 003_dump_restore.pl: pg_dump and a restore keep everything a shortener
# needs.  After a restore every link has the same URL and limits, its
# stored counts (shorturl.visit_counts, shorturl.pending_visits) are those
# of the dump, visits() and link_status() answer as in the source, the
# code key and its width segments are the dumped ones (old codes decode to
# the same ids), the id sequence continues (500 new codes collide with no
# old one, not even with an alias squatting a future code), and user-added
# reserved words, retired aliases and the shard map survive; the restore
# itself reports no error.  Where a worker serves the restored database,
# every link resolves as in the source.  Where it counts clicks in the
# tables, a link with max_visits is never served (resolve() gives NULL,
# counts nothing, and link_status() still says 'active': a click counted
# in the tables could be rolled back after it was served); the others
# resolve as in the source.  Either way each click served counts once.
#
# Full restores, as 0.5 had them:
#	1. pg_restore of a custom-format dump into a new database of the same
#	   server (not served by a worker: clicks count in the tables);
#	2. pg_restore into a second server whose worker serves the database
#	   (clicks count in shared memory);
#	3. plain SQL, pg_dump | psql (into the first server: the tables).
# Data-only restores into a database where CREATE EXTENSION already ran,
# the path 0.5 broke (it made the key at CREATE EXTENSION, and the restore
# with --disable-triggers kept that key instead of the dumped one):
#	4. pg_dump --data-only -Fc, pg_restore --data-only --disable-triggers
#	   (into a served database of the second server);
#	5. pg_dump --data-only --disable-triggers | psql (into the first
#	   server: the tables).
# And what must not work: a data-only restore into a database that already
# made a key of its own fails loudly, and leaves no code of a foreign key.
#
# Clicks still in shared memory are not in a dump: pending clicks reach the
# tables only when they are flushed (by the worker every
# shorturl.flush_interval, by shorturl.flush(), or at a clean shutdown).
# The test proves both halves: a dump taken with clicks pending restores the
# tables' counts, short of visits() by exactly the pending clicks, and a
# dump taken after shorturl.flush() restores visits() exactly.
#
# Clicks a database outside shorturl.database counted in the tables are
# rows of shorturl.pending_visits, which a flush compacts to one per link
# but leaves there.  A second source, in such a database, has those rows,
# refused every click of its limited links, and holds counts in
# shorturl.visit_counts that arrived with some links, limited or not
# (shorturl.add_visits, as a rebalance adds them).  It is dumped and
# restored into a served database that flushes in the middle of the
# restore (its worker, and shorturl.flush(), after the COPY of
# pending_visits, before that of visit_counts): the flush must write no
# row of visit_counts, the restore must still report no error and end
# with the dumped counts, and there the limited links are served.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

my $tempdir = PostgreSQL::Test::Utils::tempdir;

# A preloaded server whose worker serves the databases in $served.  The
# worker flushes and purges only hourly (after its first flush, at start),
# so the test decides when clicks reach the tables and no expired link
# disappears between two snapshots.
sub new_node
{
	my ($name, $served) = @_;
	return ShortURL::Test::node($name,
		"shorturl.database = '$served'",
		"shorturl.flush_interval = '1h'",
		"shorturl.purge_interval = '1h'");
}

# served waits for the worker to serve $db (extension installed)
sub served
{
	my ($node, $db) = @_;
	ShortURL::Test::wait_served($node, $db)
	  or die "the worker does not serve $db";
}

sub rows { return ShortURL::Test::rows(@_); }

# ---------------------------------------------------------------------
# What is compared, as text, row by row
# ---------------------------------------------------------------------

# every column of a link (url_hash is generated: it must come out the same)
my $links_sql = q{
SELECT id, code, domain, url, extract(epoch FROM created_at), extract(epoch FROM expires_at),
       max_visits, extract(epoch FROM exhausted_at), extract(epoch FROM disabled_at),
       disabled_reason, is_alias, url_hash
FROM shorturl.links ORDER BY id};

# the stored counts, table by table, and per link
my $counts_sql = q{
SELECT link_id, visits, extract(epoch FROM last_visit_at)
FROM shorturl.visit_counts ORDER BY link_id};
my $pending_rows_sql = q{
SELECT link_id, visits, extract(epoch FROM visited_at)
FROM shorturl.pending_visits ORDER BY link_id, visited_at, visits};
my $stored_sql = q{
SELECT l.id, coalesce(c.visits, 0) + coalesce(p.visits, 0)
FROM shorturl.links AS l
LEFT JOIN shorturl.visit_counts AS c ON c.link_id = l.id
LEFT JOIN (SELECT link_id, sum(visits) AS visits FROM shorturl.pending_visits GROUP BY 1) AS p
       ON p.link_id = l.id
ORDER BY l.id};

# what the API answers for each link, without counting a visit
my $live_sql = q{
SELECT code, shorturl.visits(code), shorturl.link_status(code)
FROM shorturl.links ORDER BY id};

# what resolve() must return where the database is served: the URL of an
# active link, else NULL; where it counts in the tables: the URL of an
# active link without max_visits, else NULL
my $expected_resolve_sql = q{
SELECT code, CASE WHEN shorturl.link_status(code) = 'active' THEN url END
FROM shorturl.links ORDER BY id};
my $expected_resolve_tables_sql = q{
SELECT code, CASE WHEN shorturl.link_status(code) = 'active' AND max_visits IS NULL THEN url END
FROM shorturl.links ORDER BY id};
# what visits() must say after one resolve of every link: one more for
# each link served (SERVED: whether a limited link is)
my $expected_visits_sql = q{
SELECT code, shorturl.visits(code)
             + CASE WHEN shorturl.link_status(code) = 'active' AND (max_visits IS NULL OR SERVED)
                    THEN 1 ELSE 0 END
FROM shorturl.links ORDER BY id};
(my $expected_visits_served_sql = $expected_visits_sql) =~ s/SERVED/true/;
(my $expected_visits_tables_sql = $expected_visits_sql) =~ s/SERVED/false/;
my $visits_sql = q{SELECT code, shorturl.visits(code) FROM shorturl.links ORDER BY id};
# the active links with max_visits: served only where shared memory counts
my $limited_active_sql = q{
SELECT count(*) FROM shorturl.links
WHERE max_visits IS NOT NULL AND shorturl.link_status(code) = 'active'};
my $resolve_sql = q{
SELECT code, shorturl.resolve(code) FROM shorturl.links ORDER BY id};

my $key_sql = q{
SELECT encode(key, 'hex'), extract(epoch FROM created_at), width_from, widths
FROM shorturl.code_key};
my $encode_sql = q{
SELECT n, shorturl.encode_id(n)
FROM unnest(ARRAY[0, 1, 2, 61, 62, 1000, 1999, 2000, 2001, 123456789,
                  3521614606207, 3521614606208]::bigint[]) AS n
ORDER BY n};
my $decode_sql = q{
SELECT code, shorturl.decode_id(code) FROM shorturl.links WHERE NOT is_alias ORDER BY id};
my $seq_sql = q{SELECT last_value, is_called FROM shorturl.link_id_seq};
my $reserved_sql = q{SELECT alias, builtin FROM shorturl.reserved_aliases ORDER BY alias};
my $retired_sql = q{
SELECT code, domain, extract(epoch FROM retired_at) FROM shorturl.retired_codes ORDER BY code, domain};
my $shards_sql = q{
SELECT name, weight, conninfo, extract(epoch FROM created_at), retiring
FROM shorturl.shards ORDER BY name};
my $route_sql = q{
SELECT code, shorturl.route(code) FROM shorturl.links ORDER BY id LIMIT 500};

# ---------------------------------------------------------------------
# The source: a served database with links of every kind, and clicks
# ---------------------------------------------------------------------
my $node = new_node('primary', 'src');
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pg_shorturl');
served($node, 'src');

$node->safe_psql(
	'src', q{
-- 2000 generated codes of width 7, then 1000 of width 8: every 10th
-- limited to 1..5 visits, every 7th expiring (far in the future), URLs
-- with queries, fragments, ports
SELECT count(shorturl.shorten(
           'https://example.com:8443/page/' || g || '?q=' || md5(g::text) || '#top',
           expires_at => CASE WHEN g % 7 = 0
                              THEN timestamptz '2100-01-01 00:00:00+00' + g * interval '1 second' END,
           max_visits => CASE WHEN g % 10 = 0 THEN 1 + g % 5 END))
FROM generate_series(1, 2000) AS g;
SELECT shorturl.set_code_width(8);
SELECT count(shorturl.shorten(
           'https://example.com:8443/page/' || g || '?q=' || md5(g::text) || '#top',
           expires_at => CASE WHEN g % 7 = 0
                              THEN timestamptz '2100-01-01 00:00:00+00' + g * interval '1 second' END,
           max_visits => CASE WHEN g % 10 = 0 THEN 1 + g % 5 END))
FROM generate_series(2001, 3000) AS g;

-- 300 aliases, every 3rd limited to 2 visits
SELECT count(shorturl.shorten('http://example.org/a/' || g, alias => 'promo-' || g,
                              max_visits => CASE WHEN g % 3 = 0 THEN 2 END))
FROM generate_series(1, 300) AS g;

-- links that expire within seconds (expired before the dump)
SELECT count(shorturl.shorten('https://example.net/soon/' || g,
                              expires_at => now() + interval '1 second'))
FROM generate_series(1, 20) AS g;

-- an alias squatting a code the sequence gives out after the dump: the
-- restored generator must step over it
SELECT shorturl.shorten('https://example.org/squatter',
           alias => shorturl.encode_id(
               (SELECT last_value + 3 FROM shorturl.link_id_seq)));

-- user-added reserved words, deleted aliases (retired), a deleted
-- generated link (id 0), disabled links, a shard map
INSERT INTO shorturl.reserved_aliases (alias) VALUES ('pricing'), ('Careers');
DELETE FROM shorturl.links WHERE code IN ('promo-7', 'promo-8') OR id = 0;
UPDATE shorturl.links SET disabled_at = now(), disabled_reason = 'abuse report ' || id
WHERE id % 97 = 0;
INSERT INTO shorturl.shards (name, weight, conninfo) VALUES
    ('eu-1', 1, 'host=eu1.example dbname=links'),
    ('us-1', 2.5, 'host=us1.example dbname=links'),
    ('ap-1', 0.5, NULL);
INSERT INTO shorturl.shards (name, weight, retiring) VALUES ('old-1', 1, true);
});

# the source is what the checks below assume
is($node->safe_psql('src', 'SELECT count(*), count(*) FILTER (WHERE is_alias) FROM shorturl.links'),
	'3318|299', 'source: 2999 generated links and 20 expiring ones, 298 aliases and a squatter');
# the deleted aliases are retired, the deleted generated code is not listed
is($node->safe_psql('src', q{SELECT string_agg(code, ',' ORDER BY code) FROM shorturl.retired_codes}),
	'promo-7,promo-8', 'source: the deleted aliases are retired');
# both width segments are in use
is($node->safe_psql('src',
		q{SELECT string_agg(DISTINCT length(code)::text, ',') FROM shorturl.links WHERE NOT is_alias}),
	'7,8', 'source: generated codes of width 7 and 8');
my $gone_code = $node->safe_psql('src', 'SELECT shorturl.encode_id(0)');

# Visits, in shared memory, in two rounds with a flush between: link
# number i is resolved i % 6 times, then i % 4 times, so limited links
# reach and pass their limits and some counts are partly in the tables.
my $click_sql = q{
SELECT count(shorturl.resolve(l.code))
FROM (SELECT code, row_number() OVER (ORDER BY id) AS i FROM shorturl.links) AS l,
     generate_series(1, (l.i % MOD)::integer) AS r};
(my $round1 = $click_sql) =~ s/MOD/6/;
(my $round2 = $click_sql) =~ s/MOD/4/;
my $served1 = $node->safe_psql('src', $round1);
$node->safe_psql('src', 'SELECT shorturl.flush()');
my $served2 = $node->safe_psql('src', $round2);
cmp_ok($served1 + $served2, '>', 6000, 'clicks served in src: ' . ($served1 + $served2));
is($node->safe_psql('src', 'SELECT mode FROM shorturl.stats'),
	'shared', 'src counts clicks in shared memory');
cmp_ok($node->safe_psql('src',
		q{SELECT count(*) FROM shorturl.links WHERE shorturl.link_status(code) = 'exhausted'}),
	'>', 100, 'some limited links are exhausted');
is($node->safe_psql('src',
		q{SELECT count(*) FILTER (WHERE shorturl.link_status(code) = 'disabled'),
		         count(*) FILTER (WHERE disabled_at IS NOT NULL) FROM shorturl.links}),
	'33|33', 'the 33 disabled links report so');

# the short-lived links have expired
ShortURL::Test::wait_until($node, 'src',
	q{SELECT bool_and(shorturl.link_status(code) = 'expired') FROM shorturl.links
	  WHERE url LIKE 'https://example.net/soon/%'})
  or die 'the short-lived links did not expire';

# a fresh CREATE EXTENSION makes no key, and the first shorten() makes
# another one than src's: the key checks below can tell
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_shorturl');
is($node->safe_psql('fresh', 'SELECT count(*) FROM shorturl.code_key'),
	'0', 'CREATE EXTENSION makes no key');
like(ShortURL::Test::sql_error($node, 'fresh', 'SELECT shorturl.encode_id(1)'),
	qr/^55000: this database has no code key yet/, 'without a key encode_id() says so');
$node->safe_psql('fresh', q{SELECT shorturl.shorten('https://example.com/fresh')});
isnt($node->safe_psql('fresh', $key_sql), $node->safe_psql('src', $key_sql),
	'the first shorten() of another database makes another key');

# ---------------------------------------------------------------------
# A dump taken with clicks pending holds the tables' counts only
# ---------------------------------------------------------------------
my $pending = $node->safe_psql('src', 'SELECT pending_visits FROM shorturl.stats');
cmp_ok($pending, '>', 0, "clicks pending in shared memory before the flush: $pending");
cmp_ok($node->safe_psql('src', 'SELECT count(*) FROM shorturl.visit_counts'),
	'>', 1000, 'and the first round is in shorturl.visit_counts');
my $stored_before_flush = rows($node, 'src', $stored_sql);
my $live_before_flush = rows($node, 'src', $live_sql);
is( $node->safe_psql(
		'src',
		"SELECT sum(shorturl.visits(code)) - (SELECT sum(visits) FROM shorturl.visit_counts) FROM shorturl.links"),
	$pending,
	'live visits exceed the tables by exactly the pending clicks');

my $unflushed_dump = "$tempdir/unflushed.dump";
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $unflushed_dump, '-d', $node->connstr('src') ],
	'pg_dump -Fc with clicks pending');
$node->safe_psql('postgres', 'CREATE DATABASE dst_unflushed');
$node->command_checks_all(
	[ 'pg_restore', '-d', $node->connstr('dst_unflushed'), $unflushed_dump ],
	0, [qr/\A\z/], [qr/\A\z/],
	'pg_restore of the unflushed dump: exit 0, no output');
is_deeply(rows($node, 'dst_unflushed', $stored_sql),
	$stored_before_flush,
	'unflushed dump: restored counts equal the tables at dump time');
is( $node->safe_psql('dst_unflushed',
		'SELECT sum(shorturl.visits(code)) FROM shorturl.links'),
	$node->safe_psql('src',
		'SELECT sum(shorturl.visits(code)) - ' . $pending . ' FROM shorturl.links'),
	'unflushed dump: restored visits() fall short of the source by the pending clicks');

# ---------------------------------------------------------------------
# Flush, then dump: the dump holds every click
# ---------------------------------------------------------------------
is($node->safe_psql('src', 'SELECT shorturl.flush()'),
	$pending, 'flush() writes exactly the pending clicks');
is($node->safe_psql('src', 'SELECT pending_visits FROM shorturl.stats'),
	'0', 'nothing pending after the flush');
is_deeply(rows($node, 'src', $live_sql),
	$live_before_flush, 'the flush changes no live count or status');
is( $node->safe_psql(
		'src', qq{
SELECT count(*) FROM ($stored_sql) AS s (id, stored) JOIN shorturl.links AS l USING (id)
WHERE stored <> shorturl.visits(l.code)}),
	'0',
	'after the flush the tables hold the live counts');

# what the restores must reproduce, taken before the dump
my %want = (
	links => rows($node, 'src', $links_sql),
	counts => rows($node, 'src', $counts_sql),
	pending_rows => rows($node, 'src', $pending_rows_sql),
	live => rows($node, 'src', $live_sql),
	resolve => rows($node, 'src', $expected_resolve_sql),
	resolve_tables => rows($node, 'src', $expected_resolve_tables_sql),
	visits_served => rows($node, 'src', $expected_visits_served_sql),
	visits_tables => rows($node, 'src', $expected_visits_tables_sql),
	limited_active => $node->safe_psql('src', $limited_active_sql),
	key => rows($node, 'src', $key_sql),
	encode => rows($node, 'src', $encode_sql),
	decode => rows($node, 'src', $decode_sql),
	seq => rows($node, 'src', $seq_sql),
	reserved => rows($node, 'src', $reserved_sql),
	retired => rows($node, 'src', $retired_sql),
	shards => rows($node, 'src', $shards_sql),
	route => rows($node, 'src', $route_sql));
# the cases of a restore that counts in the tables need such links
cmp_ok($want{limited_active}, '>', 20,
	"the source has $want{limited_active} active links with max_visits");
my %old_codes = map { (split /\|/)[1] => 1 } @{ $want{links} };
my ($last_value) = split /\|/, $want{seq}[0];
is($node->safe_psql('src', 'SELECT max(id) FROM shorturl.links'),
	$last_value, "the highest link id is the sequence's last value ($last_value)");
my $squatter = $node->safe_psql('src',
	"SELECT code FROM shorturl.links WHERE url = 'https://example.org/squatter'");
my $squatted_id = $node->safe_psql('src', "SELECT shorturl.decode_id('$squatter')");
is($squatted_id, $last_value + 2,
	"the squatting alias $squatter is the code of a future id, last_value + 2");

my $dump = "$tempdir/src.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ],
	'pg_dump -Fc after flush()');
my $data_dump = "$tempdir/src_data.dump";
$node->command_ok(
	[ 'pg_dump', '--data-only', '-Fc', '-f', $data_dump, '-d', $node->connstr('src') ],
	'pg_dump --data-only -Fc after flush()');

# ---------------------------------------------------------------------
# check_restored: everything a restore must keep, then new codes
# ---------------------------------------------------------------------
sub check_restored
{
	my ($n, $db, $label, $served) = @_;

	# where clicks go decides which links resolve() serves
	is($n->safe_psql($db, 'SELECT mode FROM shorturl.stats'),
		$served ? 'shared' : 'sync',
		$served ? "$label: clicks count in shared memory" : "$label: clicks count in the tables");
	# the links, their limits and states, column by column
	is_deeply(rows($n, $db, $links_sql), $want{links},
		"$label: links equal (every column, url_hash included)");
	# the stored counts: both tables, row by row
	is_deeply(rows($n, $db, $counts_sql), $want{counts}, "$label: visit_counts equal");
	is_deeply(rows($n, $db, $pending_rows_sql), $want{pending_rows},
		"$label: pending_visits equal");
	# the dump was taken right after a flush: the live counts are exact
	is_deeply(rows($n, $db, $live_sql), $want{live},
		"$label: visits() and link_status() equal the source's");
	# the key is the dumped one, so old codes mean the same ids
	is_deeply(rows($n, $db, $key_sql), $want{key},
		"$label: the one key row is the dumped one (key, created_at, width segments)");
	is_deeply(rows($n, $db, $encode_sql), $want{encode},
		"$label: encode_id gives the same codes");
	is_deeply(rows($n, $db, $decode_sql), $want{decode},
		"$label: every generated code decodes to the same id");
	is_deeply(rows($n, $db, $seq_sql), $want{seq}, "$label: the sequence is where it was");
	# configuration: reserved words, retired aliases, the shard map
	is_deeply(rows($n, $db, $reserved_sql), $want{reserved},
		"$label: reserved words equal (built-in once, user-added kept)");
	is_deeply(rows($n, $db, $retired_sql), $want{retired},
		"$label: retired aliases equal");
	is_deeply(rows($n, $db, $shards_sql), $want{shards}, "$label: shard map equal");
	is_deeply(rows($n, $db, $route_sql), $want{route}, "$label: route() agrees");

	# what shorten() must still refuse
	like(ShortURL::Test::sql_error($n, $db,
			"SELECT shorturl.shorten('https://example.com/x', alias => 'PRICING')"),
		qr/^22023: alias "PRICING" is reserved/, "$label: a user-added reserved word is refused");
	like(ShortURL::Test::sql_error($n, $db,
			"SELECT shorturl.shorten('https://example.com/x', alias => 'promo-7')"),
		qr/^23505: alias "promo-7" is retired/, "$label: a retired alias stays refused");
	like(ShortURL::Test::sql_error($n, $db,
			"SELECT shorturl.shorten('https://example.com/x', alias => '$gone_code')"),
		qr/^23505: alias "\Q$gone_code\E" is already taken/,
		"$label: the code of a deleted generated link is not handed out again");

	# served: every active link resolves to its URL; disabled, expired and
	# exhausted ones do not.  In the tables: the same, but for the links
	# with max_visits, none of which is served
	if ($served)
	{
		is_deeply(rows($n, $db, $resolve_sql), $want{resolve},
			"$label: every link resolves as in the source");
	}
	else
	{
		is_deeply(rows($n, $db, $resolve_sql), $want{resolve_tables},
			"$label: every link resolves as in the source, but for the limited ones: NULL");
		# resolved again: still NULL, and still active
		is($n->safe_psql($db, q{
SELECT count(*),
       count(*) FILTER (WHERE shorturl.resolve(code) IS NULL AND shorturl.link_status(code) = 'active')
FROM shorturl.links
WHERE max_visits IS NOT NULL AND shorturl.link_status(code) = 'active'}),
			"$want{limited_active}|$want{limited_active}",
			"$label: none of the $want{limited_active} active limited links is served, all stay active");
	}
	# each link served counted one visit; a link refused, none
	is_deeply(rows($n, $db, $visits_sql), $served ? $want{visits_served} : $want{visits_tables},
		"$label: the resolves counted one visit of each link served, none of any other");

	# new codes continue the sequence under the same key and widths, and
	# step over the squatting alias: ids last_value+1 .. last_value+501
	# but the squatted one
	my $new = rows(
		$n, $db, q{
CREATE TEMP TABLE new_codes AS
    SELECT shorturl.shorten('https://example.com/after/' || g) AS code
    FROM generate_series(1, 500) AS g;
SELECT code, shorturl.decode_id(code) FROM new_codes ORDER BY 2});
	is(scalar(@$new), 500, "$label: 500 new codes");
	my @collisions = grep { $old_codes{ (split /\|/)[0] } } @$new;
	is_deeply(\@collisions, [], "$label: no new code equals an old one");
	my @ids = map { (split /\|/)[1] } @$new;
	my @want_ids = grep { $_ != $squatted_id } ($last_value + 1 .. $last_value + 501);
	is_deeply(\@ids, \@want_ids,
		"$label: new ids follow the old maximum ($last_value), skipping the squatted one");
	is_deeply([ grep { length((split /\|/)[0]) != 8 } @$new ], [],
		"$label: new codes have the width in force at the dump (8)");

	# the extension's triggers fire after the restore: a deleted alias is
	# retired (--disable-triggers leaves them enabled again)
	$n->safe_psql($db, q{DELETE FROM shorturl.links WHERE code = 'promo-11'});
	like(ShortURL::Test::sql_error($n, $db,
			"SELECT shorturl.shorten('https://example.com/x', alias => 'promo-11')"),
		qr/^23505: alias "promo-11" is retired/,
		"$label: an alias deleted after the restore is retired");
}

# pipe runs pg_dump | psql; returns whether both exited 0, and their stderr
sub pipe_restore
{
	my ($from, $to, @dump_opts) = @_;
	my ($dump_err, $psql_out, $psql_err) = ('', '', '');
	my $ok = IPC::Run::run(
		[ 'pg_dump', @dump_opts, '-Fp', '-d', $from ], '2>', \$dump_err, '|',
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $to ],
		'>', \$psql_out, '2>', \$psql_err);
	return ($ok, $dump_err . $psql_err);
}

# 1. pg_restore into a new database of the same server (sync counting)
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_checks_all([ 'pg_restore', '-d', $node->connstr('dst'), $dump ],
	0, [qr/\A\z/], [qr/\A\z/], 'pg_restore into dst: exit 0, no output');
check_restored($node, 'dst', 'same server', 0);

# 2. pg_restore into a second server whose worker serves dst (shared memory)
my $node2 = new_node('second', 'dst, dst_data, dst_sync');
$node2->safe_psql('postgres', 'CREATE DATABASE dst');
$node2->command_checks_all([ 'pg_restore', '-d', $node2->connstr('dst'), $dump ],
	0, [qr/\A\z/], [qr/\A\z/], 'pg_restore into a served dst on a second server: exit 0, no output');
served($node2, 'dst');
check_restored($node2, 'dst', 'second server', 1);
# the clicks of check_restored's resolve went to shared memory
cmp_ok($node2->safe_psql('dst', 'SELECT shorturl.flush()'), '>', 0,
	'second server: the restored database counted in shared memory');
is($node2->safe_psql('dst', q{
SELECT count(*) FROM shorturl.links AS l JOIN shorturl.visit_counts AS c ON c.link_id = l.id
WHERE c.visits > l.max_visits}),
	'0', 'second server: no limited link passed its limit after the restore');

# 3. plain SQL: pg_dump | psql
$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
my ($ok, $err) = pipe_restore($node->connstr('src'), $node->connstr('dst_plain'));
ok($ok, 'pg_dump | psql exits 0');
is($err, '', 'pg_dump | psql: nothing on stderr');
check_restored($node, 'dst_plain', 'plain SQL', 0);

# 4. data only, custom format, into a served database of the second server
# where CREATE EXTENSION ran
$node2->safe_psql('postgres', 'CREATE DATABASE dst_data');
$node2->safe_psql('dst_data', 'CREATE EXTENSION pg_shorturl');
served($node2, 'dst_data');
$node2->command_checks_all(
	[ 'pg_restore', '--data-only', '--disable-triggers', '-d', $node2->connstr('dst_data'), $data_dump ],
	0, [qr/\A\z/], [qr/\A\z/],
	'pg_restore --data-only --disable-triggers into an installed extension: exit 0, no output');
check_restored($node2, 'dst_data', 'data-only pg_restore', 1);

# 5. data only, plain SQL with --disable-triggers, into a database where
# CREATE EXTENSION ran (and one that a session had looked into: no key)
$node->safe_psql('postgres', 'CREATE DATABASE dst_data_plain');
$node->safe_psql('dst_data_plain', 'CREATE EXTENSION pg_shorturl');
my $looker = $node->background_psql('dst_data_plain');
is($looker->query_safe(q{SELECT shorturl.decode_id('abcdefg') IS NULL, shorturl.resolve('promo-1') IS NULL}),
	't|t', 'a session sees no key and no link before the data-only restore');
($ok, $err) = pipe_restore($node->connstr('src'), $node->connstr('dst_data_plain'),
	'--data-only', '--disable-triggers');
ok($ok, 'pg_dump --data-only --disable-triggers | psql exits 0');
is($err, '', 'pg_dump --data-only --disable-triggers | psql: nothing on stderr');
check_restored($node, 'dst_data_plain', 'data-only plain SQL', 0);
# a session that looked before the restore sees the restored key at once
my ($id1000, $code1000) = split /\|/, $want{encode}[5];
is($looker->query_safe("SELECT shorturl.decode_id('$code1000')"),
	$id1000, 'data-only plain SQL: a session open across the restore uses the restored key');
$looker->quit;

# ---------------------------------------------------------------------
# A data-only restore into a database that made a key of its own fails
# loudly.  With pg_restore --exit-on-error (the README's advice for this
# path) or psql ON_ERROR_STOP, it stops at the key and mixes no keys; a
# pg_restore left to go on past errors would load links made under the
# other key, which is why the README says to restore into a database
# that has made no link.
# ---------------------------------------------------------------------
for my $how ('pg_restore', 'psql')
{
	my $db = "keyed_$how";
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION pg_shorturl');
	my $own = $node->safe_psql($db, q{SELECT shorturl.shorten('https://example.com/own')});
	my $own_key = $node->safe_psql($db, $key_sql);

	my ($rc, $stderr);
	if ($how eq 'pg_restore')
	{
		my $stdout;
		$rc = IPC::Run::run(
			[ 'pg_restore', '--data-only', '--disable-triggers', '--exit-on-error',
			  '--single-transaction', '-d', $node->connstr($db), $data_dump ],
			'>', \$stdout, '2>', \$stderr);
	}
	else
	{
		($rc, $stderr) = pipe_restore($node->connstr('src'), $node->connstr($db),
			'--data-only', '--disable-triggers');
	}
	ok(!$rc, "$how: the data-only restore into a database with a key fails");
	like($stderr, qr/duplicate key value violates unique constraint "code_key_pkey"/,
		"$how: the error names the key row");
	is($node->safe_psql($db, $key_sql), $own_key, "$how: the database keeps its own key");
	# no link has a generated code that this database's key does not make
	is($node->safe_psql($db,
			'SELECT count(*) FROM shorturl.links WHERE NOT is_alias AND shorturl.decode_id(code) IS DISTINCT FROM id'),
		'0', "$how: every generated code decodes to its own id under the key in use");
	is($node->safe_psql($db, qq{SELECT shorturl.resolve('$own')}),
		'https://example.com/own', "$how: the database's own link still resolves");
}

# ---------------------------------------------------------------------
# A sync source with unfolded clicks, restored into a served database
# that flushes in the middle of the restore
# ---------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE src_sync');
$node->safe_psql('src_sync', q{
CREATE EXTENSION pg_shorturl;
SELECT count(shorturl.shorten('https://example.com/s/' || g,
                              max_visits => CASE WHEN g % 5 = 0 THEN 3 END))
FROM generate_series(1, 200) AS g;
});
# every 4th link arrived with 1 or 2 visits (below any limit), which
# add_visits() puts in shorturl.visit_counts
my $arrived = 'id % 4 = 0';
my $arrived_visits = '1 + (id / 4) % 2';
$node->safe_psql('src_sync', qq{
SELECT shorturl.add_visits(array_agg(id ORDER BY id), array_agg(($arrived_visits)::bigint ORDER BY id))
FROM shorturl.links WHERE $arrived});
# two rounds of clicks with a flush between: each unlimited link then has
# the flush's compacted pending_visits row and rows of the second round;
# the limited links are refused, so only the unlimited ones' clicks count
my $sync_clicks = q{
SELECT count(shorturl.resolve(code))
FROM shorturl.links, generate_series(1, 2 + (id % 3)::integer)};
my $sync_served = $node->safe_psql('src_sync',
	'SELECT sum(2 + id % 3) FROM shorturl.links WHERE max_visits IS NULL');
is($node->safe_psql('src_sync', $sync_clicks), $sync_served,
	"src_sync, first round: resolve() served the $sync_served clicks of the unlimited links only");
$node->safe_psql('src_sync', 'SELECT shorturl.flush()');
is($node->safe_psql('src_sync', $sync_clicks), $sync_served,
	"src_sync, second round: resolve() served the $sync_served clicks of the unlimited links only");
is($node->safe_psql('src_sync', 'SELECT mode FROM shorturl.stats'), 'sync',
	'src_sync counts in the tables');
is($node->safe_psql('src_sync', q{
SELECT count(DISTINCT link_id) || ' ' || (count(*) > count(DISTINCT link_id)) || ' '
       || count(*) FILTER (WHERE l.max_visits IS NOT NULL)
FROM shorturl.pending_visits AS p JOIN shorturl.links AS l ON l.id = p.link_id}),
	'160 true 0',
	'src_sync: the 160 unlimited links have compacted and new pending rows, the limited ones none');
# visit_counts holds what arrived, untouched by the clicks
is($node->safe_psql('src_sync', qq{
SELECT count(*), count(*) FILTER (WHERE l.$arrived AND c.visits = $arrived_visits)
FROM shorturl.visit_counts AS c JOIN shorturl.links AS l ON l.id = c.link_id}),
	'50|50', 'src_sync: visit_counts holds the 50 arrived counts, unchanged');
my $limited_arrived = $node->safe_psql('src_sync',
	"SELECT count(*) FROM shorturl.links WHERE max_visits IS NOT NULL AND $arrived");
cmp_ok($limited_arrived, '>', 0, "src_sync: $limited_arrived limited links arrived with visits");
# the limited links were never served: visits() is what arrived, and each
# is still active
is($node->safe_psql('src_sync', qq{
SELECT count(*),
       count(*) FILTER (WHERE shorturl.visits(code) = CASE WHEN $arrived THEN $arrived_visits ELSE 0 END
                          AND shorturl.link_status(code) = 'active')
FROM shorturl.links WHERE max_visits IS NOT NULL}),
	'40|40', 'src_sync: the 40 limited links counted no click and are all still active');
my $sync_live = rows($node, 'src_sync', $live_sql);
my $sync_stored = rows($node, 'src_sync', $stored_sql);
my $sync_dump = "$tempdir/src_sync.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $sync_dump, '-d', $node->connstr('src_sync') ],
	'pg_dump -Fc of src_sync');

# the restore, cut after the data of pending_visits; the worker comes to
# the database (its first flush is at once) before the rest is restored,
# and shorturl.flush() runs there too, so a flush surely follows the COPY
# of pending_visits
my $list = `pg_restore -l $sync_dump`;
my @items = split /\n/, $list;
my ($cut) = grep { $items[$_] =~ /TABLE DATA shorturl pending_visits / } 0 .. $#items;
ok(defined $cut && grep({ /TABLE DATA shorturl visit_counts / } @items[ $cut + 1 .. $#items ]),
	'the dump restores pending_visits before visit_counts');
append_to_file("$tempdir/first.list", join "\n", @items[ 0 .. $cut ], '');
append_to_file("$tempdir/rest.list", join "\n", @items[ $cut + 1 .. $#items ], '');
$node2->safe_psql('postgres', 'CREATE DATABASE dst_sync');
$node2->command_checks_all(
	[ 'pg_restore', '-L', "$tempdir/first.list", '-d', $node2->connstr('dst_sync'), $sync_dump ],
	0, [qr/\A\z/], [qr/\A\z/], 'restore of src_sync up to pending_visits: no output');
served($node2, 'dst_sync');
ShortURL::Test::wait_until($node2, 'dst_sync', 'SELECT flushes > 0 FROM shorturl.stats')
  or die 'the worker of dst_sync did not flush';
$node2->safe_psql('dst_sync', 'SELECT shorturl.flush()');
# the flush compacted pending_visits and wrote no row of visit_counts,
# which the rest of the restore loads (rows of links with pending rows)
is($node2->safe_psql('dst_sync', q{
SELECT count(*), count(DISTINCT link_id), (SELECT count(*) FROM shorturl.visit_counts)
FROM shorturl.pending_visits}),
	'160|160|0', 'dst_sync: the flush mid-restore left one pending row per link and no visit_counts row');
$node2->command_checks_all(
	[ 'pg_restore', '-L', "$tempdir/rest.list", '-d', $node2->connstr('dst_sync'), $sync_dump ],
	0, [qr/\A\z/], [qr/\A\z/],
	'the rest of the restore, after a flush of the worker: exit 0, no output');
is_deeply(rows($node2, 'dst_sync', $live_sql), $sync_live,
	'dst_sync: visits() and link_status() equal the source\'s');
$node2->safe_psql('dst_sync', 'SELECT shorturl.flush()');
is_deeply(rows($node2, 'dst_sync', $stored_sql), $sync_stored,
	'dst_sync: after a flush the stored counts equal the source\'s');
# served, the limited links the source refused are served, and counted
is($node2->safe_psql('dst_sync',
		'SELECT count(shorturl.resolve(code)) FROM shorturl.links WHERE max_visits IS NOT NULL'),
	'40', 'dst_sync: served, each of the 40 limited links resolves');
is($node2->safe_psql('dst_sync', 'SELECT count(*) FROM shorturl.links AS l WHERE max_visits IS NOT NULL AND '
			. 'shorturl.visits(code) <> ' . ShortURL::Test::stored_expr('l') . ' + 1'),
	'0', 'dst_sync: visits() of each limited link is its stored count plus that click');

$node2->stop;
$node->stop;
done_testing();
