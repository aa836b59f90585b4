# 003_dump_restore.pl: pg_dump and a restore into a new database keep
# everything a shortener needs.  After the restore every link resolves to the
# same URL with the same limits, visit counts are those of the source, the
# permutation key is the dumped one (old codes decode to the same ids), the
# code sequence continues (new codes collide with no old one, not even with an
# alias squatting a future code), and user-added reserved words, quarantined
# aliases and the shard map survive; the restore itself reports no error.
#
# Three restore paths: pg_restore of a custom-format dump into a new database
# of the same server (not served by the worker: clicks count synchronously),
# pg_restore into a second server whose worker serves the restored database
# (clicks count in shared memory), and plain SQL, pg_dump | psql.
#
# Clicks still in shared memory are not in a dump: pg_dump reads
# shorturl.links, and pending clicks reach that table only when they are
# flushed (by the worker every shorturl.flush_interval, by shorturl.flush(),
# or at a clean shutdown).  Flush right before pg_dump to dump exact counts.
# The test proves both halves: a dump taken with clicks pending restores the
# table's counts, short of visits() by exactly the pending clicks, and a dump
# taken after shorturl.flush() restores visits() exactly.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $tempdir = PostgreSQL::Test::Utils::tempdir;

# A preloaded server whose worker serves $served.  The worker flushes and
# purges only hourly, so the test decides when clicks reach the table and no
# expired link disappears between two snapshots.
sub new_node
{
	my ($name, $served) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_shorturl'
shorturl.database = '$served'
shorturl.flush_interval = '1h'
shorturl.purge_interval = '1h'
});
	$node->start;
	return $node;
}

# wait_until_served waits for the worker to serve $db (extension installed)
sub wait_until_served
{
	my ($node, $db) = @_;
	$node->poll_query_until($db,
		"SELECT mode = 'shared' AND worker_pid IS NOT NULL FROM shorturl.stats")
	  or die "the worker does not serve $db";
}

# rows returns the lines of a query's output
sub rows
{
	my ($node, $db, $sql) = @_;
	my $out = $node->safe_psql($db, $sql);
	return [ $out eq '' ? () : split /\n/, $out ];
}

# ---------------------------------------------------------------------
# What is compared, as text, row by row
# ---------------------------------------------------------------------

# every column a user set or the store counted (url_hash is generated)
my $links_sql = q{
SELECT code, url, extract(epoch FROM created_at), extract(epoch FROM expires_at),
       max_visits, visits, extract(epoch FROM last_visit_at),
       extract(epoch FROM exhausted_at), is_alias
FROM shorturl.links ORDER BY code};

# what the API answers for each link, without counting a visit
my $live_sql = q{
SELECT code, shorturl.visits(code), shorturl.link_status(code)
FROM shorturl.links ORDER BY code};

# what resolve() must return: the URL of an active link, else NULL
my $expected_resolve_sql = q{
SELECT code, CASE WHEN shorturl.link_status(code) = 'active' THEN url END
FROM shorturl.links ORDER BY code};
my $resolve_sql = q{
SELECT code, shorturl.resolve(code) FROM shorturl.links ORDER BY code};

my $key_sql = q{SELECT encode(key, 'hex'), extract(epoch FROM created_at) FROM shorturl.code_key};
my $encode_sql = q{
SELECT n, shorturl.encode_id(n)
FROM unnest(ARRAY[0, 1, 2, 61, 62, 1000, 3521614606207, 3521614606208,
                  123456789012, 800000000000000000]::bigint[]) AS n
ORDER BY n};
my $decode_sql = q{
SELECT code, shorturl.decode_id(code) FROM shorturl.links WHERE NOT is_alias ORDER BY code};
my $seq_sql = q{SELECT last_value, is_called FROM shorturl.link_id_seq};
my $reserved_sql = q{SELECT alias, builtin FROM shorturl.reserved_aliases ORDER BY alias};
my $quarantine_sql = q{
SELECT alias, extract(epoch FROM deleted_at), extract(epoch FROM released_at)
FROM shorturl.alias_quarantine ORDER BY alias};
my $shards_sql = q{
SELECT name, weight, conninfo, extract(epoch FROM created_at) FROM shorturl.shards ORDER BY name};
my $route_sql = q{
SELECT code, shorturl.route(code) FROM shorturl.links ORDER BY code LIMIT 500};

