# 006_worker_robustness.pl: the launcher and the worker under reloads,
# purges, terminations, extension and database DDL, and on a standby, each
# measured with numbers.
#
# The server preloads pg_shorturl with shorturl.database = 'app', a
# database that does not exist when it starts.  The extension is also in
# postgres, whose shorturl.stats shows the worker's global figures
# (worker_pid, flushes, purged, dropped_deltas) whatever happens to app.
#
# - start: no worker while app is missing; one within seconds of CREATE
#   DATABASE app;
# - reload: flush_interval and purge_interval changed by ALTER SYSTEM and
#   pg_reload_conf() change the flush cadence (stats.flushes per second)
#   and the purge;
# - purge: expired links and exhausted ones (purge_grace = 0) deleted within
#   purge_interval, counted in stats.purged; a backlog of 20,000 goes in
#   batches (each observed count is a multiple of the batch size); a fast
#   shutdown in the middle of a backlog is not held up;
# - pg_terminate_backend(worker): it flushes as it exits, and a new worker
#   follows within seconds;
# - DROP/CREATE EXTENSION with clicks pending, and CREATE EXTENSION VERSION
#   '0.3' then ALTER EXTENSION UPDATE: the same worker carries on, stale
#   clicks are dropped, not given to the new links;
# - DROP DATABASE of another database, and of app, are prompt; app created
#   again gets a worker again; clicks pending in the dropped app die with
#   it (no "restored" at the next restart);
# - pg_terminate_backend(launcher): a launcher comes back, so a worker that
#   goes afterwards is replaced;
# - standby: launcher and worker idle without errors, resolve() serves
#   links without max_visits only, and after promotion the worker flushes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('robust');
$node->init(allows_streaming => 1);
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_shorturl'
shorturl.database = 'app'
shorturl.flush_interval = '1h'
shorturl.purge_interval = '1h'
log_line_prefix = '%m [%p] %b '
});
$node->start;

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

sub app { return $node->safe_psql('app', $_[0]); }
sub pg  { return $node->safe_psql('postgres', $_[0]); }

# wstat reads one column of shorturl.stats, from postgres (global figures)
sub wstat { return pg("SELECT $_[0] FROM shorturl.stats"); }

