# 019_replica_failover.pl: read replicas' clicks across a cascade, a
# standby's crash and promotions: never counted twice, lost only as the
# crash's bound says.
#
# A primary and two hot standbys of it (sb1, sb2), and a standby cas
# streaming from sb1 (a cascade); each standby preloads pg_shorturl and
# ships every 200 ms under its shorturl.standby_name.  A ledger in this file
# holds every click served, per link; the primary's visits() of every link
# must equal it exactly, and a promoted standby's its own ledger (the
# primary's at the promotion, plus the clicks that stayed with it), so a
# click lost or counted twice shows.  The cases, in the order they run
# (the two promotions last: the second one ends the primary):
#
# 1. cascading: cas's primary_conninfo names sb1, which cannot apply
#    clicks: without shorturl.primary_conninfo its shipping fails
#    (ship_failures grows, last_error says the upstream is a standby and
#    that shorturl.primary_conninfo must name the primary) and
#    its 200 clicks wait unshipped, none on the primary; with
#    shorturl.primary_conninfo naming the primary (a reload), they arrive
#    exactly, under cas's own standby_batches row, and clicks on sb1 at
#    the same time arrive exactly too;
# 2. a crash under load: pgbench clicks 100 links on sb1 at a fixed rate
#    (ship_interval 1 s, ship_timeout 1 s) and sb1 is stopped with
#    -m immediate mid-run: the clicks that reached the primary are no more
#    than those served (none doubled), and the loss is at most what the
#    rate makes of a ship interval plus a ship_timeout-bounded exchange,
#    plus a small slack; the figures are printed.  Restarted, sb1 restores
#    nothing and ships new clicks exactly;
# 3. promotion with a batch applied but not acknowledged: sb2's batch of
#    one click is held in the primary's COMMIT (a deferred constraint
#    trigger on shorturl.standby_batches waits for an advisory lock the
#    test holds) until sb2's worker times out; sb2's
#    shorturl.primary_conninfo then points at a port nobody listens on,
#    so the worker cannot learn the outcome, and its
#    shorturl.standby_name changes (the batch went under the old one,
#    which visits() and the promotion must look it up by); the test lets the commit go
#    and waits until sb2 has replayed it (its standby_batches shows the
#    batch's seq), while sb2 still has it unacknowledged in flight; 100
#    more clicks stay pending.  visits() on sb2 counts the batch once.
#    Promoted, sb2 finds the batch applied (the log says "the old primary
#    applied it") and drops it: its counts are the primary's plus the 100,
#    the held click once, not twice; the primary has it once too;
# 4. promotion with a batch in flight not applied: sb1's batch of one
#    click is held in the primary's COMMIT the same way, 100 more clicks
#    stay pending, and the primary is stopped with -m immediate (the held
#    commit never happens); promoted, sb1 gives the batch back to pending
#    (the log says "counted here") and, after a flush, every click made on
#    it is counted exactly once there, and so is each click's referrer (the
#    batch's handed over by the standby's leaving worker).
#
# Last, no process of any server died of a signal.
#
# No case asserts a duration: conditions are polled with generous
# deadlines.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
# PGXS's Makefile.global empties PROVE_FLAGS, so find the module from here
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

# the links without max_visits the cases click, r1 .. r$N_LINKS
my $N_LINKS = 20;

# the links of the crash under load, ld1 .. ld$LOAD_LINKS, clicked on sb1
# only (kept out of the ledger: what reaches the primary is measured)
my $LOAD_LINKS = 100;

# the load: clients, the rate pgbench holds (clicks per second), and the
# seconds it runs before sb1 is stopped
my $LOAD_CLIENTS = 4;
my $LOAD_RATE    = 2000;
my $LOAD_SECS    = 4;

# sb1's ship_interval and ship_timeout during the load, in seconds
my $LOAD_INTERVAL = 1;
my $LOAD_TIMEOUT  = 1;

# slack of the loss bound: clicks served while the immediate stop reaches
# every backend, and the rate's catching up after a stall of pgbench
my $LOSS_SLACK = 500;

# the advisory lock the test holds to keep a shipment's commit waiting
my $GATE_KEY = 190019;