# ---------------------------------------------------------------------
# The source: a served database with links of every kind, and clicks
# ---------------------------------------------------------------------
my $node = new_node('primary', 'src');
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pg_shorturl');
wait_until_served($node, 'src');

$node->safe_psql(
	'src', q{
-- 3000 generated codes: every 10th limited to 1..5 visits, every 7th
-- expiring (far in the future), URLs with queries, fragments, ports
SELECT count(shorturl.shorten(
           'https://example.com:8443/page/' || g || '?q=' || md5(g::text) || '#top',
           expires_at => CASE WHEN g % 7 = 0
                              THEN timestamptz '2100-01-01 00:00:00+00' + g * interval '1 second' END,
           max_visits => CASE WHEN g % 10 = 0 THEN 1 + g % 5 END))
FROM generate_series(1, 3000) AS g;

-- 300 aliases, every 3rd limited to 2 visits
SELECT count(shorturl.shorten('http://example.org/a/' || g, alias => 'promo-' || g,
                              max_visits => CASE WHEN g % 3 = 0 THEN 2 END))
FROM generate_series(1, 300) AS g;

-- links that expire within seconds (expired before the dump)
SELECT count(shorturl.shorten('https://example.net/soon/' || g,
                              expires_at => now() + interval '1 second'))
FROM generate_series(1, 20) AS g;

-- an alias squatting the code the sequence gives out third after the
-- dump: the restored generator must step over it
SELECT shorturl.shorten('https://example.org/squatter',
           alias => shorturl.encode_id(
               (SELECT last_value + 3 FROM shorturl.link_id_seq)));

-- user-added reserved words, a deleted alias in quarantine, a shard map
INSERT INTO shorturl.reserved_aliases (alias) VALUES ('pricing'), ('Careers');
DELETE FROM shorturl.links WHERE code IN ('promo-7', 'promo-8');
INSERT INTO shorturl.shards (name, weight, conninfo) VALUES
    ('eu-1', 1, 'host=eu1.example dbname=links'),
    ('us-1', 2.5, 'host=us1.example dbname=links'),
    ('ap-1', 0.5, NULL);
});

is($node->safe_psql('src', 'SELECT count(*) FROM shorturl.links'),
	'3319', 'source has 3000 generated links, 298 aliases, a squatter and 20 expiring');
is($node->safe_psql('src', 'SELECT count(*) FROM shorturl.alias_quarantine'),
	'2', 'the deleted aliases are quarantined');

# Visits, in shared memory: link number i (in code order) is resolved i % 6
# times, so limited links reach and pass their limits.
my $click_sql = q{
SELECT count(shorturl.resolve(l.code))
FROM (SELECT code, row_number() OVER (ORDER BY code) AS i FROM shorturl.links) AS l,
     generate_series(1, (l.i % 6)::integer) AS r};
my $served = $node->safe_psql('src', $click_sql);
cmp_ok($served, '>', 5000, "clicks served in src: $served");
is($node->safe_psql('src', 'SELECT mode FROM shorturl.stats'),
	'shared', 'src counts clicks in shared memory');
cmp_ok($node->safe_psql('src',
		q{SELECT count(*) FROM shorturl.links WHERE shorturl.link_status(code) = 'exhausted'}),
	'>', 100, 'some limited links are exhausted');

# the short-lived links have expired
$node->poll_query_until('src',
	q{SELECT bool_and(shorturl.link_status(code) = 'expired') FROM shorturl.links
	  WHERE url LIKE 'https://example.net/soon/%'})
  or die 'the short-lived links did not expire';

