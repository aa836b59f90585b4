# 005_durability.pl: clicks counted in shared memory survive a clean restart
# exactly, are lost (never doubled) after an immediate stop or a crash, stay
# exact under a hot concurrent load, and stay exact when the counter table
# is full.  Each case measures visits with numbers.
#
# The server preloads pg_shorturl and serves the database postgres.  Clicks
# come from pgbench clients whose script fails (division by zero) if
# resolve() returns NULL, so "processed N/N" means N counted visits.
#
# - restart: N concurrent clicks, pg_ctl restart -m fast, visits() and the
#   table (after a flush) read exactly N;
# - save file: with flush_interval = 1h and every flush failing (a trigger
#   on shorturl.links raises), the worker's exit flush cannot write, so the
#   postmaster saves the clicks in pg_stat/pg_shorturl_counters.stat and the
#   next start restores them ("restored ... unflushed visits"): exactly N,
#   and max_visits holds against the restored count;
# - immediate stop and a backend killed with SIGKILL: flushed <= visits <=
#   flushed + clicked since, every link still there, and after the crash
#   the worker serves and flushes again;
# - hot link: 8 clients x 2500 clicks with flushes every 50 ms during the
#   run, exactly 20000;
# - full table: max_pending_links = 100 and 300 distinct links clicked:
#   clicks fall back to synchronous counting, each counted exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('durability');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_shorturl'
shorturl.flush_interval = '100ms'
restart_after_crash = on
log_line_prefix = '%m [%p] %b '
});
$node->start;

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

# query runs SQL in postgres and returns its output
sub query { return $node->safe_psql('postgres', $_[0]); }

