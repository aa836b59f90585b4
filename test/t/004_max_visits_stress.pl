# 004_max_visits_stress.pl: max_visits is exact under concurrency.  In a
# database a worker serves, a link with max_visits = N is returned exactly
# min(N, attempts) times by shorturl.resolve() however many sessions
# resolve it at once; in a database that counts in the tables it is never
# returned at all.  In both, visits() of an unlimited link equals the
# number of resolves exactly.
#
# pgbench drives 8 clients (2 threads, 4000 transactions a run) through
# custom scripts; every transaction resolves a code and records in an
# unlogged table whether it got the URL, so successes are counted exactly,
# not inferred from visits().  Demand exceeds the limits, so a lost update
# shows as a success too many.  Each run is made twice:
#	- in the database the worker serves ('served'): clicks are counted in
#	  shared memory, and flushes happen mid-run, from the worker (every
#	  20 ms) and from shorturl.flush() in one pgbench transaction in eleven;
#	- in another database ('plain', outside shorturl.database = 'served'):
#	  clicks are counted in the tables, in the clicking transaction.  There
#	  a limited link is never served (a click counted there is undone if
#	  its transaction rolls back, which nothing tells beforehand): resolve()
#	  returns NULL, counts nothing, and link_status() still says 'active';
#	  an unlimited link's click appends a row to shorturl.pending_visits,
#	  which flush() compacts.
# Run 1 hammers one link (max_visits 500, about 3600 attempts).  Run 2
# spreads clicks over 50 limited links (max_visits 1..20, about 36 attempts
# each) and one unlimited hot link.  After each run: successes, visits(),
# link_status(), and, after a final flush, the stored counts and
# exhausted_at.
#
# Then, in 'plain' only, the two rules of counting in the tables:
#	- an open transaction that resolved an unlimited link does not hold up
#	  other sessions' resolves of it (0.5 held the link's row lock to the
#	  end of the transaction): 100 resolves from pgbench, each allowed to
#	  wait 200 ms for a lock at most, finish while it is open;
#	- a limited link gets NULL and is not counted whatever the transaction
#	  resolving it: one of a single statement, a transaction block
#	  (committed or rolled back), a subtransaction, a DO block that rolls
#	  back, a COPY.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

my $clients = 8;
my $tx_per_client = 500;
my $transactions = $clients * $tx_per_client;
my $limit = 500;        # max_visits of the link of run 1
my $multi_links = 50;   # limited links of run 2, m1 .. m50

my $node = ShortURL::Test::node('stress',
	"shorturl.database = 'served'",
	"shorturl.flush_interval = '20ms'",
	"shorturl.purge_interval = '1h'");

# the same links in both databases: m<k> allows 1 + (k * 7) % 20 visits
for my $db ('served', 'plain')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql(
		$db, qq{
CREATE EXTENSION pg_shorturl;
CREATE UNLOGGED TABLE hits (code text COLLATE "C" NOT NULL, ok boolean NOT NULL);
SELECT shorturl.shorten('https://example.com/limited', alias => 'limited', max_visits => $limit);
SELECT shorturl.shorten('https://example.com/hot', alias => 'hot');
SELECT count(shorturl.shorten('https://example.com/m/' || k, alias => 'm' || k,
                              max_visits => 1 + (k * 7) % 20))
FROM generate_series(1, $multi_links) AS k;
});
}
ShortURL::Test::wait_served($node, 'served')
  or die 'the worker does not serve the database "served"';
# the two counting modes under test
is($node->safe_psql('served', 'SELECT mode FROM shorturl.stats'),
	'shared', 'the served database counts in shared memory');
is($node->safe_psql('plain', 'SELECT mode FROM shorturl.stats'),
	'sync', 'the other database counts in the tables');

# pgbench scripts: each transaction resolves once and records the outcome
my %script = (
	limited => q{INSERT INTO hits (code, ok) SELECT 'limited', shorturl.resolve('limited') IS NOT NULL;
},
	multi => qq{\\set k random(1, $multi_links)
INSERT INTO hits (code, ok) SELECT 'm' || :k, shorturl.resolve('m' || :k) IS NOT NULL;
},
	hot => q{INSERT INTO hits (code, ok) SELECT 'hot', shorturl.resolve('hot') IS NOT NULL;
},
	flush => q{SELECT shorturl.flush();
});

