# 009_drop_under_load.pl: DROP EXTENSION pg_shorturl CASCADE while clients
# resolve codes in a loop.  A resolve either returns the URL or NULL, or,
# once the function is gone, fails with the ordinary error of a missing
# function, 42883 "function ... does not exist".  Never XX000 "could not
# open relation with OID" (0.5 raised it when the tables went away under a
# resolve), nor any other error.  CREATE EXTENSION then works again, and
# the workers serve the new tables.
#
# The server preloads pg_shorturl and serves the database 'served' (clicks
# in shared memory, flushed every 20 ms); 'plain' counts in the tables.  In
# each database, four rounds of:
#	- 4 pgbench clients (pgbench -T 3) resolving at random 20 unlimited
#	  links and 5000 limited ones (max_visits far away, so each link's first
#	  click makes its counter in shared memory, from the stored count; in
#	  the tables a limited link is never served, so there they are NULL),
#	  each recording the outcome, URL or NULL, in a table outside the
#	  extension;
#	- DROP EXTENSION pg_shorturl CASCADE, 0.3 to 1.2 s in: every client
#	  ends at its first error, which pgbench prints and the server logs with
#	  its SQLSTATE (log_error_verbosity = verbose);
#	- CREATE EXTENSION pg_shorturl and the links again.
# The outcomes are counted per kind and printed; the worker of 'served'
# logs no error through the drops.  A session that stays connected across
# every round resolves before and after each drop: after CREATE EXTENSION
# it gets the new links' URLs, counted exactly (stale relation OIDs in its
# caches would show here).
#
# A statement caught by a drop between reading its link and counting its
# click is rare under load (microseconds), so it is also pinned: the
# dropping transaction first locks the counts table the click needs, the
# click waits for it, then the transaction drops the extension and commits
# (any DROP that reaches that table first does the same).  The resolve
# that began before the drop returns the URL or NULL, with no error (or,
# should it keep the link's table locked meanwhile, a deadlock with the
# dropper's own lock order, 40P01, which PostgreSQL resolves by failing
# either side: the resolve, or the drop, which then runs again): in
# shared memory a limited link's first click (which reads the stored
# count), in the tables an unlimited link's click (pending_visits).
#
# At the end pgbench clicks in both databases are counted exactly, and in
# 'served' its worker flushes them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

my $CLIENTS = 4;
my $LIMITED = 5000;    # limited links l1 .. l5000
my $HOT = 20;          # unlimited links c1 .. c20
my @DROP_AFTER = (0.3, 0.6, 0.9, 1.2);    # seconds into each round

my $node = ShortURL::Test::node('drop',
	"shorturl.database = 'served'",
	"shorturl.flush_interval = '20ms'",
	"shorturl.purge_interval = '1h'",
	"deadlock_timeout = '200ms'",
	'log_error_verbosity = verbose');

# links makes the extension and its links in $db; $round goes into the
# URLs, so a URL tells which incarnation of the extension served it
sub links
{
	my ($db, $round) = @_;
	$node->safe_psql($db, qq{
CREATE EXTENSION pg_shorturl;
SELECT count(shorturl.shorten('https://example.com/$round/c/' || k, alias => 'c' || k))
FROM generate_series(1, $HOT) AS k;
SELECT count(shorturl.shorten('https://example.com/$round/l/' || k, alias => 'l' || k,
                              max_visits => 1000000000))
FROM generate_series(1, $LIMITED) AS k;
});
}

for my $db ('served', 'plain')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE TABLE outcomes (round int, client int, ok boolean)');
	links($db, 0);
}
ShortURL::Test::wait_served($node, 'served') or die 'the worker does not serve "served"';
# the two counting modes under test
is($node->safe_psql('served', 'SELECT mode FROM shorturl.stats'), 'shared',
	'served counts in shared memory');
is($node->safe_psql('plain', 'SELECT mode FROM shorturl.stats'), 'sync',
	'plain counts in the tables');

# the pgbench script: a limited link or an unlimited one, the outcome kept
my $script = PostgreSQL::Test::Utils::tempdir . "/resolve.sql";
append_to_file($script, qq{\\set k random(1, $LIMITED)
\\set h random(1, $HOT)
\\set limited random(0, 1)
INSERT INTO outcomes (round, client, ok)
SELECT :round, :client_id,
       shorturl.resolve(CASE WHEN :limited = 1 THEN 'l' || :k ELSE 'c' || :h END) IS NOT NULL;
});

# errors_since returns the SQLSTATE and message of every ERROR a client
# backend logged from byte offset $from on
sub errors_since
{
	my ($from) = @_;
	return map { /\] client backend ERROR:\s+([0-9A-Z]{5}): (.*)/ ? [ $1, $2 ] : () }
	  split /\n/, ShortURL::Test::log_since($node, $from);
}

my %total;    # per database, per kind of outcome
my $log_start = -s $node->logfile;