# wait_until polls a query until it returns t, for at most $timeout
# seconds; returns whether it did.  Shorter than poll_query_until's 180 s,
# so a failing case fails fast.
sub wait_until
{
	my ($sql, $timeout) = @_;
	my $deadline = time + ($timeout // 10);

	while (time < $deadline)
	{
		my ($rc, $out) = $node->psql('postgres', $sql);
		return 1 if $rc == 0 && $out eq 't';
		usleep(50_000);
	}
	return 0;
}

# wait_worker waits until the worker serves postgres (clicks go to shared memory)
sub wait_worker
{
	return wait_until(
		"SELECT worker_pid IS NOT NULL AND mode = 'shared' FROM shorturl.stats",
		$_[0] // 10);
}

# set_flush_interval changes the SIGHUP setting and waits until the worker
# has taken it (its flush count stops moving for a long interval)
sub set_flush_interval
{
	my ($value) = @_;

	query("ALTER SYSTEM SET shorturl.flush_interval = '$value'; SELECT pg_reload_conf()");
	usleep(300_000);
	return if $value !~ /h$/;
	my $before = query('SELECT flushes FROM shorturl.stats');
	for (1 .. 50)
	{
		usleep(300_000);
		my $now = query('SELECT flushes FROM shorturl.stats');
		return if $now == $before;
		$before = $now;
	}
	die "the worker kept flushing after flush_interval = $value";
}

# clicks runs $clients pgbench clients of $xacts transactions each, every
# transaction resolving each of @codes once; dies unless all succeed
my $bench_no = 0;

sub clicks
{
	my ($clients, $xacts, @codes) = @_;
	my $n = $clients * $xacts;
	my $script = join '',
	  map { "SELECT 1 / (shorturl.resolve('$_') IS NOT NULL)::int;\n" } @codes;

	$bench_no++;
	$node->pgbench(
		"--no-vacuum --client=$clients --jobs=2 --transactions=$xacts",
		0,
		[qr{actually processed: $n/$n}],
		[],
		"pgbench $bench_no: $clients clients x $xacts clicks of @codes, all resolved",
		{ "005_clicks_$bench_no.sql" => $script },
		'postgres');
	return $n;
}

# live returns "code=visits" for codes, in order, from visits()
sub live
{
	my $list = join ',', map { "'$_'" } @_;
	return query(
		"SELECT string_agg(c || '=' || shorturl.visits(c), ' ' ORDER BY c) FROM unnest(ARRAY[$list]) c");
}

# table returns "code=visits" for codes from shorturl.links itself
sub table
{
	my $list = join ',', map { "'$_'" } @_;
	return query(
		"SELECT string_agg(code || '=' || visits, ' ' ORDER BY code) FROM shorturl.links WHERE code IN ($list)");
}

sub expect { my $n = shift; return join ' ', map { "$_=$n" } sort @_; }

# ---------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------
query('CREATE EXTENSION pg_shorturl');
ok(wait_worker(), 'the worker serves postgres: stats.mode is shared');

my @restart = qw(r1 r2 r3);
my @long    = qw(s1 s2 s3);
my @saved   = qw(f1 f2 f3);
my @all     = (@restart, @long, @saved, qw(m1 i1 k1 hot));
query(join ";\n",
	(map { "SELECT shorturl.shorten('https://example.com/$_', alias => '$_')" }
	  grep { $_ ne 'm1' } @all),
	"SELECT shorturl.shorten('https://example.com/m1', alias => 'm1', max_visits => 5)");
my $links = scalar @all;

# ---------------------------------------------------------------------
# Restart: N concurrent clicks, flushes under way, then pg_ctl restart -m fast
# ---------------------------------------------------------------------
my $n = clicks(4, 500, @restart);
is(live(@restart), expect($n, @restart), "visits() counts the $n clicks of each link before the restart");

$node->restart;
ok(wait_worker(), 'the worker serves again after the restart');
is(live(@restart), expect($n, @restart), "after a fast restart visits() is exactly $n for each link");
query('SELECT shorturl.flush()');
is(table(@restart), expect($n, @restart), "after a flush the table holds exactly $n for each link");

# ---------------------------------------------------------------------
# Long flush interval: nothing periodic writes the clicks before the restart
# ---------------------------------------------------------------------
set_flush_interval('1h');
$n = clicks(4, 500, @long);
is(table(@long), expect(0, @long), 'with flush_interval = 1h no click reached the table before the restart');
is(query('SELECT pending_visits FROM shorturl.stats'), 3 * $n, "stats.pending_visits holds the ${\ (3 * $n)} clicks");
is(live(@long), expect($n, @long), "visits() counts them: $n each");

$node->restart;
ok(wait_worker(), 'the worker serves again after the restart');
is(live(@long), expect($n, @long), "after a fast restart visits() is exactly $n for each link");
query('SELECT shorturl.flush()');
is(table(@long), expect($n, @long), "after a flush the table holds exactly $n for each link");

# ---------------------------------------------------------------------
# Save file: every flush fails, so only the file carries the clicks across
# ---------------------------------------------------------------------
query(q{CREATE FUNCTION public.refuse_flush() RETURNS trigger LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'flush refused by the test'; END$$;
	CREATE TRIGGER refuse_flush BEFORE UPDATE ON shorturl.links
	FOR EACH ROW EXECUTE FUNCTION public.refuse_flush()});
$n = clicks(4, 500, @saved);
is(query("SELECT count(shorturl.resolve('m1')) FROM generate_series(1, 3)"), 3, 'm1 (max_visits 5) resolved 3 times');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT shorturl.flush()');
like($err, qr/flush refused by the test/, 'a flush fails while the trigger is there');
my $pending = 3 * $n + 3;
is(query('SELECT pending_visits FROM shorturl.stats'), $pending, "the failed flush kept the $pending clicks pending");

my $offset = -s $node->logfile;
$node->restart;
ok($node->log_contains(qr/pg_shorturl worker ERROR:  flush refused by the test/, $offset),
	"the worker's exit flush failed too: the clicks were left to the save file");
ok($node->log_contains(qr/pg_shorturl: restored $pending unflushed visits saved at shutdown/, $offset),
	"the postmaster logged: restored $pending unflushed visits saved at shutdown");
ok(!-e $node->data_dir . '/pg_stat/pg_shorturl_counters.stat', 'the save file is removed once read');
query('DROP TRIGGER refuse_flush ON shorturl.links');
ok(wait_worker(), 'the worker serves again after the restart');
is(live(@saved), expect($n, @saved), "restored: visits() is exactly $n for each link");
is(query("SELECT shorturl.visits('m1')"), 3, 'restored: m1 has 3 visits');
is(query("SELECT count(shorturl.resolve('m1')) FROM generate_series(1, 5)"),
	2, 'm1 (max_visits 5, 3 restored) resolves only 2 more times of 5');
query('SELECT shorturl.flush()');
is(query('SELECT flushed_visits FROM shorturl.stats'), $pending + 2,
	"flushes since the start wrote the $pending restored clicks and the 2 new ones");
is(table(@saved), expect($n, @saved), "the table holds exactly $n for each link");
is(query("SELECT visits || ' ' || (exhausted_at IS NOT NULL) FROM shorturl.links WHERE code = 'm1'"),
	'5 true', 'm1 is at 5 visits, exhausted, never above max_visits');

# ---------------------------------------------------------------------
# Immediate stop: clicks since the last flush may be lost, never doubled
# ---------------------------------------------------------------------
my $flushed = clicks(2, 250, 'i1');
is(query('SELECT shorturl.flush()'), $flushed, "flush() wrote the first $flushed clicks of i1");
my $after = clicks(2, 250, 'i1');
is(query("SELECT shorturl.visits('i1')"), $flushed + $after, "visits() counts all ${\ ($flushed + $after)} clicks");

$offset = -s $node->logfile;
$node->stop('immediate');
$node->start;
ok(wait_worker(), 'the worker serves again after an immediate stop');
my $v = query("SELECT shorturl.visits('i1')");
note "immediate stop: flushed $flushed, clicked after $after, visits after restart $v";
cmp_ok($v, '>=', $flushed, "immediate stop: visits ($v) >= the $flushed flushed");
cmp_ok($v, '<=', $flushed + $after, "immediate stop: visits ($v) <= the ${\ ($flushed + $after)} clicked (none doubled)");
is($v, $flushed, 'flush_interval = 1h: the unflushed clicks are the ones lost');
ok($node->log_contains(qr/pg_shorturl: discarding unflushed visits saved by an unclean shutdown/, $offset),
	'the postmaster discarded what the immediate stop saved');
ok(!$node->log_contains(qr/restored \d+ unflushed visits/, $offset),
	'nothing was restored from a save file after the immediate stop');
is(query('SELECT count(*) FROM shorturl.links'), $links, "all $links links are still there");

# ---------------------------------------------------------------------
# Crash: a backend killed with SIGKILL makes the postmaster reinitialize
# ---------------------------------------------------------------------
$flushed = clicks(2, 250, 'k1');
is(query('SELECT shorturl.flush()'), $flushed, "flush() wrote the first $flushed clicks of k1");
$after = clicks(2, 250, 'k1');

$offset = -s $node->logfile;
my $victim = $node->background_psql('postgres');
my $victim_pid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $victim_pid;
eval { $victim->quit; };
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
ok(wait_until('SELECT NOT pg_is_in_recovery()', 30), 'the server is back after the crash');
$v = query("SELECT shorturl.visits('k1')");
note "crash: flushed $flushed, clicked after $after, visits after restart $v";
cmp_ok($v, '>=', $flushed, "crash: visits ($v) >= the $flushed flushed");
cmp_ok($v, '<=', $flushed + $after, "crash: visits ($v) <= the ${\ ($flushed + $after)} clicked (none doubled)");
is(query('SELECT count(*) FROM shorturl.links'), $links, "all $links links are still there after the crash");

# after the crash the worker must serve the database again
ok(wait_worker(10), 'after the crash the worker serves postgres again (stats.mode shared)');
note 'after the crash: '
  . query("SELECT mode || ' worker_pid=' || coalesce(worker_pid::text, 'null') FROM shorturl.stats")
  . '; ' . query(q{SELECT string_agg(backend_type || ' ' || pid, ', ' ORDER BY pid)
	FROM pg_stat_activity WHERE backend_type LIKE 'pg_shorturl%'});
is(query(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_shorturl worker'}),
	1, 'after the crash exactly one worker runs');
set_flush_interval('100ms');
my $flushes = query('SELECT flushes FROM shorturl.stats');
usleep(1_000_000);
cmp_ok(query('SELECT flushes FROM shorturl.stats'), '>', $flushes, 'after the crash the worker flushes again');

# a clean restart, so what follows does not depend on the crash above
$node->restart;
ok(wait_worker(), 'the worker serves again after the restart');

# ---------------------------------------------------------------------
# Hot link: 8 clients, thousands of clicks, flushes every 50 ms meanwhile
# ---------------------------------------------------------------------
set_flush_interval('50ms');
my ($flushes0, $flushed0) = split /\|/, query('SELECT flushes, flushed_visits FROM shorturl.stats');
my $t0 = time;
$n = clicks(8, 2500, 'hot');
my $secs = time - $t0;
my ($flushes1) = split /\|/, query('SELECT flushes, flushed_visits FROM shorturl.stats');
note sprintf('hot link: %d clicks in %.1f s, %d flushes meanwhile', $n, $secs, $flushes1 - $flushes0);
cmp_ok($flushes1 - $flushes0, '>=', 5, 'the worker flushed during the run');
is(query("SELECT shorturl.visits('hot')"), $n, "visits('hot') is exactly $n");
query('SELECT shorturl.flush()');
is(table('hot'), "hot=$n", "after a flush the table holds exactly $n");
is(query('SELECT flushed_visits FROM shorturl.stats') - $flushed0, $n,
	"stats.flushed_visits grew by exactly $n");

# ---------------------------------------------------------------------
# Full table: 300 distinct links against max_pending_links = 100
# ---------------------------------------------------------------------
$node->append_conf('postgresql.conf', 'shorturl.max_pending_links = 100');
$node->restart;
ok(wait_worker(), 'the worker serves again after the restart');
set_flush_interval('1h');
is(query('SELECT max_pending_links FROM shorturl.stats'), 100, 'stats.max_pending_links is 100');
query("INSERT INTO shorturl.links (code, url) SELECT 'p' || g, 'https://example.com/p' || g FROM generate_series(1, 300) g");
is(query("SELECT count(shorturl.resolve('p' || g)) FROM generate_series(1, 300) g"),
	300, 'one transaction resolves 300 distinct links');
is(query("SELECT count(shorturl.resolve('p' || g)) FROM generate_series(1, 300) g"),
	300, 'and resolves them all again');
my ($fallbacks, $pending_links) = split /\|/, query('SELECT sync_fallbacks, pending_links FROM shorturl.stats');
note "full table: sync_fallbacks $fallbacks, pending_links $pending_links";
cmp_ok($fallbacks, '>', 0, 'the table was full: stats.sync_fallbacks > 0');
cmp_ok($pending_links, '<=', 100, 'shared memory holds at most max_pending_links links');
is(query("SELECT count(*) FROM generate_series(1, 300) g WHERE shorturl.visits('p' || g) = 2"),
	300, 'visits() is exactly 2 for each of the 300 links');
query('SELECT shorturl.flush()');
is(query("SELECT count(*) || ' ' || sum(visits) FROM shorturl.links WHERE code LIKE 'p%' AND visits = 2"),
	'300 600', 'after a flush the table holds exactly 2 for each link, 600 in all');

$node->stop;
done_testing();
