# 018_read_replicas.pl: read replicas count clicks and ship them to the
# primary exactly once.
#
# A primary and two hot standbys (sb1, sb2), each standby preloading
# pg_shorturl and shipping every 200 ms under its shorturl.standby_name.
# 200 links without max_visits (r1 .. r200) and three with exist before
# the standbys are made.  A ledger in this file holds every click served,
# per link and per standby; after each case the primary's visits() of
# every link must equal it exactly, so a click lost or applied twice, or
# applied to the wrong link, shows.
#
# 1. concurrent load: pgbench clicks every r-link on the primary and on
#    both standbys at once (12,000 + 16,000 + 10,000 clicks); once the
#    standbys have nothing unshipped and the primary has flushed, every
#    link has exactly its 190 clicks, its hourly series adds up to them,
#    shorturl.standby_batches has one row per standby (the primary's system
#    identifier, the standby's name) whose visits are that standby's clicks
#    and whose batches are the ones the standby saw acknowledged, and each
#    standby's stats say it shipped exactly its clicks, dropped none, and
#    runs one worker in mode standby; apply_clicks is SECURITY DEFINER and
#    not executable by PUBLIC;
# 2. links with max_visits on the standbys: each visit is claimed on the
#    primary at once (nothing counted on the standby), up to the limit, and
#    link_status() there says what the primary says; six sessions, two on
#    each node, race for a link's 100 visits with 360 tries: exactly 100
#    are served; a session whose claims are cancelled midway (its
#    statement timeout, while the primary's backend is stopped) keeps its
#    one connection to the primary; claim_visit is
#    SECURITY DEFINER and not PUBLIC's;
# 3. a lost acknowledgement: a batch re-sent with an applied seq is a
#    no-op (apply_clicks returns false); then sb1's batch of one click is
#    held in the primary's COMMIT (a deferred constraint trigger on
#    shorturl.standby_batches waits for an advisory lock the test holds)
#    until sb1's worker has timed out (ship_timeout 1 s, ship_failures
#    grows); 500 clicks made meanwhile are unshipped but not taken into a
#    batch (one outstanding at a time: unshipped_visits 501,
#    pending_visits 500); once let go, both batches are applied once
#    each: 501 visits, two batches, not doubled;
# 4. the primary down: sb2 still serves, and its 300 clicks stay
#    unshipped while ship_failures grows; a limited link resolves to NULL
#    and its link_status() is unreachable; once the primary is back (its
#    own flushes held back from then on: flush_interval 1h) they arrive
#    exactly, straight into the tables;
# 5. a clean restart of sb2 with clicks pending (ship_interval 1h): the
#    save file carries exactly them across, and they arrive exactly once
#    ship_interval is 200 ms again;
# 6. clicks with a referrer, country, user agent and visitor on both
#    standbys and the primary: the primary's breakdowns and unique
#    visitors count every one, a visitor seen through both standbys once;
# 7. sb1's worker killed while the primary holds the commit of a batch
#    with analytics: (a) the commit goes through, and the next worker
#    finds the batch applied and drops nothing; (b) the commit fails, the
#    next worker's batch, built again from the clicks, is applied without
#    the values, and each value and visitor either arrived or counts as
#    dropped, the lost ones more than none; (c) as (a), but sb1 is
#    renamed (shorturl.standby_name, a reload) before its worker is
#    killed: the next worker, started under the new name, looks the
#    batch up under the one it went under and finds it applied, so its
#    clicks, values and visitors count once, not twice.
# 8. a reload during an exchange: sb1 ships every hour, and a clean
#    restart's first round sends its restored clicks while the primary's
#    commit of them is held; ship_interval goes back to 200 ms (a reload)
#    while the worker waits for the answer.  The worker must act on the
#    reload once the exchange ends, not an hour later: the wait for the
#    answer once spent the wakeup the reload's signal gave (this made
#    case 5 fail when its reload came during the first round).  Then a
#    fast stop during such an exchange: the worker gives up the wait
#    after a second and leaves, and the batch the primary commits after
#    that counts once.
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

# the links without max_visits, r1 .. r$N_LINKS
my $N_LINKS = 200;

# case 2: race's max_visits, and the tries at it of each of six sessions
my $RACE_MAX = 100;
my $RACE_TRIES = 60;

# the advisory lock the test holds to keep a shipment's commit waiting
my $GATE_KEY = 180018;

# pgbench load of case 1 per node: [clients, transactions per client];
# each transaction clicks every r-link once
my %LOAD = (primary => [ 2, 30 ], sb1 => [ 2, 40 ], sb2 => [ 2, 25 ]);

# max_connections: Cluster.pm's 10 for a streaming primary is too few
# while a held shipment leaves a backend per timed-out attempt waiting
# (case 3) beside pgbench and the polls; its 1MB of shared_buffers is
# tight for as many.  The standbys copy these settings with the backup.
my $primary = ShortURL::Test::node(
	'primary',
	{ init => { allows_streaming => 1 } },
	'max_connections = 40',
	'shared_buffers = 16MB',
	"shorturl.flush_interval = '200ms'",
	"shorturl.purge_interval = '1h'");