# max_connections: Cluster.pm's 10 for a streaming primary is too few
# while held shipments leave a backend per timed-out attempt waiting
# beside the polls and the standbys' walsenders; its 1MB of
# shared_buffers is tight for as many.  The standbys copy these settings
# with the backup.
my $primary = ShortURL::Test::node(
	'primary',
	{ init => { allows_streaming => 1 } },
	'max_connections = 40',
	'shared_buffers = 16MB',
	"shorturl.flush_interval = '200ms'",
	"shorturl.purge_interval = '1h'");

# the ledger of the primary: per link, the clicks served on any node that
# belong on the primary
my %want;

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

# sql runs SQL in the database postgres of a node and returns its output
sub sql { return $_[0]->safe_psql('postgres', $_[1]); }

# stat_of reads columns of a node's shorturl.stats, joined by |
sub stat_of { return ShortURL::Test::stats($_[0], 'postgres', $_[1]); }

# click resolves each code of @$codes $n times on a node in one statement,
# checks that every resolve returned the code's URL, and enters them in
# the ledgers given (default: the primary's).  resolve() is in the
# aggregate's FILTER, evaluated once per row of the join.
our $referrer;

sub click
{
	my ($node, $n, $codes, @ledgers) = @_;
	my $list = join ',', map { "'$_'" } @$codes;
	my $facts = defined $referrer ? ", NULL, referrer => '$referrer'" : '';
	my $served = sql($node, qq{SELECT count(*) FILTER (WHERE shorturl.resolve(c$facts) = 'https://example.com/' || c)
		FROM unnest(ARRAY[$list]) c, generate_series(1, $n) g});

	@ledgers = (\%want) unless @ledgers;
	is($served, $n * @$codes, $node->name . ": @$codes clicked $n times each, every resolve returned the URL");
	for my $ledger (@ledgers)
	{
		$ledger->{$_} += $n for @$codes;
	}
}

