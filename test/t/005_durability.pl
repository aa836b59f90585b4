# 005_durability.pl: clicks counted in shared memory survive a clean restart
# exactly, are lost (never doubled) after an immediate stop or a crash, stay
# exact under a hot concurrent load and when the counter table is full, and
# a crash under load loses no more than a flush interval's worth of clicks.
# Each case measures visits with numbers.
#
# The server preloads pg_shorturl and serves the database postgres.  Clicks
# come from pgbench clients whose script fails (division by zero) if
# resolve() returns NULL, so "processed N/N" means N served visits.
#
# - restart: N concurrent clicks with flushes under way, pg_ctl restart -m
#   fast, visits() and the tables (after a flush) read exactly N;
# - long interval: with flush_interval = 1h nothing reaches the tables
#   before the restart; the postmaster saves the clicks and the next start
#   restores them: exactly N;
# - failing flushes: a trigger on shorturl.visit_counts makes every flush
#   fail, so only the save file carries the clicks across: exactly N, and
#   max_visits holds against the restored count;
# - immediate stop and a backend killed with SIGKILL: flushed <= visits <=
#   flushed + clicked since, nothing restored, and after the crash the
#   worker serves and flushes again, and a clean restart saves and
#   restores again;
# - hot link: 8 clients x 2500 clicks with flushes every 50 ms during the
#   run, exactly 20000;
# - crash under load: 150,000 links clicked uniformly by pgbench with
#   flush_interval = 1s, the worker killed with SIGKILL mid-run: the clicks
#   lost are >= 0 (none doubled) and at most what the rate makes of a flush
#   interval plus the longest flush seen (x 1.5); the figures are printed;
# - full table: max_pending_links = 1000 and 3000 distinct links clicked
#   concurrently: clicks wait for room (stats.room_waits > 0) and each is
#   counted exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use List::Util qw(max);
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

# The crash under load: links, clients and the rate pgbench holds (clicks
# per second), within what this two-core box serves with the worker
# flushing beside it
my $LOAD_LINKS   = 150_000;
my $LOAD_CLIENTS = 4;
my $LOAD_RATE    = 20_000;

# seconds of load before the worker is killed: a dozen flushes
my $LOAD_SECS = 12;

# slack of the loss bound: clicks served between the kill and the moment
# the postmaster has stopped every backend (tens of ms at LOAD_RATE)
my $LOSS_SLACK = 1000;

my $node = ShortURL::Test::node('durability',
	"shorturl.flush_interval = '100ms'",
	"shorturl.purge_interval = '1h'",
	'restart_after_crash = on');

# query runs SQL in postgres and returns its output
sub query { return $node->safe_psql('postgres', $_[0]); }

sub clicks   { return ShortURL::Test::clicks($node, 'postgres', @_); }
sub live     { return ShortURL::Test::live($node, 'postgres', @_); }
sub stored   { return ShortURL::Test::stored($node, 'postgres', @_); }
sub stats    { return ShortURL::Test::stats($node, 'postgres', @_); }
sub served   { return ShortURL::Test::wait_served($node, 'postgres', @_); }
sub interval { return ShortURL::Test::set_flush_interval($node, 'postgres', @_); }
sub expect   { return ShortURL::Test::expect(@_); }

# restored returns the save-file lines of the log since an offset
sub restored { return join "\n", ShortURL::Test::restore_lines($node, $_[0]); }

# ---------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------
query('CREATE EXTENSION pg_shorturl');
ok(served(), 'the worker serves postgres: stats.mode is shared');

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
# proves visits() counts flushed and unflushed clicks alike before the restart
is(live(@restart), expect($n, @restart), "visits() counts the $n clicks of each link before the restart");

$node->restart;
ok(served(), 'the worker serves again after the restart');
# proves a fast restart neither loses nor repeats a click
is(live(@restart), expect($n, @restart), "after a fast restart visits() is exactly $n for each link");
query('SELECT shorturl.flush()');
# proves the tables, not only visits(), hold each click once
is(stored(@restart), expect($n, @restart), "after a flush the tables hold exactly $n for each link");