# the ledger: per link, the clicks served on any node; per standby, the
# clicks served there
my %want;
my %sent = (sb1 => 0, sb2 => 0);

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

# sql runs SQL in the database postgres of a node and returns its output
sub sql { return $_[0]->safe_psql('postgres', $_[1]); }

# stat_of reads columns of a node's shorturl.stats, joined by |
sub stat_of { return ShortURL::Test::stats($_[0], 'postgres', $_[1]); }

# click resolves each code $n times on a node in one statement, checks
# that every resolve returned the code's URL, and enters them in the ledger.
# resolve() is in the aggregate's FILTER, evaluated once per row of the
# join: in a WHERE clause on c alone the planner would push it down to
# unnest, and call it once per code.
sub click
{
	my ($node, $n, @codes) = @_;
	my $list = join ',', map { "'$_'" } @codes;
	my $served = sql($node, qq{SELECT count(*) FILTER (WHERE shorturl.resolve(c) = 'https://example.com/' || c)
		FROM unnest(ARRAY[$list]) c, generate_series(1, $n) g});

	is($served, $n * @codes, $node->name . ": @codes clicked $n times each, every resolve returned the URL");
	$want{$_} += $n for @codes;
	$sent{ $node->name } += $n * @codes if exists $sent{ $node->name };
}