# run_pgbench runs one pgbench; %$weights maps script names to weights
sub run_pgbench
{
	my ($db, $run, $weights) = @_;
	my %files =
	  map { ("${db}_${run}_$_.sql\@$weights->{$_}" => $script{$_}) } keys %$weights;
	$node->pgbench(
		"-n -c $clients -j 2 -t $tx_per_client",
		0,
		[qr{processed: $transactions/$transactions}],
		[qr{^$}],
		"$db, $run: pgbench runs $transactions transactions without error",
		\%files,
		$db);
}

# stats returns the worker's counters of a database as a hash
sub stats
{
	my ($db) = @_;
	my @v = split /\|/, $node->safe_psql($db,
		'SELECT flushes, flushed_visits, sync_fallbacks, pending_visits, refused_clicks FROM shorturl.stats');
	return { flushes => $v[0], flushed => $v[1], fallbacks => $v[2], pending => $v[3],
		refused => $v[4] };
}

# the stored count of a link and whether it is marked exhausted, after a flush
my $stored_sql = q{
SELECT coalesce(c.visits, 0) + coalesce((SELECT sum(p.visits) FROM shorturl.pending_visits AS p
                                         WHERE p.link_id = l.id), 0),
       l.exhausted_at IS NOT NULL
FROM shorturl.links AS l LEFT JOIN shorturl.visit_counts AS c ON c.link_id = l.id
WHERE l.code = '%s'};
sub stored_of
{
	my ($db, $code) = @_;
	return $node->safe_psql($db, sprintf($stored_sql, $code));
}

