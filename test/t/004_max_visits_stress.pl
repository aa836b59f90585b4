# 004_max_visits_stress.pl: max_visits is exact under concurrency.  A link
# with max_visits = N is returned exactly min(N, attempts) times by
# shorturl.resolve() however many sessions resolve it at once, and visits()
# of an unlimited link equals the number of resolves exactly.
#
# pgbench drives 8 clients (2 threads, 4000 transactions a run) through
# custom scripts; every transaction resolves a code and records in an
# unlogged table whether it got the URL, so successes are counted exactly,
# not inferred from visits().  Demand exceeds the limits, so a lost update
# shows as a success too many.  Each run is made twice:
#	- in the database the worker serves: clicks are counted in shared memory,
#	  and flushes happen mid-run, from the worker (every 20 ms) and from
#	  shorturl.flush() in one pgbench transaction in eleven;
#	- in another database: each click is a synchronous UPDATE of the row.
# Run 1 hammers one link (max_visits 500, about 3600 attempts).  Run 2
# spreads clicks over 50 limited links (max_visits 1..20, about 36 attempts
# each) and one unlimited hot link.  Links idle between two flushes lose
# their shared-memory counter and get a new one at their next click, so run 2
# also exercises making counters while flushes run.  After each run: successes, visits(), link_status(), and, after a
# final flush, the table's visits and exhausted_at.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients = 8;
my $tx_per_client = 500;
my $transactions = $clients * $tx_per_client;
my $limit = 500;        # max_visits of the link of run 1
my $multi_links = 50;   # limited links of run 2, m1 .. m50

my $node = PostgreSQL::Test::Cluster->new('stress');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shorturl'
shorturl.database = 'served'
shorturl.flush_interval = '20ms'
shorturl.purge_interval = '1h'
});
$node->start;

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
$node->poll_query_until('served',
	"SELECT mode = 'shared' AND worker_pid IS NOT NULL FROM shorturl.stats")
  or die 'the worker does not serve the database "served"';
is($node->safe_psql('plain', 'SELECT mode FROM shorturl.stats'),
	'sync', 'the other database counts synchronously');

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
		'SELECT flushes, flushed_visits, sync_fallbacks, pending_visits FROM shorturl.stats');
	return { flushes => $v[0], flushed => $v[1], fallbacks => $v[2], pending => $v[3] };
}

for my $db ('served', 'plain')
{
	my $shared = $db eq 'served';
	my $mode = $shared ? 'shared memory' : 'sync UPDATE';

	# ---------------------------------------------------------------------
	# Run 1: one limited link, all clients at once
	# ---------------------------------------------------------------------
	my $before = stats($db);
	run_pgbench($db, 'one', { limited => 10, flush => 1 });
	my $after = stats($db);

	my ($attempts, $successes) = split /\|/, $node->safe_psql($db,
		q{SELECT count(*), count(*) FILTER (WHERE ok) FROM hits WHERE code = 'limited'});
	cmp_ok($attempts, '>', $limit * 4, "$mode: demand ($attempts resolves) exceeds max_visits");
	is($successes, $limit, "$mode: resolve() returned the URL exactly $limit times");
	is($node->safe_psql($db, q{SELECT shorturl.visits('limited')}),
		$limit, "$mode: visits() is $limit");
	is($node->safe_psql($db, q{SELECT shorturl.link_status('limited')}),
		'exhausted', "$mode: the link is exhausted");
	is($node->safe_psql($db, q{SELECT shorturl.resolve('limited') IS NULL}),
		't', "$mode: a further resolve gets nothing");
	if ($shared)
	{
		cmp_ok($after->{flushes} - $before->{flushes}, '>', 50,
			"$mode: flushes committed during the run: " . ($after->{flushes} - $before->{flushes}));
		cmp_ok($after->{flushed} - $before->{flushed}, '>', 0,
			"$mode: clicks written by flushes during the run: " . ($after->{flushed} - $before->{flushed}));
		is($after->{fallbacks}, 0, "$mode: no click fell back to a synchronous UPDATE");
	}
	$node->safe_psql($db, 'SELECT shorturl.flush()');
	is($node->safe_psql($db,
			q{SELECT visits, exhausted_at IS NOT NULL FROM shorturl.links WHERE code = 'limited'}),
		"$limit|t", "$mode: after a flush the table holds $limit visits and exhausted_at");
	is(stats($db)->{pending}, 0, "$mode: nothing pending after the flush");

	# ---------------------------------------------------------------------
	# Run 2: many limited links and one hot unlimited link at once
	# ---------------------------------------------------------------------
	run_pgbench($db, 'many', { multi => 5, hot => 5, flush => 1 });

	# per link: successes must be min(max_visits, attempts), and visits()
	# must equal the successes
	my $per_link = q{
SELECT l.code, l.max_visits, count(h.code) AS attempts,
       count(h.code) FILTER (WHERE h.ok) AS successes,
       shorturl.visits(l.code) AS live
FROM shorturl.links AS l LEFT JOIN hits AS h USING (code)
WHERE l.code ~ '^m[0-9]+$'
GROUP BY l.code, l.max_visits};
	is($node->safe_psql($db, qq{
SELECT string_agg(format('%s: max %s, attempts %s, successes %s, visits() %s',
                         code, max_visits, attempts, successes, live), '; ' ORDER BY code)
FROM ($per_link) AS s
WHERE successes <> LEAST(max_visits, attempts) OR live <> successes}),
		'', "$mode: each of $multi_links limited links served min(max_visits, attempts), visits() agrees");
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
	is($node->safe_psql($db, qq{
SELECT count(*) FROM shorturl.links AS l JOIN ($per_link) AS s USING (code)
WHERE l.visits <> s.successes
   OR (l.exhausted_at IS NOT NULL) <> (s.successes = l.max_visits)}),
		'0', "$mode: after a flush the table's visits and exhausted_at agree for every limited link");
	is($node->safe_psql($db, q{SELECT visits FROM shorturl.links WHERE code = 'hot'}),
		$hot_tx, "$mode: after a flush the table holds the hot link's $hot_tx visits");
	is($node->safe_psql($db,
			q{SELECT count(*) FROM shorturl.links WHERE max_visits IS NOT NULL AND visits > max_visits}),
		'0', "$mode: no link has more visits than its limit");
}

$node->stop;
done_testing();