# batches_row, shipped and ship_figures: ShortURL::Test's, on the primary
sub batches_row { my ($name, $node) = @_; return ShortURL::Test::batches_row($node // $primary, $name); }
sub shipped { return ShortURL::Test::wait_shipped(@_); }
sub ship_figures { return ShortURL::Test::ship_figures(@_); }

# check_ledger compares the primary's count of every link in the ledger
# with it: $how is 'visits' (visits(), unflushed clicks included) or
# 'stored' (the tables only); $codes limits it to some links
sub check_ledger
{
	my ($case, $how, @codes) = @_;
	@codes = sort keys %want unless @codes;
	my $expr = $how eq 'stored' ? ShortURL::Test::stored_expr('l') : 'shorturl.visits(l.code)';
	my %have = map { split /\|/ } split /\n/, sql($primary, "SELECT l.code, $expr FROM shorturl.links l");
	my @bad = map { "$_ wants $want{$_}, has " . ($have{$_} // '(none)') }
	  grep { ($have{$_} // -1) != $want{$_} } @codes;
	my $total = 0;
	$total += $want{$_} for @codes;

	is(scalar @bad, 0, "$case: on the primary ($how) each of " . scalar(@codes)
		  . " links has exactly the clicks it served, $total in all")
	  or diag join "\n", @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ];
}

# make_standby makes a streaming standby of the primary from a backup;
# it ships every 200 ms under its own name
sub make_standby
{
	my ($name, $backup) = @_;
	my $sb = PostgreSQL::Test::Cluster->new($name);

	$sb->init_from_backup($primary, $backup, has_streaming => 1);
	$sb->append_conf('postgresql.conf', join "\n",
		"shorturl.standby_name = '$name'", "shorturl.ship_interval = '200ms'", '');
	$sb->start;
	return $sb;
}

# pause_shipping sets a standby's ship_interval to 1h and returns once a
# click there stays pending: the worker may still make the shipment it had
# scheduled at the old interval, so a probe click is made until one stays
# pending for a second.  The probes count like any other click.
sub pause_shipping
{
	my ($sb, $code) = @_;

	ShortURL::Test::reconfigure($sb, ship_interval => '1h');
	for (1 .. 10)
	{
		click($sb, 1, $code);
		usleep(1_000_000);
		return 1 if stat_of($sb, 'pending_visits') == 1;
		shipped($sb);
	}
	return 0;
}

# ---------------------------------------------------------------------
# Setup: the links, then two standbys
# ---------------------------------------------------------------------
sql($primary, 'CREATE EXTENSION pg_shorturl');
ok(ShortURL::Test::wait_served($primary, 'postgres'), 'a worker serves the primary');
sql($primary, qq{SELECT shorturl.shorten('https://example.com/r' || g, alias => 'r' || g)
	FROM generate_series(1, $N_LINKS) g});
sql($primary, q{SELECT shorturl.shorten('https://example.com/lim', alias => 'lim', max_visits => 5)});
sql($primary, qq{SELECT shorturl.shorten('https://example.com/race', alias => 'race', max_visits => $RACE_MAX)});
sql($primary, q{SELECT shorturl.shorten('https://example.com/lim2', alias => 'lim2', max_visits => 10)});
$want{"r$_"} = 0 for 1 .. $N_LINKS;
$want{$_} = 0 for qw(lim race lim2);

$primary->backup('b');
my $sb1 = make_standby('sb1', 'b');
my $sb2 = make_standby('sb2', 'b');
$primary->wait_for_catchup($_) for $sb1, $sb2;
my $sysid = sql($primary, 'SELECT system_identifier FROM pg_control_system()');

for my $sb ($sb1, $sb2)
{
	my $name = $sb->name;
	is(sql($sb, 'SELECT pg_is_in_recovery()'), 't', "$name is a hot standby");
	# proves the standby's database gets a worker of its own
	ok(ShortURL::Test::wait_until($sb, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'pg_shorturl worker' AND datname = 'postgres'}, 20),
		"$name: one pg_shorturl worker runs in its database postgres");
	is(stat_of($sb, 'mode'), 'standby', "$name: stats.mode is standby");
}

# =====================================================================
# 1. Clicks on the primary and both standbys at once
# =====================================================================
my %node = (primary => $primary, sb1 => $sb1, sb2 => $sb2);
my %bench;
my $since = sql($sb1, 'SELECT now()');
# one statement per transaction clicks every r-link once, and fails
# (division by zero) unless every one of them was served
my $script = "SELECT 1 / (count(*) = $N_LINKS)::int FROM generate_series(1, $N_LINKS) g"
  . " WHERE shorturl.resolve('r' || g) IS NOT NULL;\n";
for my $name (sort keys %LOAD)
{
	my ($clients, $xacts) = @{ $LOAD{$name} };
	$bench{$name} = ShortURL::Test::start_pgbench($node{$name}, 'postgres',
		"--client=$clients --jobs=2 --transactions=$xacts", $script);
}
for my $name (sort keys %LOAD)
{
	my ($clients, $xacts) = @{ $LOAD{$name} };
	my $n = $clients * $xacts;
	my ($rc, $out, $err) = ShortURL::Test::finish_pgbench($bench{$name});
	# proves every click on every node was served (a NULL fails pgbench)
	ok($rc == 0 && $out =~ m{actually processed: $n/$n}, "case 1: pgbench on $name: $n transactions of $N_LINKS clicks, all served")
	  or diag "pgbench on $name: exit $rc\n$out\n$err";
	$want{"r$_"} += $n for 1 .. $N_LINKS;
	$sent{$name} += $n * $N_LINKS if exists $sent{$name};
}
for my $sb ($sb1, $sb2)
{
	# proves the worker ships everything counted on the standby
	ok(shipped($sb), 'case 1: ' . $sb->name . ' has nothing left unshipped') or diag ship_figures($sb);
}
sql($primary, 'SELECT shorturl.flush()');
check_ledger('case 1', 'visits');
# proves the standbys' clicks went into the tables, the primary's flushed
check_ledger('case 1', 'stored');
is(sql($primary, qq{SELECT count(*) FROM shorturl.links l WHERE l.code LIKE 'r%'
	AND (SELECT coalesce(sum(s.visits), 0) FROM shorturl.visit_series(l.code, now() - interval '3 hours',
		now() + interval '1 hour', 'hour') s) <> shorturl.visits(l.code)}), 0,
	'case 1: every link\'s hourly series adds up to its count');
# proves one row per standby, under its identity, with exactly its clicks
is(sql($primary, qq{SELECT string_agg(standby || ' ' || (system_id = $sysid) || ' ' || visits, ', ' ORDER BY standby)
	FROM shorturl.standby_batches}),
	"sb1 true $sent{sb1}, sb2 true $sent{sb2}",
	"case 1: standby_batches: sb1 shipped $sent{sb1} and sb2 $sent{sb2}, under the primary's system identifier");
for my $sb ($sb1, $sb2)
{
	my $name = $sb->name;
	# proves the standby saw acknowledged exactly what the primary applied
	is(stat_of($sb, q{shipped_visits || ' ' || ship_batches || ' ' || unshipped_visits || ' ' || pending_visits
		|| ' ' || standby_dropped}),
		"$sent{$name} " . batches_row($name)->{batches} . ' 0 0 0',
		"case 1: $name: shipped_visits $sent{$name}, ship_batches as many as the primary applied, nothing unshipped, pending or dropped");
	is(stat_of($sb, "last_ship_at >= '$since'"), 't', "case 1: $name: last_ship_at is set, after the clicks began");
	is(stat_of($sb, 'mode'), 'standby', "case 1: $name: stats.mode is still standby");
}
# proves the entry point is guarded: only its owner's rights apply it
sql($primary, 'CREATE ROLE nobody');
is(sql($primary, q{SELECT p.prosecdef || ' ' || has_function_privilege('nobody', p.oid, 'EXECUTE')
	FROM pg_proc p WHERE p.oid = 'shorturl.apply_clicks(bigint, text, bigint, oid, bigint[], timestamptz[], bigint[], bigint[], timestamptz[], bigint[], date[], text[], text[], bigint[], bigint[], bigint[], date[], bigint[])'::regprocedure}),
	'true false', 'case 1: apply_clicks is SECURITY DEFINER, and a role without a grant cannot execute it');

# =====================================================================
# 2. A link with max_visits on a standby
# =====================================================================
my $before = stat_of($sb1, 'pending_visits + unshipped_visits + standby_dropped');
is(sql($sb1, q{SELECT count(*) FILTER (WHERE shorturl.resolve('lim') = 'https://example.com/lim') FROM generate_series(1, 3)}),
	3, 'case 2: sb1 serves lim (max_visits 5) 3 times out of 3');
# proves each visit was claimed on the primary at once, not shipped later
is(sql($primary, q{SELECT shorturl.visits('lim')}), 3, 'case 2: the primary counted the 3 visits at once');
is(stat_of($sb1, 'pending_visits + unshipped_visits + standby_dropped'), $before,
	'case 2: sb1 counted none of them itself: pending, unshipped and dropped unchanged');
is(sql($sb1, q{SELECT shorturl.link_status('lim')}), 'active', 'case 2: link_status(lim) on sb1 is active');
is(sql($sb2, q{SELECT count(*) || ' ' || count(shorturl.resolve('lim')) FROM generate_series(1, 5)}), '5 2',
	'case 2: sb2 serves lim 2 times of 5: the primary\'s total reached 5');
$want{lim} += 5;
# proves link_status asks the primary: sb1 counted nothing of lim
is(sql($sb1, q{SELECT shorturl.link_status('lim')}), 'exhausted', 'case 2: link_status(lim) on sb1 is exhausted, as the primary says');

# two sessions on each node race for race's visits
my %race;
for my $name (sort keys %node)
{
	$race{"$name/$_"} = ShortURL::Test::start_query($node{$name}, 'postgres',
		"SELECT count(shorturl.resolve('race')) FROM generate_series(1, $RACE_TRIES)") for 1 .. 2;
}
my $served = 0;
$served += ShortURL::Test::finish_query($race{$_}) for sort keys %race;
# proves the limit holds across the standbys: none over-served, none short
is($served, $RACE_MAX, 'case 2: of ' . 6 * $RACE_TRIES . " attempts at race (max_visits $RACE_MAX) on three nodes, exactly $RACE_MAX were served");
$want{race} = $RACE_MAX;
is(join(' ', map { sql($_, q{SELECT shorturl.link_status('race')}) } $sb1, $sb2), 'exhausted exhausted',
	'case 2: link_status(race) is exhausted on both standbys');

# a session whose claims keep being cancelled midway keeps its one
# connection to the primary: the next claim reads the cut one's answer to
# its end, rather than logging in again
my $claims_sql = q{SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = 'pg_shorturl claims'};
my $cut = ShortURL::Test::session($sb1, 'postgres');
ShortURL::Test::ask($cut, q{SELECT shorturl.link_status('race')});
ok(ShortURL::Test::wait_until($primary, 'postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'pg_shorturl claims'}, 30),
	'case 2: one session on sb1 has one connection to the primary for its claims');
my $claim_pid = sql($primary, $claims_sql);
# the primary's backend stopped (SIGSTOP), so every claim is cut short by
# the standby session's statement timeout; then let go
kill 'STOP', $claim_pid;
ShortURL::Test::ask($cut, q{SET statement_timeout = '100ms'});
my $cancelled = 0;
for (1 .. 5)
{
	my (undef, $error) = ShortURL::Test::ask($cut, q{SELECT shorturl.resolve('race')});
	$cancelled++ if ($error // '') =~ /^57014/;
}
kill 'CONT', $claim_pid;
ShortURL::Test::ask($cut, q{RESET statement_timeout});
is($cancelled, 5, 'case 2: with the primary\'s backend stopped, 5 resolves of race on sb1 were cancelled midway (statement_timeout 100ms)');
is((ShortURL::Test::ask($cut, q{SELECT shorturl.link_status('race')}))[0], 'exhausted',
	'case 2: ... and the session\'s next claim is answered');
is(sql($primary, $claims_sql), $claim_pid, 'case 2: ... over the same connection to the primary (one backend, the same)');
ShortURL::Test::end_session($cut);

ok(shipped($sb1), 'case 2: sb1 has nothing unshipped');
check_ledger('case 2', 'visits', 'lim', 'race');
# proves the entry point is guarded like apply_clicks
is(sql($primary, q{SELECT p.prosecdef || ' ' || has_function_privilege('nobody', p.oid, 'EXECUTE')
	FROM pg_proc p WHERE p.oid = 'shorturl.claim_visit(bigint, oid, bigint, boolean, boolean)'::regprocedure}),
	'true false', 'case 2: claim_visit is SECURITY DEFINER, and a role without a grant cannot execute it');

# =====================================================================
# 3. A lost acknowledgement
# =====================================================================
# a batch re-sent after it was applied: a no-op
my $row = batches_row('sb1');
my $r1 = sql($primary, q{SELECT shorturl.visits('r1')});
is(sql($primary, qq{SELECT shorturl.apply_clicks($sysid, 'sb1', $row->{last_seq}, 'shorturl.links'::regclass,
	ARRAY[(SELECT id FROM shorturl.links WHERE code = 'r1')], ARRAY[date_trunc('hour', now())],
	ARRAY[1000]::bigint[], ARRAY[0]::bigint[], ARRAY[now()])}), 'f',
	'case 3: apply_clicks of sb1\'s last applied seq again returns false');
is(sql($primary, q{SELECT shorturl.visits('r1')}) . ' ' . join(' ', @{ batches_row('sb1') }{qw(last_seq batches visits)}),
	"$r1 " . join(' ', @$row{qw(last_seq batches visits)}),
	'case 3: ... and changes nothing: visits(r1) and sb1\'s standby_batches row as they were');

ShortURL::Test::reconfigure($sb1, ship_timeout => '1s');
my $held_sql = "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $GATE_KEY AND NOT granted";
my $free_sql = "SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $GATE_KEY";
sql($primary, qq{CREATE FUNCTION public.held_commit() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN PERFORM pg_advisory_xact_lock_shared($GATE_KEY); RETURN NULL; END\$\$;
	CREATE CONSTRAINT TRIGGER held_commit AFTER INSERT OR UPDATE ON shorturl.standby_batches
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.standby = 'sb1')
	EXECUTE FUNCTION public.held_commit()});
my $gate = ShortURL::Test::session($primary, 'postgres');
my (undef, $error) = ShortURL::Test::ask($gate, "SELECT pg_advisory_lock($GATE_KEY)");
is($error, '', 'case 3: the test holds the gate');

$row = batches_row('sb1');
my ($failures0, $acked0, $shipped0) = split /\|/, stat_of($sb1, 'ship_failures, ship_batches, shipped_visits');
my $r1_before = sql($primary, q{SELECT shorturl.visits('r1')});
click($sb1, 1, 'r1');
ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 30),
	'case 3: sb1\'s batch of one click is applied on the primary, its COMMIT held') or diag ship_figures($sb1);
ok(ShortURL::Test::wait_until($sb1, 'postgres', "SELECT ship_failures > $failures0 FROM shorturl.stats", 30),
	'case 3: sb1\'s worker gave up waiting for the answer (ship_failures grew)') or diag ship_figures($sb1);
click($sb1, 100, map { "r$_" } 2 .. 6);
# proves the held batch is not taken as acknowledged
is(stat_of($sb1, 'unshipped_visits'), 501, 'case 3: meanwhile 500 more clicks on sb1: 501 unshipped');
# proves one batch is outstanding at a time: the new clicks wait, not
# taken into a batch (pending_visits leaves out the batch in flight)
is(stat_of($sb1, 'pending_visits'), 500, 'case 3: of them, the 500 new ones are pending, the held one is not');
is(sql($primary, q{SELECT shorturl.visits('r1')}), $r1_before, 'case 3: the held batch is not visible on the primary');
ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 5), 'case 3: the first apply is still held');

ShortURL::Test::ask($gate, "SELECT pg_advisory_unlock($GATE_KEY)");
ShortURL::Test::end_session($gate);
ok(ShortURL::Test::wait_until($primary, 'postgres', $free_sql, 30), 'case 3: the held commit is over once let go');
ok(shipped($sb1), 'case 3: sb1 has nothing left unshipped') or diag ship_figures($sb1);
my $after = batches_row('sb1');
# proves the held batch was applied once, though sent more than once
is(($after->{visits} - $row->{visits}) . ' ' . ($after->{batches} - $row->{batches}), '501 2',
	'case 3: standby_batches: sb1\'s visits grew by exactly 501, in exactly 2 batches');
cmp_ok($after->{last_seq}, '>', $row->{last_seq}, 'case 3: sb1\'s last_seq advanced');
my ($acked, $shipped_now) = split /\|/, stat_of($sb1, 'ship_batches, shipped_visits');
is(($acked - $acked0) . ' ' . ($shipped_now - $shipped0), '2 501',
	'case 3: sb1 saw 2 batches and 501 clicks acknowledged');
check_ledger('case 3', 'visits');
sql($primary, 'DROP FUNCTION public.held_commit() CASCADE');

# =====================================================================
# 4. The primary down
# =====================================================================
ok(shipped($sb2), 'case 4: sb2 has nothing unshipped before the primary stops');
$row = batches_row('sb2');
$failures0 = stat_of($sb2, 'ship_failures');
$primary->stop('fast');
click($sb2, 100, 'r6', 'r7', 'r8');
ok(ShortURL::Test::wait_until($sb2, 'postgres', "SELECT ship_failures > $failures0 FROM shorturl.stats", 30),
	'case 4: sb2\'s worker fails to ship (ship_failures grew)') or diag ship_figures($sb2);
# proves nothing is taken as shipped while the primary is away
is(stat_of($sb2, 'unshipped_visits'), 300, 'case 4: sb2\'s 300 clicks are unshipped');
# proves a limited link cannot be served without the primary, and says why
is(sql($sb2, q{SELECT (shorturl.resolve('lim2') IS NULL) || ' ' || shorturl.link_status('lim2')}), 'true unreachable',
	'case 4: sb2 resolves lim2 (max_visits 10) to NULL, and link_status says unreachable');
# the primary comes back with its own flushes held back, so that what its
# tables hold next came from apply_clicks alone
$primary->append_conf('postgresql.conf', "shorturl.flush_interval = '1h'\n");
$primary->start;
ok(shipped($sb2, 60), 'case 4: once the primary is back, sb2 has nothing unshipped') or diag ship_figures($sb2);
is(sql($sb2, q{SELECT shorturl.resolve('lim2')}), 'https://example.com/lim2', 'case 4: ... and serves lim2 again');
$want{lim2} += 1;
is(batches_row('sb2')->{visits} - $row->{visits}, 300, 'case 4: standby_batches: sb2\'s visits grew by exactly 300');
# proves the clicks went straight into the tables, with no flush
check_ledger('case 4', 'stored', 'r6', 'r7', 'r8');
check_ledger('case 4', 'visits');

# =====================================================================
# 5. A clean restart of a standby with clicks pending
# =====================================================================
$row = batches_row('sb2');
my $probes = $want{r9};
ok(pause_shipping($sb2, 'r9'), 'case 5: with ship_interval 1h a click on sb2 stays pending');
$probes = $want{r9} - $probes;
click($sb2, 100, 'r9', 'r10');
# the last probe and the 200 (the probes before it were shipped)
my $pending = 201;
is(stat_of($sb2, q{pending_visits || ' ' || unshipped_visits}), "$pending $pending",
	"case 5: $pending clicks are pending on sb2");
my $offset = ShortURL::Test::log_offset($sb2);
$sb2->restart;
# proves the postmaster saved them at the shutdown and restored them
like(join("\n", ShortURL::Test::restore_lines($sb2, $offset)), qr/^pg_shorturl: restored $pending unflushed visits/,
	"case 5: the restart of sb2 restored exactly the $pending pending clicks");
# proves the pending clicks survived the restart: each is still unshipped
# or has been shipped by the new worker
ok(ShortURL::Test::wait_until($sb2, 'postgres',
		"SELECT unshipped_visits + shipped_visits = $pending FROM shorturl.stats", 10),
	"case 5: after the restart sb2 accounts for the $pending clicks (unshipped or shipped since)")
  or diag ship_figures($sb2);
ShortURL::Test::reconfigure($sb2, ship_interval => '200ms');
ok(shipped($sb2), 'case 5: with ship_interval 200ms again, sb2 has nothing unshipped') or diag ship_figures($sb2);
my $grown = batches_row('sb2')->{visits} - $row->{visits};
is($grown, $probes + 200, 'case 5: standby_batches: sb2\'s visits grew by exactly the clicks made since, ' . ($probes + 200));
check_ledger('case 5', 'visits');

# =====================================================================
# 6. The standbys' analytics reach the primary with their clicks
# =====================================================================
# clicks with a referrer, a country, a user agent and a visitor on both
# standbys and on the primary; visitors v41 .. v60 visit through both
my %ua = (
	desktop => 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0',
	mobile => 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1');
sub click_with_facts
{
	my ($node, $from, $to, $referrer, $country, $device, $visitor) = @_;
	my $agent = $device ? "'$ua{$device}'" : 'NULL';
	my $served = sql($node, qq{SELECT count(*) FILTER (WHERE shorturl.resolve('r11', NULL,
			referrer => '$referrer', country => '$country', user_agent => $agent,
			visitor => '$visitor' || g) = 'https://example.com/r11')
		FROM generate_series($from, $to) g});
	is($served, $to - $from + 1, 'case 6: ' . $node->name . " served r11 with its facts $served times");
	$want{r11} += $served;
}
click_with_facts($sb1, 1, 60, 'https://news.example/a', 'DE', 'desktop', 'v');
click_with_facts($sb2, 41, 100, 'https://blog.example/b?x=1', 'FR', 'mobile', 'v');
click_with_facts($primary, 1, 10, 'https://news.example/c', 'DE', undef, 'p');
# (a click's values may follow its count in the next batch: they count as
# pending on the standby until the primary has them)
ok(ShortURL::Test::wait_until($_, 'postgres', q{SELECT unshipped_visits = 0 AND pending_dimension_values = 0
		AND pending_visitors = 0 FROM shorturl.stats}, 30),
	'case 6: ' . $_->name . ' has no click, dimension value or visitor unshipped') or diag ship_figures($_)
  for $sb1, $sb2;
# the primary's flushes are held back since case 4: one writes all now
sql($primary, 'SELECT shorturl.flush()');
my $range = q{now() - interval '1 day', now() + interval '1 day'};
# proves every standby's value reached the primary's breakdowns, exactly
is(sql($primary, qq{SELECT string_agg(value || ' ' || visits, ', ' ORDER BY value)
		FROM shorturl.visit_breakdown('r11', 'referrer', $range)}),
	'blog.example 60, news.example 70', 'case 6: the primary\'s referrers of r11 count the standbys\' clicks');
is(sql($primary, qq{SELECT string_agg(value || ' ' || visits, ', ' ORDER BY value)
		FROM shorturl.visit_breakdown('r11', 'country', $range)}),
	'DE 70, FR 60', 'case 6: ... and its countries');
is(sql($primary, qq{SELECT string_agg(value || ' ' || visits, ', ' ORDER BY value)
		FROM shorturl.visit_breakdown('r11', 'device', $range)}),
	'desktop 60, mobile 60, unknown 10', 'case 6: ... and its devices (the primary\'s clicks had no user agent)');
# proves the visitors were merged: 100 through the standbys (20 of them
# through both), 10 on the primary; exact below the sketch's sparse limit
is(sql($primary, qq{SELECT shorturl.unique_visitors('r11', $range)}), 110,
	'case 6: the primary counts 110 unique visitors of r11, a visitor of both standbys once');
is(sql($_, q{SELECT dimension_dropped || ' ' || visitors_dropped FROM shorturl.stats}), '0 0',
	'case 6: ' . $_->name . ' dropped no dimension value and no visitor') for $sb1, $sb2;
check_ledger('case 6', 'visits');

# =====================================================================
# 7. A worker that dies with a batch of analytics in flight
# =====================================================================
# the primary holds the COMMIT of sb1's applies (as in case 3) and, the
# first time once let go, fails it when told to; sb1 waits for an answer
# long enough that the next worker's apply is answered whatever the load
# (a worker stopping waits a second at most)
ShortURL::Test::reconfigure($sb1, ship_timeout => '30s');
sql($primary, qq{CREATE SEQUENCE public.gate_fails;
	CREATE TABLE public.gate_mode (fail boolean NOT NULL);
	INSERT INTO public.gate_mode VALUES (false);
	CREATE FUNCTION public.held_commit() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM pg_advisory_xact_lock_shared($GATE_KEY);
		IF (SELECT fail FROM public.gate_mode) AND nextval('public.gate_fails') = 1 THEN
			RAISE EXCEPTION 'the test refuses this batch';
		END IF;
		RETURN NULL;
	END\$\$;
	CREATE CONSTRAINT TRIGGER held_commit AFTER INSERT OR UPDATE ON shorturl.standby_batches
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.standby = 'sb1')
	EXECUTE FUNCTION public.held_commit()});
$primary->wait_for_catchup($sb1);

# held_batch clicks $code on sb1 with all facts while the gate holds the
# primary's commit of the batch, renames sb1 if asked, kills sb1's worker,
# waits for the next one, then lets the commit go; returns sb1's dropped
# figures before
sub held_batch
{
	my ($case, $code, $n, $referrer, $rename) = @_;
	my $before = stat_of($sb1, q{dimension_dropped || ' ' || visitors_dropped});
	my $gate = ShortURL::Test::session($primary, 'postgres');
	ShortURL::Test::ask($gate, "SELECT pg_advisory_lock($GATE_KEY)");
	my $served = sql($sb1, qq{SELECT count(*) FILTER (WHERE shorturl.resolve('$code', NULL,
			referrer => '$referrer', country => 'NL', user_agent => '$ua{desktop}',
			visitor => 'w' || g) = 'https://example.com/$code')
		FROM generate_series(1, $n) g});
	is($served, $n, "$case: sb1 served $code with its facts $n times");
	$want{$code} += $served;
	ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 30),
		"$case: sb1's batch is applied on the primary, its COMMIT held") or diag ship_figures($sb1);
	if ($rename)
	{
		# a new backend has the postmaster's settings, as the next worker will
		$sb1->append_conf('postgresql.conf', "shorturl.standby_name = '$rename'\n");
		$sb1->reload;
		ok(ShortURL::Test::wait_until($sb1, 'postgres',
				"SELECT current_setting('shorturl.standby_name') = '$rename'", 30),
			"$case: sb1 is renamed $rename, its batch in flight under sb1");
	}
	my ($old) = ShortURL::Test::worker_pids($sb1, 'postgres');
	sql($sb1, "SELECT pg_terminate_backend($old)");
	my $t0 = time;
	ok(ShortURL::Test::wait_until($sb1, 'postgres',
			"SELECT worker_pid IS NOT NULL AND worker_pid <> $old FROM shorturl.stats", 30),
		"$case: sb1's worker was killed, and another serves sb1") or diag ship_figures($sb1);
	# (a worker told to stop gives up a held exchange after a second, not
	# after ship_timeout's 30 s: no bound asserted, the time is shown)
	note(sprintf('%s: the next worker served sb1 %.1f s after the kill', $case, time - $t0));
	ShortURL::Test::ask($gate, "SELECT pg_advisory_unlock($GATE_KEY)");
	ShortURL::Test::end_session($gate);
	ok(ShortURL::Test::wait_until($sb1, 'postgres', q{SELECT unshipped_visits = 0 AND pending_dimension_values = 0
			AND pending_visitors = 0 FROM shorturl.stats}, 60),
		"$case: sb1 has nothing unshipped") or diag ship_figures($sb1);
	sql($primary, 'SELECT shorturl.flush()');
	return split / /, $before;
}