# ---------------------------------------------------------------------
# A dump taken with clicks pending holds the table's counts only
# ---------------------------------------------------------------------
my $pending = $node->safe_psql('src', 'SELECT pending_visits FROM shorturl.stats');
cmp_ok($pending, '>', 0, "clicks pending in shared memory before the flush: $pending");
my $table_before_flush = rows($node, 'src', $links_sql);
my $live_before_flush = rows($node, 'src', $live_sql);
is( $node->safe_psql(
		'src',
		'SELECT sum(shorturl.visits(code)) - sum(visits) FROM shorturl.links'),
	$pending,
	'live visits exceed the table by exactly the pending clicks');

my $unflushed_dump = "$tempdir/unflushed.dump";
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $unflushed_dump, '-d', $node->connstr('src') ],
	'pg_dump -Fc with clicks pending');
$node->safe_psql('postgres', 'CREATE DATABASE dst_unflushed');
$node->command_checks_all(
	[ 'pg_restore', '-d', $node->connstr('dst_unflushed'), $unflushed_dump ],
	0, [qr/\A\z/], [qr/\A\z/],
	'pg_restore of the unflushed dump: exit 0, no output');
is_deeply(rows($node, 'dst_unflushed', $links_sql),
	$table_before_flush,
	'unflushed dump: restored links equal the table at dump time');
is( $node->safe_psql(
		'dst_unflushed', 'SELECT sum(visits) FROM shorturl.links'),
	$node->safe_psql('src',
		'SELECT sum(shorturl.visits(code)) - ' . $pending . ' FROM shorturl.links'),
	'unflushed dump: restored visits fall short of visits() by the pending clicks');

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
		'src',
		'SELECT count(*) FROM shorturl.links WHERE visits <> shorturl.visits(code)'),
	'0',
	'after the flush the table holds the live counts');

# what the restores must reproduce, taken before the dump
my %want = (
	links => rows($node, 'src', $links_sql),
	live => rows($node, 'src', $live_sql),
	resolve => rows($node, 'src', $expected_resolve_sql),
	key => rows($node, 'src', $key_sql),
	encode => rows($node, 'src', $encode_sql),
	decode => rows($node, 'src', $decode_sql),
	seq => rows($node, 'src', $seq_sql),
	reserved => rows($node, 'src', $reserved_sql),
	quarantine => rows($node, 'src', $quarantine_sql),
	shards => rows($node, 'src', $shards_sql),
	route => rows($node, 'src', $route_sql));
my %old_codes = map { (split /\|/)[0] => 1 } @{ $want{links} };
my $max_old_id = $node->safe_psql('src',
	'SELECT max(shorturl.decode_id(code)) FROM shorturl.links WHERE NOT is_alias');
my ($last_value) = split /\|/, $want{seq}[0];
is($max_old_id, $last_value, "the highest generated id is the sequence's last value ($last_value)");
my $squatter = $node->safe_psql('src',
	"SELECT code FROM shorturl.links WHERE url = 'https://example.org/squatter'");
is($node->safe_psql('src', "SELECT shorturl.decode_id('$squatter')"),
	$last_value + 3, "the squatting alias $squatter is the code of id last_value + 3");

# a fresh CREATE EXTENSION makes another key: the checks below can tell
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_shorturl');
isnt($node->safe_psql('fresh', $encode_sql),
	join("\n", @{ $want{encode} }), 'a fresh extension has another key');

my $dump = "$tempdir/src.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ],
	'pg_dump -Fc after flush()');
my $plain = "$tempdir/src.sql";