# ---------------------------------------------------------------------
# Long interval: nothing periodic writes the clicks before the restart
# ---------------------------------------------------------------------
interval('1h');
$n = clicks(4, 500, @long);
# proves the clicks are still only in shared memory, so the restart must carry them
is(stored(@long), expect(0, @long), 'with flush_interval = 1h no click reached the tables before the restart');
is(stats('pending_visits'), 3 * $n, "stats.pending_visits holds the ${\ (3 * $n)} clicks");

my $offset = ShortURL::Test::log_offset($node);
$node->restart;
# proves the postmaster saved and restored exactly the pending clicks, once
is(restored($offset), 'pg_shorturl: restored ' . 3 * $n . ' unflushed visits saved at shutdown',
	'one log line: restored ' . 3 * $n . ' unflushed visits');
ok(!-e ShortURL::Test::save_file($node), 'the save file is gone once read');
ok(served(), 'the worker serves again after the restart');
# proves the restored clicks count once in visits() and, after a flush, in the tables
is(live(@long), expect($n, @long), "after the restart visits() is exactly $n for each link");
query('SELECT shorturl.flush()');
is(stored(@long), expect($n, @long), "after a flush the tables hold exactly $n for each link");

# ---------------------------------------------------------------------
# Failing flushes: only the save file carries the clicks across
# ---------------------------------------------------------------------
interval('100ms');
query(q{CREATE FUNCTION public.refuse_flush() RETURNS trigger LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'flush refused by the test'; END$$;
	CREATE TRIGGER refuse_flush BEFORE INSERT OR UPDATE ON shorturl.visit_counts
	FOR EACH ROW EXECUTE FUNCTION public.refuse_flush()});
$n = clicks(4, 500, @saved);
is(query("SELECT count(shorturl.resolve('m1')) FROM generate_series(1, 3)"), 3, 'm1 (max_visits 5) resolved 3 times');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT shorturl.flush()');
# proves the trigger really makes a flush fail
like($err, qr/flush refused by the test/, 'a flush fails while the trigger is there');
# proves the worker's periodic flushes fail too (it keeps trying every 100 ms)
ok(ShortURL::Test::wait_until($node, 'postgres',
		"SELECT last_error = 'flush refused by the test' FROM shorturl.stats"),
	"the worker's flushes fail: stats.last_error is the trigger's message");
my $pending = 3 * $n + 3;
is(stats('pending_visits'), $pending, "the failed flushes kept the $pending clicks pending");
is(stored(@saved, 'm1'), expect(0, @saved, 'm1'), 'no click of these links reached the tables');

$offset = ShortURL::Test::log_offset($node);
$node->restart;
# proves the save file, the only carrier here, restored every click once
is(restored($offset), "pg_shorturl: restored $pending unflushed visits saved at shutdown",
	"one log line: restored $pending unflushed visits");
ok(!-e ShortURL::Test::save_file($node), 'the save file is removed once read');
query('DROP TRIGGER refuse_flush ON shorturl.visit_counts');
ok(served(), 'the worker serves again after the restart');
is(live(@saved), expect($n, @saved), "restored: visits() is exactly $n for each link");
is(query("SELECT shorturl.visits('m1')"), 3, 'restored: m1 has 3 visits');
# proves max_visits counts the restored visits: 5 - 3 = 2 more, not 5
is(query("SELECT count(shorturl.resolve('m1')) FROM generate_series(1, 5)"),
	2, 'm1 (max_visits 5, 3 restored) resolves only 2 more times of 5');
query('SELECT shorturl.flush()');
is(stats('flushed_visits'), $pending + 2,
	"flushes since the start wrote the $pending restored clicks and the 2 new ones");
is(stored(@saved), expect($n, @saved), "the tables hold exactly $n for each link");
is(query('SELECT ' . ShortURL::Test::stored_expr('l') . q{ || ' ' || (l.exhausted_at IS NOT NULL)
	FROM shorturl.links l WHERE l.code = 'm1'}),
	'5 true', 'm1 is at 5 visits, exhausted, never above max_visits');