for my $db ('served', 'plain')
{
	my $shared = $db eq 'served';
	my $mode = $shared ? 'shared memory' : 'tables';

	# ---------------------------------------------------------------------
	# Run 1: one limited link, all clients at once
	# ---------------------------------------------------------------------
	my $before = stats($db);
	run_pgbench($db, 'one', { limited => 10, flush => 1 });
	my $after = stats($db);

	my ($attempts, $successes) = split /\|/, $node->safe_psql($db,
		q{SELECT count(*), count(*) FILTER (WHERE ok) FROM hits WHERE code = 'limited'});
	# demand exceeds the limit, so a lost update would show
	cmp_ok($attempts, '>', $limit * 4, "$mode: demand ($attempts resolves) exceeds max_visits");
	# served: exactly max_visits resolves got the URL; in the tables: none
	my $want_ok = $shared ? $limit : 0;
	is($successes, $want_ok,
		$shared ? "$mode: resolve() returned the URL exactly $limit times"
		: "$mode: resolve() never returned the URL of the limited link");
	# the live count agrees with the successes
	is($node->safe_psql($db, q{SELECT shorturl.visits('limited')}),
		$want_ok, "$mode: visits() is $want_ok");
	# a link the tables refuse to serve is still active (not exhausted)
	is($node->safe_psql($db, q{SELECT shorturl.link_status('limited')}),
		$shared ? 'exhausted' : 'active',
		$shared ? "$mode: the link is exhausted" : "$mode: the link is still active");
	is($node->safe_psql($db, q{SELECT shorturl.resolve('limited') IS NULL}),
		't', "$mode: a further resolve gets nothing");
	if ($shared)
	{
		# the worker flushed while clicks came in
		cmp_ok($after->{flushes} - $before->{flushes}, '>', 50,
			"$mode: flushes committed during the run: " . ($after->{flushes} - $before->{flushes}));
		cmp_ok($after->{flushed} - $before->{flushed}, '>', 0,
			"$mode: clicks written by flushes during the run: " . ($after->{flushed} - $before->{flushed}));
		is($after->{fallbacks}, 0, "$mode: no click fell back to the tables");
		# the resolves past the limit found the link exhausted: none was
		# refused for want of shared memory
		is($after->{refused}, 0, "$mode: no click was refused");
	}
	$node->safe_psql($db, 'SELECT shorturl.flush()');
	# served: the tables hold the limit, no more, and the exhaustion; in the
	# tables: no visit at all
	is(stored_of($db, 'limited'), $shared ? "$limit|t" : '0|f',
		$shared ? "$mode: after a flush the tables hold $limit visits and exhausted_at"
		: "$mode: after a flush the tables hold no visit of the limited link, and no exhausted_at");
	if ($shared)
	{
		is(stats($db)->{pending}, 0, "$mode: nothing pending in shared memory after the flush");
	}
	else
	{
		is(stats($db)->{pending}, undef, "$mode: no clicks in shared memory at all");
	}

	# ---------------------------------------------------------------------
	# Run 2: many limited links and one hot unlimited link at once
	# ---------------------------------------------------------------------
	run_pgbench($db, 'many', { multi => 5, hot => 5, flush => 1 });

	# per link: successes must be min(max_visits, attempts) where served, 0
	# in the tables; visits() must equal the successes, and link_status()
	# say exhausted exactly when the successes reached the limit
	my $per_link = q{
SELECT l.id, l.code, l.max_visits, count(h.code) AS attempts,
       count(h.code) FILTER (WHERE h.ok) AS successes,
       shorturl.visits(l.code) AS live, shorturl.link_status(l.code) AS status
FROM shorturl.links AS l LEFT JOIN hits AS h USING (code)
WHERE l.code ~ '^m[0-9]+$'
GROUP BY l.id, l.code, l.max_visits};
	my $want_successes = $shared ? 'LEAST(max_visits, attempts)' : '0';
	is($node->safe_psql($db, qq{
SELECT string_agg(format('%s: max %s, attempts %s, successes %s, visits() %s, %s',
                         code, max_visits, attempts, successes, live, status), '; ' ORDER BY code)
FROM ($per_link) AS s
WHERE successes <> $want_successes OR live <> successes
   OR status <> CASE WHEN successes = max_visits THEN 'exhausted' ELSE 'active' END}),
		'', $shared
		? "$mode: each of $multi_links limited links served min(max_visits, attempts), visits() and link_status() agree"
		: "$mode: none of $multi_links limited links was served or counted, each is still active");
	my $exhausted = $node->safe_psql($db,
		"SELECT count(*) FROM ($per_link) AS s WHERE attempts > max_visits");
	cmp_ok($exhausted, '>=', 45, "$mode: demand exceeded the limit of $exhausted links");

	my ($hot_tx, $hot_ok) = split /\|/, $node->safe_psql($db,
		q{SELECT count(*), count(*) FILTER (WHERE ok) FROM hits WHERE code = 'hot'});
	cmp_ok($hot_tx, '>', 1000, "$mode: $hot_tx resolves of the hot link");
	is($hot_ok, $hot_tx, "$mode: every resolve of the unlimited link returned its URL");
	is($node->safe_psql($db, q{SELECT shorturl.visits('hot')}),
		$hot_tx, "$mode: visits() of the hot link equals its $hot_tx transactions");

	$node->safe_psql($db, 'SELECT shorturl.flush()');
	# after a flush a link has at most one row of unfolded clicks (the
	# flush compacts shorturl.pending_visits; see src/flush.c)
	is($node->safe_psql($db,
			'SELECT count(*) FROM (SELECT link_id FROM shorturl.pending_visits GROUP BY 1 HAVING count(*) > 1) AS s'),
		'0', "$mode: after a flush no link has more than one row in pending_visits");
	# the stored count is both tables' (see stored_of)
	is($node->safe_psql($db, qq{
SELECT count(*) FROM ($per_link) AS s
JOIN shorturl.links AS l USING (id)
LEFT JOIN shorturl.visit_counts AS c ON c.link_id = s.id
WHERE coalesce(c.visits, 0)
      + coalesce((SELECT sum(p.visits) FROM shorturl.pending_visits AS p WHERE p.link_id = s.id), 0)
      <> s.successes
   OR (l.exhausted_at IS NOT NULL) <> (s.successes = l.max_visits)}),
		'0', "$mode: after a flush the stored visits and exhausted_at agree for every limited link");
	is(stored_of($db, 'hot'), "$hot_tx|f",
		"$mode: after a flush the tables hold the hot link's $hot_tx visits");
	is($node->safe_psql($db, q{
SELECT count(*) FROM shorturl.links AS l JOIN shorturl.visit_counts AS c ON c.link_id = l.id
WHERE c.visits > l.max_visits}),
		'0', "$mode: no link has more visits than its limit");
}

# ---------------------------------------------------------------------
# Counting in the tables: an open transaction holds up nobody
# ---------------------------------------------------------------------
$node->safe_psql('plain', q{
SELECT shorturl.shorten('https://example.com/x', alias => 'x');
SELECT shorturl.shorten('https://example.com/lim', alias => 'lim', max_visits => 5);
});
my $open = $node->background_psql('plain');
my $open_pid = $open->query_safe('SELECT pg_backend_pid()');
is($open->query_safe(q{BEGIN; SELECT shorturl.resolve('x');}),
	'https://example.com/x', 'an open transaction resolved x');