# wait_until polls a query on a node until it returns t, for at most
# $timeout seconds; returns the seconds it took, or undef
sub wait_until
{
	my ($n, $db, $sql, $timeout) = @_;
	my $t0 = time;

	while (time - $t0 < ($timeout // 10))
	{
		my ($rc, $out) = $n->psql($db, $sql);
		return time - $t0 if $rc == 0 && $out eq 't';
		usleep(20_000);
	}
	return undef;
}

# reconfigure sets SIGHUP settings with ALTER SYSTEM and reloads
sub reconfigure
{
	my (%settings) = @_;

	pg(join ";\n", (map { "ALTER SYSTEM SET shorturl.$_ = '$settings{$_}'" } sort keys %settings),
		'SELECT pg_reload_conf()');
	# the worker reloads on its latch at once; leave it the time to
	usleep(500_000);
}

# flushes_in counts the worker's flushes over about $secs seconds; in list
# context also returns the seconds actually measured (from the server's
# clock), so bounds hold on a slow machine too
sub flushes_in
{
	my ($secs) = @_;
	my ($f0, $t0) = split /\|/, pg('SELECT flushes, extract(epoch FROM clock_timestamp()) FROM shorturl.stats');

	usleep($secs * 1_000_000);
	my ($f1, $t1) = split /\|/, pg('SELECT flushes, extract(epoch FROM clock_timestamp()) FROM shorturl.stats');
	return wantarray ? ($f1 - $f0, $t1 - $t0) : $f1 - $f0;
}

# check_cadence asserts that the flushes over 2 s match an interval
sub check_cadence
{
	my ($interval_ms) = @_;
	my ($f, $elapsed) = flushes_in(2);
	my $expected = $elapsed * 1000 / $interval_ms;

	note sprintf('flush_interval = %dms: %d flushes in %.2f s (%.1f expected)',
		$interval_ms, $f, $elapsed, $expected);
	cmp_ok($f, '>=', int($expected / 2), "flush_interval = ${interval_ms}ms: at least half the expected flushes");
	cmp_ok($f, '<=', int($expected) + 2, "flush_interval = ${interval_ms}ms: no more than the interval allows");
}

# worker_errors counts ERROR/FATAL lines of the launcher or worker in the
# log since $offset
sub worker_errors
{
	my ($n, $offset) = @_;
	my $log = slurp_file($n->logfile, $offset);
	my @lines = grep { /pg_shorturl (launcher|worker) (ERROR|FATAL|PANIC)/ } split /\n/, $log;

	note "worker errors:\n" . join("\n", @lines) if @lines;
	return scalar @lines;
}

my $log_start = -s $node->logfile;

# ---------------------------------------------------------------------
# Start: the worker follows the database
# ---------------------------------------------------------------------
pg('CREATE EXTENSION pg_shorturl');
is(pg(q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'pg_shorturl launcher' AND datname IS NULL}),
	1, 'the launcher runs, connected to no database');
usleep(1_500_000);
is(wstat("coalesce(worker_pid::text, 'none')"), 'none', 'no worker while app does not exist');
is(wstat('mode'), 'sync', 'postgres is not served: stats.mode is sync there');

pg('CREATE DATABASE app');
my $secs = wait_until($node, 'postgres', 'SELECT worker_pid IS NOT NULL FROM shorturl.stats');
ok(defined $secs, 'a worker starts once app exists');
note sprintf('worker started %.2f s after CREATE DATABASE app', $secs // -1);
cmp_ok($secs // 99, '<', 5, 'within 5 s of CREATE DATABASE app');
is(pg(q{SELECT datname || ' ' || application_name FROM pg_stat_activity
	WHERE backend_type = 'pg_shorturl worker'}),
	'app pg_shorturl worker', 'the worker is connected to app, application_name pg_shorturl worker');
app('CREATE EXTENSION pg_shorturl');
is(app('SELECT mode FROM shorturl.stats'), 'shared', 'app is served: stats.mode is shared');
my $worker = wstat('worker_pid');
is(pg(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_shorturl worker'}),
	$worker, 'stats.worker_pid is the worker of pg_stat_activity');

# ---------------------------------------------------------------------
# Reload: flush_interval
# ---------------------------------------------------------------------
my $f = flushes_in(2);
note "flushes in 2 s at flush_interval = 1h: $f";
cmp_ok($f, '<=', 1, 'flush_interval = 1h: no periodic flush in 2 s');

reconfigure(flush_interval => '100ms');
check_cadence(100);
is(pg("SELECT clock_timestamp() - last_flush_at < interval '1 s' FROM shorturl.stats"),
	't', 'stats.last_flush_at is recent');

reconfigure(flush_interval => '500ms');
check_cadence(500);

# ---------------------------------------------------------------------
# Reload: purge_interval, and the purge of expired and exhausted links
# ---------------------------------------------------------------------
reconfigure(purge_grace => '0');
app(q{SELECT shorturl.shorten('https://example.com/e1', alias => 'e1');
	UPDATE shorturl.links SET expires_at = now() - interval '1 minute' WHERE code = 'e1'});
usleep(2_000_000);
is(app("SELECT count(*) FROM shorturl.links WHERE code = 'e1'"), 1,
	'purge_interval = 1h: an expired link is still there 2 s later');
is(wstat('purged'), 0, 'stats.purged is 0');

reconfigure(purge_interval => '1s');
$secs = wait_until($node, 'app', "SELECT count(*) = 0 FROM shorturl.links WHERE code = 'e1'");
note sprintf('expired link purged %.2f s after the reload to purge_interval = 1s', $secs // -1);
ok(defined $secs && $secs < 3, 'after reload to 1s the expired link is purged within 3 s');
is(wstat('purged'), 1, 'stats.purged is 1');
is(wstat('last_purge_at IS NOT NULL'), 't', 'stats.last_purge_at is set');

# an expired one, an exhausted one (flushed as exhausted), and two to keep
app(q{SELECT shorturl.shorten('https://example.com/e2', alias => 'e2');
	SELECT shorturl.shorten('https://example.com/x1', alias => 'x1', max_visits => 2);
	SELECT shorturl.shorten('https://example.com/x2', alias => 'x2', max_visits => 5);
	SELECT shorturl.shorten('https://example.com/f1', alias => 'f1', expires_at => now() + interval '1 day');
	UPDATE shorturl.links SET expires_at = now() - interval '1 minute' WHERE code = 'e2'});
is(app(q{SELECT count(shorturl.resolve('x1')) + count(shorturl.resolve('x2'))
	FROM generate_series(1, 2)}), 4, 'x1 (max_visits 2) and x2 (max_visits 5) resolved twice each');
$secs = wait_until($node, 'app', q{SELECT string_agg(code, ',' ORDER BY code) = 'f1,x2'
	FROM shorturl.links WHERE code IN ('e2', 'x1', 'x2', 'f1')});
note sprintf('expired e2 and exhausted x1 purged in %.2f s', $secs // -1);
ok(defined $secs && $secs < 5, 'the expired link and the exhausted one (purge_grace 0) are purged within 5 s');
is(wstat('purged'), 3, 'stats.purged is 3');
is(app("SELECT visits FROM shorturl.links WHERE code = 'x2'"), 2, 'x2, 2 visits of 5, is kept');

# ---------------------------------------------------------------------
# Purge backlog: 20,000 expired links, batches of 1000
# ---------------------------------------------------------------------
# watch_purge records each distinct count of links with a prefix until none
# is left; each statement of a PL/pgSQL loop sees the latest commits
app(q{CREATE FUNCTION public.watch_purge(prefix text, timeout_s float8)
	RETURNS bigint[] LANGUAGE plpgsql AS $$
	DECLARE
		seen bigint[] := '{}';
		c bigint;
		t0 timestamptz := clock_timestamp();
	BEGIN
		LOOP
			SELECT count(*) INTO c FROM shorturl.links WHERE code LIKE prefix || '%';
			IF cardinality(seen) = 0 OR seen[cardinality(seen)] <> c THEN
				seen := seen || c;
			END IF;
			EXIT WHEN c = 0 OR clock_timestamp() - t0 > make_interval(secs => timeout_s);
			PERFORM pg_sleep(0.002);
		END LOOP;
		RETURN seen;
	END $$});
reconfigure(purge_batch_size => '1000');
my $purged0 = wstat('purged');
my $t0 = time;
my $seen = app(q{INSERT INTO shorturl.links (code, url, expires_at)
	SELECT 'bk' || g, 'https://example.com/bk' || g, now() - interval '1 hour'
	FROM generate_series(1, 20000) g;
	SELECT public.watch_purge('bk', 30)});
$secs = time - $t0;
note sprintf('backlog of 20000: counts seen %s, gone after %.2f s', $seen, $secs);
$seen =~ s/[{}]//g;
my @seen = split /,/, $seen;
is($seen[-1], 0, 'the backlog of 20,000 expired links is purged completely');
is(scalar(grep { $_ % 1000 != 0 } @seen), 0, 'every count observed is a multiple of the batch size 1000');
cmp_ok(scalar(grep { $_ > 0 && $_ < 20000 } @seen), '>=', 3,
	'at least 3 intermediate counts observed: deleted batch by batch');
is(wstat('purged') - $purged0, 20000, 'stats.purged grew by exactly 20,000');

# a fast shutdown in the middle of a backlog (batches of 100)
reconfigure(purge_batch_size => '100');
app(q{INSERT INTO shorturl.links (code, url, expires_at)
	SELECT 'bs' || g, 'https://example.com/bs' || g, now() - interval '1 hour'
	FROM generate_series(1, 20000) g});
ok(defined wait_until($node, 'app', "SELECT count(*) < 20000 FROM shorturl.links WHERE code LIKE 'bs%'"),
	'the purge of a second backlog (batches of 100) is under way');
$t0 = time;
$node->stop('fast');
$secs = time - $t0;
note sprintf('fast shutdown during the purge took %.2f s', $secs);
cmp_ok($secs, '<', 5, 'a fast shutdown in the middle of a purge completes within 5 s');
$node->start;
my $left = app("SELECT count(*) FROM shorturl.links WHERE code LIKE 'bs%'");
note "links of the second backlog left at restart: $left";
cmp_ok($left, '>', 0, 'the shutdown interrupted the purge (links were left)');
$secs = wait_until($node, 'app', "SELECT count(*) = 0 FROM shorturl.links WHERE code LIKE 'bs%'", 60);
ok(defined $secs, 'after the restart the purge finishes the backlog');
is(app('SELECT count(*) FROM shorturl.links'), 2, 'only x2 and f1 are left');
reconfigure(purge_interval => '1h', purge_batch_size => '1000');

# ---------------------------------------------------------------------
# pg_terminate_backend(worker): a flush at exit, a new worker
# ---------------------------------------------------------------------
ok(defined wait_until($node, 'postgres', 'SELECT worker_pid IS NOT NULL FROM shorturl.stats'),
	'the worker is back after the restart');
reconfigure(flush_interval => '1h');
# flush_log records which process writes to shorturl.links
app(q{CREATE TABLE public.flush_log (pid int, at timestamptz DEFAULT clock_timestamp());
	CREATE FUNCTION public.log_flush() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN INSERT INTO public.flush_log (pid) VALUES (pg_backend_pid()); RETURN NULL; END $$;
	CREATE TRIGGER log_flush AFTER UPDATE ON shorturl.links
	FOR EACH STATEMENT EXECUTE FUNCTION public.log_flush();
	SELECT shorturl.shorten('https://example.com/t1', alias => 't1')});
is(app("SELECT count(shorturl.resolve('t1')) FROM generate_series(1, 50)"), 50, 't1 resolved 50 times');
is(app("SELECT visits FROM shorturl.links WHERE code = 't1'"), 0, 'none of them is in the table yet');
$worker = wstat('worker_pid');
$t0 = time;
is(app("SELECT pg_terminate_backend($worker)"), 't', 'pg_terminate_backend(worker)');
$secs = wait_until($node, 'postgres',
	"SELECT worker_pid IS NOT NULL AND worker_pid <> $worker FROM shorturl.stats");
note sprintf('new worker %.2f s after pg_terminate_backend', $secs // -1);
ok(defined $secs && $secs < 5, 'a new worker runs within 5 s');
is(app("SELECT visits FROM shorturl.links WHERE code = 't1'"), 50, 'the 50 clicks are in the table');
is(app("SELECT count(*) FROM public.flush_log WHERE pid = $worker"), 1,
	'the terminated worker wrote them: it flushed as it exited');
app('DROP TRIGGER log_flush ON shorturl.links');
is(app("SELECT shorturl.visits('t1')"), 50, 'visits(t1) is 50');

# ---------------------------------------------------------------------
# DROP EXTENSION and CREATE EXTENSION with clicks pending
# ---------------------------------------------------------------------
my $offset = -s $node->logfile;
$worker = wstat('worker_pid');
my $dropped0 = wstat('dropped_deltas');
app("SELECT shorturl.shorten('https://example.com/old', alias => 'dx')");
is(app("SELECT count(shorturl.resolve('dx')) FROM generate_series(1, 7)"), 7, 'dx resolved 7 times');
is(app('SELECT pending_visits FROM shorturl.stats'), 7, 'the 7 clicks are pending');
app('DROP EXTENSION pg_shorturl');
app('CREATE EXTENSION pg_shorturl');
app("SELECT shorturl.shorten('https://example.com/new', alias => 'dx')");
is(app("SELECT count(shorturl.resolve('dx')) FROM generate_series(1, 3)"), 3, 'the new dx resolved 3 times');
is(app("SELECT shorturl.visits('dx')"), 3, 'visits() of the new dx is 3, not 10');
app('SELECT shorturl.flush()');
is(app("SELECT visits FROM shorturl.links WHERE code = 'dx'"), 3,
	'after a flush the new dx holds 3: the stale clicks were not applied to it');
is(wstat('dropped_deltas') - $dropped0, 7, 'stats.dropped_deltas grew by the 7 stale clicks');
is(wstat('worker_pid'), $worker, 'the same worker is still running');
reconfigure(flush_interval => '100ms');
$f = flushes_in(1);
cmp_ok($f, '>=', 4, "the worker keeps flushing after the extension came back ($f in 1 s)");

# ---------------------------------------------------------------------
# CREATE EXTENSION VERSION '0.3', then ALTER EXTENSION UPDATE TO '0.4'
# ---------------------------------------------------------------------
app('DROP EXTENSION pg_shorturl');
app(q{CREATE EXTENSION pg_shorturl VERSION '0.3';
	SELECT shorturl.shorten('https://example.com/u1', alias => 'u1')});
is(app("SELECT count(shorturl.resolve('u1')) FROM generate_series(1, 5)"), 5, 'u1 resolved 5 times at 0.3');
ok(defined wait_until($node, 'app', "SELECT visits = 5 FROM shorturl.links WHERE code = 'u1'", 5),
	'the worker flushes at 0.3: the table holds 5');
app(q{ALTER EXTENSION pg_shorturl UPDATE TO '0.4'});
is(app(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'}), '0.4', 'updated to 0.4');
is(app("SELECT count(shorturl.resolve('u1')) FROM generate_series(1, 5)"), 5, 'u1 resolved 5 more times at 0.4');
ok(defined wait_until($node, 'app', "SELECT visits = 10 FROM shorturl.links WHERE code = 'u1'", 5),
	'the worker flushes after the update: the table holds 10');
is(app("SELECT mode || ' ' || worker_pid FROM shorturl.stats"), "shared $worker",
	'after the update app is still served, by the same worker');
is(app("SELECT shorturl.visits('u1')"), 10, 'visits(u1) is 10');
is(worker_errors($node, $offset), 0, 'no ERROR from the launcher or the worker through the extension DDL');

# ---------------------------------------------------------------------
# DROP DATABASE: another database, then the served one
# ---------------------------------------------------------------------
reconfigure(flush_interval => '1h');
pg('CREATE DATABASE other');
$node->safe_psql('other', q{CREATE EXTENSION pg_shorturl;
	SELECT shorturl.shorten('https://example.com/o1', alias => 'o1');
	SELECT shorturl.resolve('o1')});
is($node->safe_psql('other', "SELECT mode || ' ' || shorturl.visits('o1') FROM shorturl.stats"),
	'sync 1', 'another database counts synchronously');
$t0 = time;
pg('DROP DATABASE other');
$secs = time - $t0;
note sprintf('DROP DATABASE other took %.2f s', $secs);
cmp_ok($secs, '<', 5, 'DROP DATABASE of another database completes within 5 s');
is(wstat('worker_pid'), $worker, 'the worker serving app was not disturbed');

is(app("SELECT count(shorturl.resolve('u1')) FROM generate_series(1, 5)"), 5,
	'u1 resolved 5 times just before app is dropped (flush_interval 1h: pending)');
$t0 = time;
pg('DROP DATABASE app');
$secs = time - $t0;
note sprintf('DROP DATABASE app (served) took %.2f s', $secs);
cmp_ok($secs, '<', 5, 'DROP DATABASE of the served database completes within 5 s');
ok(defined wait_until($node, 'postgres', 'SELECT worker_pid IS NULL FROM shorturl.stats', 5),
	'no worker once app is gone');

pg('CREATE DATABASE app');
$secs = wait_until($node, 'postgres', "SELECT worker_pid IS NOT NULL AND worker_pid <> $worker FROM shorturl.stats");
note sprintf('worker back %.2f s after CREATE DATABASE app', $secs // -1);
ok(defined $secs && $secs < 5, 'CREATE DATABASE app again: a new worker within 5 s');
app(q{CREATE EXTENSION pg_shorturl;
	SELECT shorturl.shorten('https://example.com/n1', alias => 'n1')});
is(app("SELECT count(shorturl.resolve('n1')) FROM generate_series(1, 4)"), 4, 'n1 resolved 4 times in the new app');
is(app("SELECT mode || ' ' || pending_visits FROM shorturl.stats"), 'shared 4', 'the new app is served: 4 clicks pending');
is(app('SELECT shorturl.flush()'), 4, 'flush() writes the 4');
is(worker_errors($node, $log_start), 0, 'no ERROR from the launcher or the worker in the whole run');

# the 5 clicks pending in the dropped app can never be written anywhere:
# they must not outlive it in shared memory, nor in the save file
$offset = -s $node->logfile;
$node->restart;
ok(!$node->log_contains(qr/restored \d+ unflushed visits/, $offset),
	'the clicks pending in the dropped database are not saved and restored at a restart');
ok(defined wait_until($node, 'postgres', 'SELECT worker_pid IS NOT NULL FROM shorturl.stats'),
	'the worker is back after the restart');

# ---------------------------------------------------------------------
# pg_terminate_backend(launcher): the launcher comes back, and with it the
# worker's replacement when the worker goes too
# ---------------------------------------------------------------------
my $launcher = pg(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_shorturl launcher'});
is(pg("SELECT pg_terminate_backend($launcher)"), 't', 'pg_terminate_backend(launcher)');
$secs = wait_until($node, 'postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'pg_shorturl launcher' AND pid <> $launcher}, 12);
note sprintf('launcher back %.2f s after pg_terminate_backend', $secs // -1);
ok(defined $secs, 'a new launcher runs within 12 s');
$worker = wstat('worker_pid');
pg("SELECT pg_terminate_backend($worker)");
ok(defined wait_until($node, 'postgres',
		"SELECT worker_pid IS NOT NULL AND worker_pid <> $worker FROM shorturl.stats", 5),
	'then pg_terminate_backend(worker): a new worker within 5 s');

# ---------------------------------------------------------------------
# Standby
# ---------------------------------------------------------------------
app(q{SELECT shorturl.shorten('https://example.com/sb1', alias => 'sb1');
	SELECT shorturl.shorten('https://example.com/sb2', alias => 'sb2', max_visits => 10)});
# the standby inherits postgresql.auto.conf: a short flush interval, so a
# flush after promotion comes from the worker's own cadence
reconfigure(flush_interval => '100ms');
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
ok(defined wait_until($standby, 'app', q{SELECT count(*) = 2 FROM pg_stat_activity
	WHERE backend_type IN ('pg_shorturl launcher', 'pg_shorturl worker')}),
	'on the standby the launcher and a worker run');
usleep(3_000_000);
is(worker_errors($standby, 0), 0, 'no ERROR or FATAL from them in the standby log after 3 s');
is($standby->safe_psql('app', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('app', "SELECT shorturl.resolve('sb1')"), 'https://example.com/sb1',
	'resolve() on the standby serves a link without max_visits');
is($standby->safe_psql('app', "SELECT shorturl.resolve('sb2') IS NULL"), 't',
	'resolve() on the standby returns NULL for a link with max_visits');
is($standby->safe_psql('app', "SELECT shorturl.visits('sb1') || ' ' || shorturl.visits('sb2')"),
	'0 0', 'the standby counted nothing');

is($standby->safe_psql('app', 'SELECT flushes FROM shorturl.stats'), 0,
	'the worker does not flush on the standby (stats.flushes 0 at flush_interval 100ms)');

$node->stop;
$standby->promote;
ok(defined wait_until($standby, 'app', 'SELECT NOT pg_is_in_recovery()'), 'the standby is promoted');
$t0 = time;
is($standby->safe_psql('app', "SELECT count(shorturl.resolve('sb2')) FROM generate_series(1, 3)"),
	3, 'after promotion sb2 (max_visits) resolves');
$secs = wait_until($standby, 'app', "SELECT visits = 3 FROM shorturl.links WHERE code = 'sb2'", 15);
note sprintf('clicks flushed %.2f s after promotion', $secs // -1);
ok(defined $secs, 'after promotion the worker flushes: the table holds 3');
cmp_ok($standby->safe_psql('app', 'SELECT flushes FROM shorturl.stats'), '>', 0, 'stats.flushes > 0 on the promoted server');
is(worker_errors($standby, 0), 0, 'no ERROR or FATAL from the launcher or worker on the promoted server');

$standby->stop;
done_testing();