# applied_once checks that the primary has a held batch's referrers and
# visitors ($n clicks from host $host, each visitor new) once, and that sb1
# counts nothing dropped since its figures before, ($dims0, $visitors0)
sub applied_once
{
	my ($case, $code, $host, $n, $dims0, $visitors0) = @_;
	is(sql($primary, qq{SELECT string_agg(value || ' ' || visits, ', ' ORDER BY value)
			FROM shorturl.visit_breakdown('$code', 'referrer', $range)}) . ' / '
		  . sql($primary, qq{SELECT shorturl.unique_visitors('$code', $range)}),
		"$host $n / $n", "$case: the primary has the batch's referrers and visitors once");
	is(stat_of($sb1, q{dimension_dropped || ' ' || visitors_dropped}), "$dims0 $visitors0",
		"$case: sb1 counts nothing dropped");
}

# a. the primary applies the batch: the next worker finds it applied, and
# nothing of it is lost
applied_once('case 7a', 'r12', 'a.example', 5, held_batch('case 7a', 'r12', 5, 'https://a.example/x'));

# b. the primary refuses the batch: the next worker's, built again from
# the clicks, is applied without the values, which count as dropped; the
# values and visitors either arrived or count as dropped, each exactly
sql($primary, 'UPDATE public.gate_mode SET fail = true');
$primary->wait_for_catchup($sb1);
my ($dims0, $visitors0) = held_batch('case 7b', 'r13', 7, 'https://b.example/y');
my ($dims1, $visitors1) = split / /, stat_of($sb1, q{dimension_dropped || ' ' || visitors_dropped});
my $arrived = sql($primary, qq{SELECT coalesce(sum(b.visits), 0) FROM unnest(ARRAY['referrer', 'country', 'device']) d,
	shorturl.visit_breakdown('r13', d, $range) b});