# it wrote its click (it has a transaction id) and is still open
is($node->safe_psql('plain', qq{
SELECT state, backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = $open_pid}),
	'idle in transaction|t', 'the transaction that counted a click of x is open');

# every pgbench client may wait 200 ms for a lock at most: a resolve that
# waited for the open transaction would fail, not just be slow
{
	local $ENV{PGOPTIONS} = '-c lock_timeout=200ms';
	my $t0 = time;
	$node->pgbench(
		'-n -c 4 -j 2 -t 25',
		0,
		[qr{processed: 100/100}],
		[qr{^$}],
		'100 resolves of x while a transaction that resolved it is open: all succeed, no lock wait',
		{ 'plain_x.sql' => "SELECT 1 / (shorturl.resolve('x') IS NOT NULL)::int;\n" },
		'plain');
	my $elapsed = time - $t0;
	# lock_timeout is the proof that nothing waited; the time is only shown
	note(sprintf('the 100 resolves took %.3f s', $elapsed));
}
is($node->safe_psql('plain', q{SELECT shorturl.visits('x')}),
	'100', 'visits() counts the 100 committed clicks, not the open one');
$open->query_safe('COMMIT');
is($node->safe_psql('plain', q{SELECT shorturl.visits('x')}),
	'101', 'after the commit visits() counts all 101');
$node->safe_psql('plain', 'SELECT shorturl.flush()');
is(stored_of('plain', 'x'), '101|f', 'after a flush the tables hold the 101 clicks');

# ---------------------------------------------------------------------
# Counting in the tables: a limited link is never served, whatever the
# transaction (none can tell beforehand whether it will commit)
# ---------------------------------------------------------------------
# a transaction of one statement: NULL, not counted
is($open->query_safe(q{SELECT shorturl.resolve('lim') IS NULL}),
	't', 'a limited link resolved in a transaction of one statement gets NULL');
# in a transaction block (committed): NULL, not counted
is($open->query_safe(q{BEGIN; SELECT shorturl.resolve('lim') IS NULL; COMMIT;}),
	't', 'a limited link resolved in a committed transaction block gets NULL');
# in a transaction block (rolled back): NULL, not counted
is($open->query_safe(q{BEGIN; SELECT shorturl.resolve('lim') IS NULL; ROLLBACK;}),
	't', 'a limited link resolved in a rolled back transaction block gets NULL');
# in a subtransaction of a one-statement transaction (a PL/pgSQL block
# with an exception handler): NULL (ASSERT fails the statement otherwise)
is($open->query_safe(q{
DO $$
BEGIN
    BEGIN
        ASSERT shorturl.resolve('lim') IS NULL, 'resolve() served lim in a subtransaction';
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
END
$$;
SELECT 'done';}),
	'done', 'a limited link resolved in a subtransaction of a one-statement transaction gets NULL');
# in a DO block that rolls its transaction back after the resolve
is($open->query_safe(q{
DO $$
BEGIN
    ASSERT shorturl.resolve('lim') IS NULL, 'resolve() served lim in a DO block';
    ROLLBACK;
END
$$;
SELECT 'done';}),
	'done', 'a limited link resolved in a DO block that rolls back gets NULL');
# rows of a COPY reach the client one by one: NULL in each
is($open->query_safe(q{COPY (SELECT shorturl.resolve('lim') IS NULL FROM generate_series(1, 3)) TO STDOUT}),
	"t\nt\nt", 'a limited link resolved in each row of a COPY gets NULL');
is($node->safe_psql('plain', q{
SELECT shorturl.visits('lim'), shorturl.link_status('lim'),
       (SELECT count(*) FROM shorturl.visit_counts AS c JOIN shorturl.links AS l ON l.id = c.link_id
        WHERE l.code = 'lim'),
       (SELECT count(*) FROM shorturl.pending_visits AS p JOIN shorturl.links AS l ON l.id = p.link_id
        WHERE l.code = 'lim')}),
	'0|active|0|0', 'none of those resolves was counted, in either table; the link is still active');
$open->quit;

$node->stop;
done_testing();