for my $db ('served', 'plain')
{
	my $mode = $db eq 'served' ? 'shared memory' : 'tables';

	# a session that lives through every drop
	my $stayer = $node->background_psql($db, on_error_stop => 0);

	for my $round (1 .. scalar @DROP_AFTER)
	{
		my $label = "$mode, round $round";
		my $incarnation = $round - 1;

		# the staying session resolves under the current extension
		$stayer->{stderr} = '';
		is($stayer->query(q{SELECT shorturl.resolve('c1')}),
			"https://example.com/$incarnation/c/1", "$label: a long-lived session resolves c1");

		my $from = -s $node->logfile;
		my ($out, $err) = ('', '');
		my $bench = IPC::Run::start(
			[ 'pgbench', '-n', '-c', $CLIENTS, '-j', 2, '-T', 3, '-D', "round=$round",
			  '-f', $script, '-h', $node->host, '-p', $node->port, $db ],
			'>', \$out, '2>', \$err);
		usleep($DROP_AFTER[ $round - 1 ] * 1_000_000);
		my $t0 = time;
		$node->safe_psql($db, 'DROP EXTENSION pg_shorturl CASCADE');
		my $drop_secs = time - $t0;
		$bench->finish;

		# what the clients got
		my ($urls, $nulls, $clients_ok) = split /\|/, $node->safe_psql($db, qq{
SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok), count(DISTINCT client)
FROM outcomes WHERE round = $round});
		my @errors = errors_since($from);
		my %kind = (url => $urls, null => $nulls);
		$kind{ $_->[0] }++ for @errors;
		$total{$db}{$_} += $kind{$_} for keys %kind;
		my @aborted = $err =~ /client \d+ script \d+ aborted/g;
		note "$label: drop after $DROP_AFTER[$round - 1] s took "
		  . sprintf('%.3f s', $drop_secs) . '; outcomes: '
		  . join(', ', map { "$_ $kind{$_}" } sort keys %kind);

		# every client was resolving when the extension went
		is($clients_ok, $CLIENTS, "$label: all $CLIENTS clients resolved codes before the drop");
		# the clients were served (NULL comes only from a statement that
		# began before the drop and found the tables gone: no limit is near)
		cmp_ok($urls, '>', 100, "$label: $urls resolves returned the URL");
		# the clients' errors are in the log, one per aborted client
		is(scalar @errors, scalar @aborted,
			"$label: the server logged one error per aborted client (" . scalar(@aborted) . ')');
		# never "could not open relation with OID"
		is(join("\n", map { "$_->[0]: $_->[1]" } grep { $_->[0] eq 'XX000' } @errors),
			'', "$label: no client got XX000");
		unlike($err, qr/could not open relation/, "$label: pgbench saw no \"could not open relation\"");
		# only the ordinary error of a missing function
		is(join("\n", map { "$_->[0]: $_->[1]" } grep { $_->[0] ne '42883' } @errors),
			'', "$label: every other error was 42883 (function does not exist)");

		# the staying session gets the ordinary error while the extension is gone
		$stayer->{stderr} = '';
		$stayer->query(q{\set VERBOSITY verbose
SELECT shorturl.resolve('c1')});
		like($stayer->{stderr}, qr/ERROR:\s+42883:/,
			"$label: with the extension gone a long-lived session gets 42883");
		$stayer->query(q{\set VERBOSITY default});

		# CREATE EXTENSION works again, with new links
		links($db, $round);
		ShortURL::Test::wait_served($node, 'served') or die 'the worker does not serve "served"'
		  if $db eq 'served';

		# the long-lived session sees the new tables: new URL, counted once
		$stayer->{stderr} = '';
		my $v0 = $node->safe_psql($db, q{SELECT shorturl.visits('c2')});
		is($stayer->query(q{SELECT shorturl.resolve('c2')}),
			"https://example.com/$round/c/2",
			"$label: after CREATE EXTENSION the long-lived session resolves c2 to its new URL");
		is($stayer->{stderr}, '', "$label: and gets no error");
		is($node->safe_psql($db, q{SELECT shorturl.visits('c2')}), $v0 + 1,
			"$label: its click of the new link is counted once");
		# a limited link, whose first click makes its counter; in the
		# tables it is not served (a rollback could undo its count)
		is($stayer->query(q{SELECT shorturl.resolve('l7')}),
			$db eq 'served' ? "https://example.com/$round/l/7" : '',
			$db eq 'served' ? "$label: and resolves the new limited link l7"
			: "$label: and gets NULL for the new limited link l7");
		is($node->safe_psql($db, q{SELECT shorturl.visits('l7') || ' ' || shorturl.link_status('l7')}),
			$db eq 'served' ? '1 active' : '0 active',
			$db eq 'served' ? "$label: counted once, from zero" : "$label: not counted, still active");
	}
	$stayer->quit;

	note "$mode, all rounds: " . join(', ', map { "$_ $total{$db}{$_}" } sort keys %{ $total{$db} });
	# the rounds had clients caught by the drop
	cmp_ok($total{$db}{42883} // 0, '>=', $CLIENTS * @DROP_AFTER,
		"$mode: every client of every round ended with the ordinary error of a missing function");
}