my $arrived_visitors = sql($primary, qq{SELECT shorturl.unique_visitors('r13', $range)});
my @refused = grep { /ERROR:\s+the test refuses this batch/ } split /\n/, ShortURL::Test::log_since($primary, 0);
is(scalar @refused, 1, 'case 7b: the primary refused one apply');
cmp_ok($dims1 - $dims0, '>', 0, 'case 7b: sb1 counts the lost batch\'s values dropped: ' . ($dims1 - $dims0));
is(($dims1 - $dims0 + $arrived) . ' ' . ($visitors1 - $visitors0 + $arrived_visitors), '21 7',
	'case 7b: of the 21 values (7 clicks, three dimensions) and 7 visitors each either arrived or counts as dropped');

# c. as a, with sb1 renamed before its worker is killed
sql($primary, 'UPDATE public.gate_mode SET fail = false');
$primary->wait_for_catchup($sb1);
applied_once('case 7c', 'r14', 'c.example', 6,
	held_batch('case 7c', 'r14', 6, 'https://c.example/z', 'sb1_renamed'));
is(sql($primary, q{SELECT count(*) FROM shorturl.standby_batches WHERE standby = 'sb1_renamed' AND visits > 0}), '0',
	'case 7c: nothing was shipped again under the new name');
check_ledger('case 7', 'visits');