# ---------------------------------------------------------------------
# Immediate stop: clicks since the last flush may be lost, never doubled
# ---------------------------------------------------------------------
interval('1h');
my $flushed = clicks(2, 250, 'i1');
is(query('SELECT shorturl.flush()'), $flushed, "flush() wrote the first $flushed clicks of i1");
my $after = clicks(2, 250, 'i1');
is(query("SELECT shorturl.visits('i1')"), $flushed + $after, "visits() counts all ${\ ($flushed + $after)} clicks");

$offset = ShortURL::Test::log_offset($node);
$node->stop('immediate');
# proves the postmaster refuses to save what an unclean stop left in memory
ok($node->log_contains(qr/pg_shorturl: not saving unflushed visits: the server did not shut down cleanly/, $offset),
	'the postmaster did not save the clicks of an immediate stop');
ok(!-e ShortURL::Test::save_file($node), 'no save file after an immediate stop');
$node->start;
ok(served(), 'the worker serves again after an immediate stop');
my $v = query("SELECT shorturl.visits('i1')");
note "immediate stop: flushed $flushed, clicked after $after, visits after restart $v";
cmp_ok($v, '>=', $flushed, "immediate stop: visits ($v) >= the $flushed flushed");
cmp_ok($v, '<=', $flushed + $after, "immediate stop: visits ($v) <= the ${\ ($flushed + $after)} clicked (none doubled)");
# proves with no flush in between exactly the unflushed clicks are lost
is($v, $flushed, 'flush_interval = 1h: the unflushed clicks are the ones lost');
is(restored($offset), '', 'nothing was restored after the immediate stop');
is(query('SELECT count(*) FROM shorturl.links'), $links, "all $links links are still there");

# ---------------------------------------------------------------------
# Crash: a backend killed with SIGKILL makes the postmaster reinitialize
# ---------------------------------------------------------------------
$flushed = clicks(2, 250, 'k1');
is(query('SELECT shorturl.flush()'), $flushed, "flush() wrote the first $flushed clicks of k1");
$after = clicks(2, 250, 'k1');

$offset = ShortURL::Test::log_offset($node);
my $victim     = $node->background_psql('postgres');
my $victim_pid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $victim_pid;
eval { $victim->quit; };
ok(ShortURL::Test::wait_crash_recovered($node, 'postgres', $offset), 'the server is back after the crash');
$v = query("SELECT shorturl.visits('k1')");
note "crash: flushed $flushed, clicked after $after, visits after restart $v";
cmp_ok($v, '>=', $flushed, "crash: visits ($v) >= the $flushed flushed");
cmp_ok($v, '<=', $flushed + $after, "crash: visits ($v) <= the ${\ ($flushed + $after)} clicked (none doubled)");
is($v, $flushed, 'flush_interval = 1h: the unflushed clicks are the ones lost');
# proves a crash neither writes nor reads a save file
is(restored($offset), '', 'nothing was restored after the crash');
is(query('SELECT count(*) FROM shorturl.links'), $links, "all $links links are still there after the crash");