# the worker left each dropped extension without an error
is(join("\n", ShortURL::Test::our_errors($node, $log_start)), '',
	'the launcher and the worker logged no error through the drops');

# ---------------------------------------------------------------------
# A resolve caught between its link and its count by a drop
# ---------------------------------------------------------------------

# caught locks $table in a transaction, starts a resolve of $code in another
# session, waits until that resolve waits for the lock, then drops the
# extension in the locking transaction and commits; returns the resolve's
# output and its errors
sub caught
{
	my ($db, $table, $code) = @_;
	my $dropper = $node->background_psql($db, on_error_stop => 0);
	my $victim = $node->background_psql($db, on_error_stop => 0);
	my $pid = $victim->query_safe('SELECT pg_backend_pid()');

	$victim->{stderr} = '';
	$victim->query_safe(q{\set VERBOSITY verbose});
	$dropper->query_safe("BEGIN; LOCK TABLE shorturl.$table IN ACCESS EXCLUSIVE MODE;");
	$victim->query_until(qr/sent\n/,
		"\\echo sent\nSELECT coalesce(shorturl.resolve('$code'), 'NULL');\n\\echo done\n");
	ShortURL::Test::wait_until($node, 'postgres',
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid")
	  or die "the resolve of $code did not wait for the lock on $table";
	# the deadlock detector may pick either side: when it picks the dropper
	# (whose wait began last), the drop rolls back, the resolve goes on, and
	# the drop runs again after it
	$dropper->{stderr} = '';
	$dropper->query('DROP EXTENSION pg_shorturl CASCADE; COMMIT;');
	my $dropper_lost = $dropper->{stderr} =~ /deadlock detected/;
	die "the drop failed: $dropper->{stderr}"
	  if $dropper->{stderr} =~ /ERROR/ && !$dropper_lost;
	my $out = $victim->query_until(qr/done\n/, '');
	$out =~ s/done\n\z//;
	chomp $out;
	my $err = $victim->{stderr};
	if ($dropper_lost)
	{
		$dropper->{stderr} = '';
		$dropper->query_safe('DROP EXTENSION pg_shorturl CASCADE');
	}
	$victim->quit;
	$dropper->quit;
	return ($out, $err);
}

for my $case (
	[ 'served', 'visit_counts', 1, 'shared memory, a limited link\'s first click' ],
	[ 'plain', 'pending_visits', 0, 'tables, an unlimited link' ])
{
	my ($db, $table, $limited, $label) = @$case;
	my $url = "https://example.com/caught/$db/$table";
	$node->safe_psql($db, qq{
SELECT shorturl.shorten('$url', alias => 'caught', max_visits => } . ($limited ? 10 : 'NULL') . ')');
	my ($out, $err) = caught($db, $table, 'caught');
	note "$label, caught by a drop: output '$out', errors '$err'";
	# the URL or NULL without an error; or, for a fix that keeps the link's
	# table locked to the end of the resolve's transaction, a deadlock with
	# the lock order the dropper chose (40P01), and no other error
	my @codes = $err =~ /ERROR:\s+([0-9A-Z]{5}):/g;
	ok(@codes ? (join(',', @codes) eq '40P01') : ($out =~ /^(?:\Q$url\E|NULL)$/),
		"$label: a resolve caught by the drop returns the URL or NULL, with no error")
	  or diag("output '$out', errors '$err'");
	links($db, "after-$table");
	ShortURL::Test::wait_served($node, 'served') or die 'the worker does not serve "served"'
	  if $db eq 'served';
}

# ---------------------------------------------------------------------
# The workers keep serving the last incarnation
# ---------------------------------------------------------------------
ShortURL::Test::wait_served($node, 'served') or die 'the worker does not serve "served"';
my $flushes = $node->safe_psql('served', 'SELECT flushes FROM shorturl.stats');
for my $db ('served', 'plain')
{
	# (in the tables only the unlimited link is served)
	my @codes = $db eq 'served' ? ('c3', 'l3') : ('c3');
	my $before = ShortURL::Test::live($node, $db, @codes);
	my $n = ShortURL::Test::clicks($node, $db, $CLIENTS, 250, @codes);
	(my $after = $before) =~ s/=(\d+)/'=' . ($1 + $n)/ge;
	is(ShortURL::Test::live($node, $db, @codes), $after,
		"$db: $n more clicks of @codes are counted exactly");
}
# in served, the worker flushes them into the tables on its own
ok(ShortURL::Test::wait_until($node, 'served',
		qq{SELECT flushes > $flushes AND pending_visits = 0 FROM shorturl.stats}),
	'served: the worker flushes the new tables');
is(ShortURL::Test::stored($node, 'served', 'c3'), ShortURL::Test::live($node, 'served', 'c3'),
	'served: the tables hold the live count of c3');
is($node->safe_psql('served', q{SELECT mode FROM shorturl.stats}), 'shared',
	'served still counts in shared memory');

$node->stop;
done_testing();