# =====================================================================
# 8. A reload during an exchange
# =====================================================================
$sb1->append_conf('postgresql.conf', "shorturl.standby_name = 'sb1'\n");
$sb1->reload;
ok(pause_shipping($sb1, 'r15'), 'case 8: with ship_interval 1h a click on sb1 stays pending');
click($sb1, 20, 'r15');
is(stat_of($sb1, 'unshipped_visits'), 21, 'case 8: 21 clicks are unshipped on sb1');
$gate = ShortURL::Test::session($primary, 'postgres');
ShortURL::Test::ask($gate, "SELECT pg_advisory_lock($GATE_KEY)");
$sb1->restart;
ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 30),
	'case 8: the first round after the restart sent the clicks, the primary\'s COMMIT is held')
  or diag ship_figures($sb1);
ShortURL::Test::reconfigure($sb1, ship_interval => '200ms');
ok(ShortURL::Test::wait_until($sb1, 'postgres', "SELECT current_setting('shorturl.ship_interval') = '200ms'", 30),
	'case 8: ship_interval is 200ms again, while the worker waits for the answer');
ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 1),
	'case 8: the COMMIT is still held after the reload');
ShortURL::Test::ask($gate, "SELECT pg_advisory_unlock($GATE_KEY)");
ShortURL::Test::end_session($gate);
ok(shipped($sb1), 'case 8: once answered, the batch is settled at 200 ms, not after the hour')
  or diag ship_figures($sb1);