# batches_row, shipped and ship_figures: ShortURL::Test's, on the primary
sub batches_row { my ($name, $node) = @_; return ShortURL::Test::batches_row($node // $primary, $name); }
sub shipped { return ShortURL::Test::wait_shipped(@_); }
sub ship_figures { return ShortURL::Test::ship_figures(@_); }

# check_ledger compares a node's count of every link of a ledger with it:
# $how is 'visits' (visits(), unflushed clicks included) or 'stored' (the
# tables only)
sub check_ledger
{
	my ($case, $node, $ledger, $how) = @_;
	my @codes = sort keys %$ledger;
	my $expr = $how eq 'stored' ? ShortURL::Test::stored_expr('l') : 'shorturl.visits(l.code)';
	my %have = map { split /\|/ } split /\n/, sql($node, "SELECT l.code, $expr FROM shorturl.links l");
	my @bad = map { "$_ wants $ledger->{$_}, has " . ($have{$_} // '(none)') }
	  grep { ($have{$_} // -1) != $ledger->{$_} } @codes;
	my $total = 0;
	$total += $ledger->{$_} for @codes;

	is(scalar @bad, 0, "$case: on " . $node->name . " ($how) each of " . scalar(@codes)
		  . " links has exactly the clicks it served, $total in all")
	  or diag join "\n", @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ];
}

# make_standby makes a streaming standby of $upstream from its backup; it
# ships every 200 ms under its own name; extra lines of postgresql.conf
# follow
sub make_standby
{
	my ($name, $upstream, $backup, @conf) = @_;
	my $sb = PostgreSQL::Test::Cluster->new($name);

	$sb->init_from_backup($upstream, $backup, has_streaming => 1);
	$sb->append_conf('postgresql.conf', join "\n",
		"shorturl.standby_name = '$name'", "shorturl.ship_interval = '200ms'", @conf, '');
	$sb->start;
	return $sb;
}

# wait_log waits until a node's log from $offset on matches $re; returns
# whether it did within $timeout seconds (default 30)
sub wait_log
{
	my ($node, $offset, $re, $timeout) = @_;
	my $deadline = time + ($timeout // 30);

	while (time < $deadline)
	{
		return 1 if ShortURL::Test::log_since($node, $offset) =~ $re;
		usleep(100_000);
	}
	return 0;
}

# hold_commits makes the primary's COMMIT of a shipment from standby
# $name wait for the gate (an advisory lock) and returns a session that
# holds the gate
my $held_sql = "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $GATE_KEY AND NOT granted";
my $free_sql = "SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $GATE_KEY";

sub hold_commits
{
	my ($case, $name) = @_;

	sql($primary, qq{CREATE OR REPLACE FUNCTION public.held_commit() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN PERFORM pg_advisory_xact_lock_shared($GATE_KEY); RETURN NULL; END\$\$;
		CREATE CONSTRAINT TRIGGER held_commit_$name AFTER INSERT OR UPDATE ON shorturl.standby_batches
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.standby = '$name')
		EXECUTE FUNCTION public.held_commit()});
	my $gate = ShortURL::Test::session($primary, 'postgres');
	my (undef, $error) = ShortURL::Test::ask($gate, "SELECT pg_advisory_lock($GATE_KEY)");
	is($error, '', "$case: the test holds the gate for $name\'s shipments");
	return $gate;
}

# settled makes sure every standby has shipped, the primary has flushed
# and the standbys have replayed it all: each starts the next case from
# the primary's ledger
sub settled
{
	my ($case, @standbys) = @_;
	for my $sb (@standbys)
	{
		ok(shipped($sb), "$case: " . $sb->name . ' has nothing unshipped') or diag ship_figures($sb);
	}
	sql($primary, 'SELECT shorturl.flush()');
	$primary->wait_for_catchup($_) for grep { $_->name ne 'cas' } @standbys;
}

# ---------------------------------------------------------------------
# Setup: the links, then the standbys and the cascade
# ---------------------------------------------------------------------
sql($primary, 'CREATE EXTENSION pg_shorturl');
ok(ShortURL::Test::wait_served($primary, 'postgres'), 'a worker serves the primary');
sql($primary, qq{SELECT shorturl.shorten('https://example.com/r' || g, alias => 'r' || g)
	FROM generate_series(1, $N_LINKS) g});
sql($primary, qq{SELECT shorturl.shorten('https://example.com/ld' || g, alias => 'ld' || g)
	FROM generate_series(1, $LOAD_LINKS) g});
$want{"r$_"} = 0 for 1 .. $N_LINKS;

$primary->backup('b');
my $sb1 = make_standby('sb1', $primary, 'b');
my $sb2 = make_standby('sb2', $primary, 'b', "shorturl.ship_timeout = '1s'");
$primary->wait_for_catchup($_) for $sb1, $sb2;
# the cascade: from sb1's backup, streaming from sb1 (Cluster.pm sets its
# primary_conninfo to sb1's); sb1's settings come with the backup, so cas
# names itself
$sb1->backup('c');
my $cas = make_standby('cas', $sb1, 'c');
$sb1->wait_for_catchup($cas, 'replay', $sb1->lsn('replay'));
my $sysid = sql($primary, 'SELECT system_identifier FROM pg_control_system()');

for my $sb ($sb1, $sb2, $cas)
{
	my $name = $sb->name;
	is(sql($sb, 'SELECT pg_is_in_recovery() AND count(*) = 1 FROM pg_stat_wal_receiver'), 't',
		"$name is a hot standby, streaming");
	ok(ShortURL::Test::wait_until($sb, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'pg_shorturl worker' AND datname = 'postgres'}, 20),
		"$name: one pg_shorturl worker runs in its database postgres");
	is(stat_of($sb, 'mode'), 'standby', "$name: stats.mode is standby");
}
is(sql($cas, q{SELECT sender_port FROM pg_stat_wal_receiver}), $sb1->port, 'cas streams from sb1');

# sb1 and sb2 ship once, so that the primary has a row of each
click($sb1, 1, ['r20']);
click($sb2, 1, ['r20']);
ok(shipped($_), 'setup: ' . $_->name . ' shipped its first click') or diag ship_figures($_) for $sb1, $sb2;

# =====================================================================
# 1. Cascading: cas ships to the primary, not to sb1
# =====================================================================
my $failures0 = stat_of($cas, 'ship_failures');
is(batches_row('cas')->{batches}, 0, 'case 1: the primary has no batch of cas');
my $held_back = ShortURL::Test::live($primary, 'postgres', map { "r$_" } 1 .. 4);
click($cas, 50, [ map { "r$_" } 1 .. 4 ]);
ok(ShortURL::Test::wait_until($cas, 'postgres', "SELECT ship_failures > $failures0 + 2 FROM shorturl.stats", 30),
	'case 1: without shorturl.primary_conninfo cas fails to ship, again and again (ship_failures grew)')
  or diag ship_figures($cas);
my $error = stat_of($cas, 'last_error');
note "case 1: cas's last_error: $error";
# proves the worker found its upstream in recovery and refused to ship there
like($error, qr/^could not ship clicks to the primary: cannot apply shipped clicks on a standby: /,
	'case 1: cas\'s last_error says its upstream is a standby');
# proves the refusal says what to do: name the primary
like($error, qr/set shorturl\.primary_conninfo to the primary/,
	'case 1: ... and that shorturl.primary_conninfo must name the primary');
# proves nothing is taken as shipped, and nothing reached the primary
is(stat_of($cas, q{unshipped_visits || ' ' || shipped_visits || ' ' || ship_batches || ' ' || standby_dropped}),
	'200 0 0 0', 'case 1: cas\'s 200 clicks wait unshipped: none shipped, none dropped');
is(batches_row('cas')->{batches} . ' ' . ShortURL::Test::live($primary, 'postgres', map { "r$_" } 1 .. 4),
	"0 $held_back", 'case 1: the primary has none of them, and no batch of cas');
is(batches_row('cas', $sb1)->{batches}, 0, 'case 1: sb1 has no batch of cas either');

my $cas_row = batches_row('cas');
my $sb1_row = batches_row('sb1');
ShortURL::Test::reconfigure($cas, primary_conninfo => ShortURL::Test::conninfo($primary));
click($sb1, 100, ['r5']);
ok(shipped($cas), 'case 1: with shorturl.primary_conninfo naming the primary, cas has nothing unshipped')
  or diag ship_figures($cas);
ok(shipped($sb1), 'case 1: sb1 has nothing unshipped') or diag ship_figures($sb1);
# proves cas's clicks were applied once, under its own row
is(batches_row('cas')->{visits} - $cas_row->{visits}, 200, 'case 1: standby_batches: cas\'s visits grew by exactly 200');
is(batches_row('sb1')->{visits} - $sb1_row->{visits}, 100, 'case 1: standby_batches: sb1\'s visits grew by exactly 100');
is(stat_of($cas, q{shipped_visits || ' ' || ship_batches || ' ' || unshipped_visits || ' ' || standby_dropped}),
	'200 ' . batches_row('cas')->{batches} . ' 0 0',
	'case 1: cas saw its 200 clicks acknowledged, in as many batches as the primary applied');
is(sql($primary, "SELECT system_id = $sysid FROM shorturl.standby_batches WHERE standby = 'cas'"), 't',
	'case 1: cas ships under the primary\'s system identifier');
sql($primary, 'SELECT shorturl.flush()');
check_ledger('case 1', $primary, \%want, 'visits');
check_ledger('case 1', $primary, \%want, 'stored');
$cas->stop;

# =====================================================================
# 2. A crash of sb1 under load
# =====================================================================
ShortURL::Test::reconfigure($sb1, ship_interval => "${LOAD_INTERVAL}s", ship_timeout => "${LOAD_TIMEOUT}s");
ok(shipped($sb1), 'case 2: sb1 has nothing unshipped before the load');
my $load_visits = "SELECT coalesce(sum(shorturl.visits(l.code)), 0) FROM shorturl.links l WHERE l.code LIKE 'ld%'";
is(sql($primary, $load_visits), 0, "case 2: the $LOAD_LINKS load links start with no visits");
$sb1_row = batches_row('sb1');
my ($batches0, $load_failures0) = split /\|/, stat_of($sb1, 'ship_batches, ship_failures');

my $bench = ShortURL::Test::start_pgbench($sb1, 'postgres',
	"--client=$LOAD_CLIENTS --jobs=2 --rate=$LOAD_RATE --time=60 --protocol=prepared",
	"\\set i random(1, $LOAD_LINKS)\nSELECT 1 / (shorturl.resolve('ld' || :i) IS NOT NULL)::int;\n");
my $t0 = time;
usleep(200_000) while time - $t0 < $LOAD_SECS;
my ($batches_during, $failures_during) = split /\|/, stat_of($sb1, "ship_batches - $batches0, ship_failures - $load_failures0");
my $offset = ShortURL::Test::log_offset($sb1);
$sb1->stop('immediate');
my $kill_at = time;
my ($rc, $bench_out, $bench_err) = ShortURL::Test::finish_pgbench($bench);
# a shipment the primary was applying when sb1 went down still commits
ok(ShortURL::Test::wait_until($primary, 'postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE application_name = 'pg_shorturl shipper' AND state <> 'idle'}, 30),
	'case 2: no shipment of sb1 is still being applied on the primary');
my $arrived = sql($primary, $load_visits);
my $arrived_row = batches_row('sb1')->{visits} - $sb1_row->{visits};

my ($served) = $bench_out =~ /number of transactions actually processed: (\d+)/;
$served //= 0;
my $secs = $kill_at - $t0;
# proves the stop hit pgbench mid-run, so "served" is the count at the crash
like($bench_err, qr/client \d+ aborted/, 'case 2: the immediate stop aborted the pgbench clients mid-run');
like($bench_out, qr/number of failed transactions: 0 /, 'case 2: every click before the stop was served');
cmp_ok($batches_during, '>=', $LOAD_SECS / $LOAD_INTERVAL - 2,
	"case 2: sb1 shipped during the load: $batches_during batches acknowledged in $LOAD_SECS s");
is($arrived_row, $arrived, 'case 2: what the primary applied from sb1 is what the load links got');
my $lost  = $served - $arrived;
my $bound = $LOAD_RATE * ($LOAD_INTERVAL + $LOAD_TIMEOUT) + $LOSS_SLACK;
note sprintf('case 2: crash under load: %d clients at %d clicks/s for %.1f s: served %d (%.0f/s), '
	  . 'arrived on the primary %d, lost %d (%.2f s of the rate); bound %d; %d batches acknowledged and %d failures during the load',
	$LOAD_CLIENTS, $LOAD_RATE, $secs, $served, $served / $secs, $arrived, $lost, $lost / $LOAD_RATE, $bound,
	$batches_during, $failures_during);
cmp_ok($served, '>', $LOAD_RATE * $LOAD_SECS / 2, "case 2: pgbench served $served clicks before the stop");
# each client may have had one click counted whose answer the stop cut off
cmp_ok($arrived, '<=', $served + $LOAD_CLIENTS,
	"case 2: the primary got $arrived clicks from sb1, no more than the $served served (+ one in progress per client): none doubled");
cmp_ok($lost, '<=', $bound,
	"case 2: the crash lost $lost clicks, at most $bound (a ship interval and a ship_timeout at the rate, plus $LOSS_SLACK)");

$sb1->start;
# proves the immediate stop saved nothing, so nothing comes back to ship again
is(join("\n", ShortURL::Test::restore_lines($sb1, $offset)), '', 'case 2: sb1 restored nothing after the immediate stop');
ok(ShortURL::Test::wait_until($sb1, 'postgres', q{SELECT mode = 'standby' AND worker_pid IS NOT NULL FROM shorturl.stats}, 30),
	'case 2: restarted, sb1 is a standby with a worker again');
ShortURL::Test::reconfigure($sb1, ship_interval => '200ms');
$sb1_row = batches_row('sb1');
click($sb1, 100, ['r6']);
ok(shipped($sb1), 'case 2: after the restart sb1 has nothing unshipped') or diag ship_figures($sb1);
is(batches_row('sb1')->{visits} - $sb1_row->{visits}, 100, 'case 2: after the restart sb1\'s 100 clicks arrive exactly');
is(sql($primary, $load_visits), $arrived, 'case 2: the load links got nothing more: nothing of before the crash was shipped again');
check_ledger('case 2', $primary, \%want, 'visits');

# =====================================================================
# 3. Promotion of sb2 with a batch applied but not acknowledged
# =====================================================================
settled('case 3', $sb1, $sb2);
my %want_sb2 = %want;
my $gate = hold_commits('case 3', 'sb2');
my $sb2_row = batches_row('sb2');
my ($acked0, $shipped0) = split /\|/, stat_of($sb2, 'ship_batches, shipped_visits');
$failures0 = stat_of($sb2, 'ship_failures');
my $r7 = $want{r7};
click($sb2, 1, ['r7'], \%want, \%want_sb2);
ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 30),
	'case 3: sb2\'s batch of one click is applied on the primary, its COMMIT held') or diag ship_figures($sb2);
ok(ShortURL::Test::wait_until($sb2, 'postgres', "SELECT ship_failures > $failures0 FROM shorturl.stats", 30),
	'case 3: sb2\'s worker gave up waiting for the answer (ship_failures grew)') or diag ship_figures($sb2);
# from now on the worker cannot reach the primary to learn the outcome;
# and sb2 is renamed while its batch is in flight: the batch stays under
# the name it went under, for visits() and for the promotion's settlement
my $nowhere = 'host=' . $primary->host . ' port=' . PostgreSQL::Test::Cluster::get_free_port() . ' dbname=postgres';
my $since = sql($sb2, 'SELECT now()');
ShortURL::Test::reconfigure($sb2, primary_conninfo => $nowhere, standby_name => 'sb2_renamed');
ok(ShortURL::Test::wait_until($sb2, 'postgres',
		"SELECT last_error LIKE '%could not connect%' AND last_error_at > '$since' FROM shorturl.stats", 30),
	'case 3: sb2\'s worker now fails to connect') or diag ship_figures($sb2);
click($sb2, 100, ['r8'], \%want_sb2);
is(stat_of($sb2, q{unshipped_visits || ' ' || pending_visits}), '101 100',
	'case 3: on sb2 101 clicks are unshipped, 100 of them pending: the held batch is in flight');
is(sql($primary, q{SELECT shorturl.visits('r7')}), $r7, 'case 3: the held batch is not visible on the primary');

ShortURL::Test::ask($gate, "SELECT pg_advisory_unlock($GATE_KEY)");
ShortURL::Test::end_session($gate);
ok(ShortURL::Test::wait_until($primary, 'postgres', $free_sql, 30), 'case 3: the held commit is over once let go');
is(sql($primary, q{SELECT shorturl.visits('r7')}), $r7 + 1, 'case 3: the primary applied the held batch: r7 grew by 1');
my $sb2_after = batches_row('sb2');
is(($sb2_after->{visits} - $sb2_row->{visits}) . ' ' . ($sb2_after->{batches} - $sb2_row->{batches}), '1 1',
	'case 3: standby_batches: sb2\'s visits grew by exactly 1, in 1 batch');
my $seq = $sb2_after->{last_seq};
cmp_ok($seq, '>', $sb2_row->{last_seq}, "case 3: sb2's last_seq advanced to $seq");
# the primary's commit is replayed on sb2 while its worker still has the
# batch in flight, unacknowledged
ok(ShortURL::Test::wait_until($sb2, 'postgres',
		"SELECT last_seq = $seq FROM shorturl.standby_batches WHERE standby = 'sb2'", 30),
	"case 3: sb2 replayed the primary's commit: its standby_batches shows seq $seq");
is(stat_of($sb2, q{unshipped_visits || ' ' || pending_visits || ' ' || ship_batches || ' ' || shipped_visits}),
	"101 100 $acked0 $shipped0",
	'case 3: ... while sb2 has not seen it acknowledged: 101 unshipped, 100 pending, ship_batches and shipped_visits unchanged');
# proves a reader on the standby counts a replayed batch once, not also
# from inflight
check_ledger('case 3', $sb2, \%want_sb2, 'visits');

$offset = ShortURL::Test::log_offset($sb2);
$sb2->promote;
ok(wait_log($sb2, $offset, qr/pg_shorturl: promoted with a batch of clicks in flight: the old primary applied it/),
	'case 3: promoted, sb2 logs that the old primary applied its batch in flight')
  or diag ShortURL::Test::log_since($sb2, $offset);
ok(ShortURL::Test::wait_served($sb2, 'postgres', 30), 'case 3: a worker serves the promoted sb2 (stats.mode shared)');
is(sql($sb2, 'SELECT pg_is_in_recovery()'), 'f', 'case 3: sb2 is a primary');
check_ledger('case 3', $sb2, \%want_sb2, 'visits');
sql($sb2, 'SELECT shorturl.flush()');
# proves the held click is in the promoted server's tables once (replayed),
# and its 100 pending clicks were flushed there
check_ledger('case 3', $sb2, \%want_sb2, 'stored');
check_ledger('case 3', $primary, \%want, 'visits');
$sb2->stop;

# =====================================================================
# 4. Promotion of sb1 with a batch in flight the primary never committed
# =====================================================================
ShortURL::Test::reconfigure($sb1, ship_timeout => '1s');
settled('case 4', $sb1);
my %want_sb1 = %want;
$gate = hold_commits('case 4', 'sb1');
$sb1_row = batches_row('sb1');
$failures0 = stat_of($sb1, 'ship_failures');
{
	local $referrer = 'https://held.example/x';
	click($sb1, 1, ['r9'], \%want_sb1);
}
ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 30),
	'case 4: sb1\'s batch of one click is applied on the primary, its COMMIT held') or diag ship_figures($sb1);
ok(ShortURL::Test::wait_until($sb1, 'postgres', "SELECT ship_failures > $failures0 FROM shorturl.stats", 30),
	'case 4: sb1\'s worker gave up waiting for the answer (ship_failures grew)') or diag ship_figures($sb1);
{
	local $referrer = 'https://pending.example/y';
	click($sb1, 100, ['r10'], \%want_sb1);
}
is(stat_of($sb1, q{unshipped_visits || ' ' || pending_visits}), '101 100',
	'case 4: on sb1 101 clicks are unshipped, 100 of them pending: the held batch is in flight');

$primary->stop('immediate');
ShortURL::Test::end_session($gate);
is(batches_row('sb1', $sb1)->{last_seq}, $sb1_row->{last_seq},
	'case 4: sb1\'s standby_batches shows no later batch: the held commit never happened');
$offset = ShortURL::Test::log_offset($sb1);
$sb1->promote;
ok(wait_log($sb1, $offset, qr/pg_shorturl: promoted with a batch of clicks in flight: counted here/),
	'case 4: promoted, sb1 logs that it counts its batch in flight itself')
  or diag ShortURL::Test::log_since($sb1, $offset);
ok(ShortURL::Test::wait_served($sb1, 'postgres', 30), 'case 4: a worker serves the promoted sb1 (stats.mode shared)');
is(sql($sb1, 'SELECT pg_is_in_recovery()'), 'f', 'case 4: sb1 is a primary');
check_ledger('case 4', $sb1, \%want_sb1, 'visits');
sql($sb1, 'SELECT shorturl.flush()');
# proves every click made on sb1 is counted exactly once: the batch given
# back and the pending ones flushed into the promoted server's tables
check_ledger('case 4', $sb1, \%want_sb1, 'stored');
is(stat_of($sb1, 'pending_visits'), 0, 'case 4: nothing is left pending on the promoted sb1');
# proves the batch's referrer came back with its click (the leaving
# worker handed it over), and the pending clicks' referrer stayed
is(sql($sb1, q{SELECT string_agg(l.code || ' ' || b.value || ' ' || b.visits, ', ' ORDER BY l.code)
		FROM (VALUES ('r9'), ('r10')) l(code),
		     shorturl.visit_breakdown(l.code, 'referrer', now() - interval '1 day', now() + interval '1 day') b}),
	'r10 pending.example 100, r9 held.example 1',
	'case 4: the promoted sb1\'s breakdowns count the referrers of the batch in flight and of the pending clicks');
is(stat_of($sb1, q{dimension_dropped || ' ' || visitors_dropped}), '0 0',
	'case 4: the promoted sb1 dropped no dimension value');

# ---------------------------------------------------------------------
# No server process died of a signal
# ---------------------------------------------------------------------
for my $n ($primary, $sb1, $sb2, $cas)
{
	my @died = grep { /was terminated by signal/ } split /\n/, ShortURL::Test::log_since($n, 0);
	is(scalar @died, 0, $n->name . ': no process was terminated by a signal') or diag join "\n", @died;
}

$sb1->stop;
done_testing();