# proves the launcher starts the worker again after the reinitialization
ok(served(), 'after the crash the worker serves postgres again (stats.mode shared)');
is(query(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_shorturl worker'}),
	1, 'after the crash exactly one worker runs');
interval('100ms');
my $flushes = stats('flushes');
usleep(1_000_000);
cmp_ok(stats('flushes'), '>', $flushes, 'after the crash the worker flushes again');

# proves the reinitialized postmaster still saves at a clean stop: a clean
# restart after the crash carries the clicks pending since exactly
interval('1h');
$after = clicks(2, 250, 'k1');
$offset = ShortURL::Test::log_offset($node);
$node->restart;
is(restored($offset), "pg_shorturl: restored $after unflushed visits saved at shutdown",
	"a clean restart after the crash restores the $after clicks pending since");
ok(served(), 'the worker serves again after the restart');
is(query("SELECT shorturl.visits('k1')"), $flushed + $after,
	'k1 has exactly ' . ($flushed + $after) . ' visits: the flushed ones and the restored ones');

# ---------------------------------------------------------------------
# Hot link: 8 clients, thousands of clicks, flushes every 50 ms meanwhile
# ---------------------------------------------------------------------
interval('50ms');
my ($flushes0, $flushed0) = split /\|/, stats('flushes, flushed_visits');
my $t0 = time;
$n = clicks(8, 2500, 'hot');
my $secs = time - $t0;
my $flushes1 = stats('flushes');
note sprintf('hot link: %d clicks in %.1f s, %d flushes meanwhile', $n, $secs, $flushes1 - $flushes0);
# proves the flushes really overlapped the clicks
cmp_ok($flushes1 - $flushes0, '>=', 5, 'the worker flushed during the run');
is(query("SELECT shorturl.visits('hot')"), $n, "visits('hot') is exactly $n");
query('SELECT shorturl.flush()');
is(stored('hot'), "hot=$n", "after a flush the tables hold exactly $n");
is(stats('flushed_visits') - $flushed0, $n, "stats.flushed_visits grew by exactly $n");

# ---------------------------------------------------------------------
# Crash under load: how many clicks a crash loses, measured
# ---------------------------------------------------------------------
interval('1s');
query("INSERT INTO shorturl.links (id, code, url)
	SELECT nextval('shorturl.link_id_seq'), 'ld' || g, 'https://example.com/ld' || g
	FROM generate_series(1, $LOAD_LINKS) g");
my $load_visits = 'SELECT coalesce(sum(' . ShortURL::Test::stored_expr('l') . "), 0)
	FROM shorturl.links l WHERE l.code LIKE 'ld%'";
is(query($load_visits), 0, "the $LOAD_LINKS load links start with no visits");
my $flushed_visits0 = stats('flushed_visits');

my $script = $node->basedir . '/005_load.sql';
append_to_file($script,
	"\\set i random(1, $LOAD_LINKS)\n"
	  . "SELECT 1 / (shorturl.resolve('ld' || :i) IS NOT NULL)::int;\n");
my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::start(
	[
		'pgbench',   '--no-vacuum', '--protocol=prepared',
		"--client=$LOAD_CLIENTS", '--jobs=2', '--time=120',
		"--rate=$LOAD_RATE", "--file=$script",
		'--host=' . $node->host, '--port=' . $node->port, 'postgres'
	],
	'>', \$bench_out, '2>', \$bench_err,
	IPC::Run::timeout(180));

# sample the worker's flushes while the load runs
my (@flush_ms, %flush_done);
my ($flushed_before_kill, $worker) = (0, undef);
$t0 = time;
while (time - $t0 < $LOAD_SECS)
{
	my ($ms, $at, $fl, $pid) = split /\|/,
	  stats("coalesce(last_flush_ms, 0), coalesce(extract(epoch FROM last_flush_at), 0),"
		  . ' flushed_visits, worker_pid');
	push @flush_ms, $ms if time - $t0 > 1;    # flushes of the load, not of the idle server
	$flush_done{$at} = $ms;
	($flushed_before_kill, $worker) = ($fl - $flushed_visits0, $pid);
	usleep(200_000);
}
# the longest gap between two flush commits seen: the interval as it happens
my @commits = sort { $a <=> $b } grep { $_ > $t0 } keys %flush_done;
my $longest_gap = max(0, map { $commits[$_] - $commits[ $_ - 1 ] } 1 .. $#commits);

$offset = ShortURL::Test::log_offset($node);
my $kill_at = time;
# proves the kill really happened: the worker serving postgres got SIGKILL
is(kill('KILL', $worker), 1, "the worker (pid $worker) is killed with SIGKILL mid-run");
eval { $bench->finish; };
ok(ShortURL::Test::wait_crash_recovered($node, 'postgres', $offset),
	'the server is back after the worker was killed under load');
ok(served(), 'the worker serves again after the crash');
query('SELECT shorturl.flush()');
my $recovered = query($load_visits);

my ($served) = $bench_out =~ /number of transactions actually processed: (\d+)/;
my ($tps)    = $bench_out =~ /tps = ([\d.]+) \(without initial connection time\)/;
$served //= 0;
$tps //= $served / ($kill_at - $t0);
# proves the kill hit pgbench mid-run, so "served" is the count at the crash
like($bench_err, qr/client \d+ aborted/, 'the crash aborted the pgbench clients mid-run');
like($bench_out, qr/number of failed transactions: 0 /, 'every click before the crash was served');
# proves the worker kept flushing under the load, so the loss measures a
# flush cycle and not a stalled worker
cmp_ok(scalar @commits, '>=', $LOAD_SECS / 2, sprintf('the worker flushed during the load: %d flushes seen in %d s', scalar @commits, $LOAD_SECS));

my $max_flush_ms = max(0, @flush_ms);
my $lost         = $served - $recovered;
my $bound = $tps * (1.0 + $max_flush_ms / 1000) * 1.5 + $LOSS_SLACK;
diag sprintf(
	"crash under load: %d links, %d clients, rate %.0f clicks/s, served %d, "
	  . "flushed before the kill >= %d, visits after recovery %d",
	$LOAD_LINKS, $LOAD_CLIENTS, $tps, $served, $flushed_before_kill, $recovered);
diag sprintf(
	"crash under load: %d flushes seen, longest flush %.1f ms, longest gap between flushes %.2f s, "
	  . "lost %d clicks = %.2f s of clicks (bound %.0f clicks)",
	scalar @commits, $max_flush_ms, $longest_gap, $lost, $lost / $tps, $bound);
# proves what the worker flushed survives the crash
cmp_ok($recovered, '>=', $flushed_before_kill,
	"the $flushed_before_kill clicks flushed before the kill survive the crash");
# proves no click is counted twice: the tables never exceed what was served
cmp_ok($lost, '>=', 0, "crash under load: lost ($lost) >= 0, no click counted twice");
# proves the loss is bounded by a flush interval plus a flush, at the rate
cmp_ok($lost, '<=', $bound,
	sprintf('crash under load: lost (%d) <= rate x (1 s + longest flush %.0f ms) x 1.5 + %d',
		$lost, $max_flush_ms, $LOSS_SLACK));

# ---------------------------------------------------------------------
# Full table: 3000 distinct links against max_pending_links = 1000
# ---------------------------------------------------------------------
$node->append_conf('postgresql.conf', 'shorturl.max_pending_links = 1000');
$node->restart;
ok(served(), 'the worker serves again after the restart');
interval('1h');
is(stats('max_pending_links'), 1000, 'stats.max_pending_links is 1000');
query("INSERT INTO shorturl.links (id, code, url)
	SELECT nextval('shorturl.link_id_seq'), 'p' || g, 'https://example.com/p' || g
	FROM generate_series(1, 3000) g");
my ($waits0, $fallbacks0) = split /\|/, stats('room_waits, sync_fallbacks');
$t0 = time;
$node->pgbench(
	'--no-vacuum --client=4 --jobs=2 --transactions=5',
	0,
	[qr{actually processed: 20/20}],
	[],
	'pgbench: 4 clients x 5 transactions, each resolving the 3000 links once, all resolved',
	{ '005_full_table.sql' =>
		  "SELECT 1 / (count(shorturl.resolve('p' || g)) = 3000)::int FROM generate_series(1, 3000) g;\n" },
	'postgres');
$secs = time - $t0;
my ($waits, $fallbacks, $pending_links) = split /\|/, stats('room_waits, sync_fallbacks, pending_links');
note sprintf('full table: 60000 clicks in %.1f s, room_waits %d, sync_fallbacks %d, pending_links %d',
	$secs, $waits - $waits0, $fallbacks - $fallbacks0, $pending_links);
# proves the table really was full: clicks had to wait for the worker
cmp_ok($waits - $waits0, '>', 0, 'the table was full: stats.room_waits > 0');
# proves each click counted exactly once, whichever path it took
is(query("SELECT count(*) FROM generate_series(1, 3000) g WHERE shorturl.visits('p' || g) = 20"),
	3000, 'visits() is exactly 20 for each of the 3000 links');
query('SELECT shorturl.flush()');
is(query('SELECT count(*) || \' \' || sum(v) FROM (SELECT ' . ShortURL::Test::stored_expr('l')
	  . q{ AS v FROM shorturl.links l WHERE l.code LIKE 'p%') s WHERE v = 20}),
	'3000 60000', 'after a flush the tables hold exactly 20 for each link, 60000 in all');

$node->stop;
done_testing();