# the same exchange, and a fast stop of sb1 while it waits
ok(pause_shipping($sb1, 'r16'), 'case 8: with ship_interval 1h again a click on sb1 stays pending');
click($sb1, 10, 'r16');
ShortURL::Test::ask($gate = ShortURL::Test::session($primary, 'postgres'), "SELECT pg_advisory_lock($GATE_KEY)");
$sb1->restart;
ok(ShortURL::Test::wait_until($primary, 'postgres', $held_sql, 30),
	'case 8: again the first round after the restart sent the clicks, the COMMIT is held')
  or diag ship_figures($sb1);
my $t0 = time;
ok(eval { $sb1->stop('fast'); 1 }, 'case 8: sb1 stops while its worker waits for the answer');
note(sprintf('case 8: the fast stop took %.1f s', time - $t0));
ShortURL::Test::ask($gate, "SELECT pg_advisory_unlock($GATE_KEY)");
ShortURL::Test::end_session($gate);
$sb1->start;
ShortURL::Test::reconfigure($sb1, ship_interval => '200ms');
ok(shipped($sb1), 'case 8: after the restart sb1 has nothing unshipped') or diag ship_figures($sb1);
check_ledger('case 8', 'visits', 'r15', 'r16');
sql($primary, 'DROP FUNCTION public.held_commit() CASCADE; DROP TABLE public.gate_mode; DROP SEQUENCE public.gate_fails');

# ---------------------------------------------------------------------
# No server process died of a signal
# ---------------------------------------------------------------------
for my $n ($primary, $sb1, $sb2)
{
	my @died = grep { /was terminated by signal/ } split /\n/, ShortURL::Test::log_since($n, 0);
	is(scalar @died, 0, $n->name . ': no process was terminated by a signal') or diag join "\n", @died;
}

$sb1->stop;
$sb2->stop;
$primary->stop;
done_testing();