# ---------------------------------------------------------------------
# check_restored: everything a restore must keep, then new codes
# ---------------------------------------------------------------------
sub check_restored
{
	my ($n, $db, $label) = @_;

	is_deeply(rows($n, $db, $links_sql), $want{links},
		"$label: links equal (code, url, created_at, expires_at, max_visits, visits, last_visit_at, exhausted_at, is_alias)");
	is_deeply(rows($n, $db, $live_sql), $want{live},
		"$label: visits() and link_status() equal the source's before the dump");
	is_deeply(rows($n, $db, $key_sql), $want{key}, "$label: the one key is the dumped key");
	is_deeply(rows($n, $db, $encode_sql), $want{encode},
		"$label: encode_id gives the same codes");
	is_deeply(rows($n, $db, $decode_sql), $want{decode},
		"$label: every generated code decodes to the same id");
	is_deeply(rows($n, $db, $seq_sql), $want{seq}, "$label: the sequence is where it was");
	is_deeply(rows($n, $db, $reserved_sql), $want{reserved},
		"$label: reserved words equal (built-in once, user-added kept)");
	is_deeply(rows($n, $db, $quarantine_sql), $want{quarantine},
		"$label: quarantine equal");
	is_deeply(rows($n, $db, $shards_sql), $want{shards}, "$label: shard map equal");
	is_deeply(rows($n, $db, $route_sql), $want{route}, "$label: route() agrees");

	my ($rc, $out, $err) = $n->psql($db,
		"SELECT shorturl.shorten('https://example.com/x', alias => 'PRICING')");
	like($err, qr/alias "PRICING" is reserved/, "$label: a user-added reserved word is refused");
	($rc, $out, $err) = $n->psql($db,
		"SELECT shorturl.shorten('https://example.com/x', alias => 'promo-7')");
	like($err, qr/alias "promo-7" is quarantined/, "$label: a quarantined alias is refused");

	# every active link resolves to its URL; expired and exhausted ones do not
	is_deeply(rows($n, $db, $resolve_sql), $want{resolve},
		"$label: every link resolves as in the source");

	# new codes continue the sequence under the same key and step over the
	# squatting alias: ids last_value+1 .. last_value+501 but last_value+3
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
	my @want_ids = grep { $_ != $last_value + 3 } ($last_value + 1 .. $last_value + 501);
	is_deeply(\@ids, \@want_ids,
		"$label: new ids follow the old maximum ($max_old_id), skipping the squatted one");
}

# 1. pg_restore into a new database of the same server (sync counting)
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_checks_all([ 'pg_restore', '-d', $node->connstr('dst'), $dump ],
	0, [qr/\A\z/], [qr/\A\z/], 'pg_restore into dst: exit 0, no output');
is($node->safe_psql('dst', 'SELECT mode FROM shorturl.stats'), 'sync',
	'dst on the same server counts synchronously');
check_restored($node, 'dst', 'same server');

# 2. pg_restore into a second server whose worker serves dst (shared memory)
my $node2 = new_node('second', 'dst');
$node2->safe_psql('postgres', 'CREATE DATABASE dst');
$node2->command_checks_all([ 'pg_restore', '-d', $node2->connstr('dst'), $dump ],
	0, [qr/\A\z/], [qr/\A\z/], 'pg_restore into a served dst on a second server: exit 0, no output');
wait_until_served($node2, 'dst');
check_restored($node2, 'dst', 'second server');
is($node2->safe_psql('dst', 'SELECT shorturl.flush() > 0'), 't',
	'second server: the restored database counted in shared memory');
is($node2->safe_psql('dst',
		q{SELECT count(*) FROM shorturl.links WHERE max_visits IS NOT NULL AND visits > max_visits}),
	'0', 'second server: no limited link passed its limit after the restore');

# 3. plain SQL: pg_dump | psql
$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
my ($dump_err, $psql_out, $psql_err) = ('', '', '');
my $piped = IPC::Run::run(
	[ 'pg_dump', '-Fp', '-d', $node->connstr('src') ], '2>', \$dump_err, '|',
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain') ],
	'>', \$psql_out, '2>', \$psql_err);
ok($piped, 'pg_dump | psql exits 0');
is($dump_err . $psql_err, '', 'pg_dump | psql: nothing on stderr');
check_restored($node, 'dst_plain', 'plain SQL');

$node2->stop;
$node->stop;
done_testing();
