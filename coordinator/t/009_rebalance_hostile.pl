# 009_rebalance_hostile.pl: a rebalance interrupted where 008 does not
# interrupt it, and used meanwhile as a user would.
#
# 008 terminates a rebalance while the new shard commits a batch's copy.
# Here the copy's commit, or the old shard's commit of step 3, is held
# (a deferred constraint trigger there waits for an advisory lock the test
# holds, so it waits exactly as long as the test wants, not a fixed time),
# and the rebalance is stopped there in other ways:
#
# 1. cancelled (pg_cancel_backend, SIGINT) while the new shard (charlie)
#    commits the copy: the copies and their copied_links rows are there,
#    the journal has nothing, the cancelled session is still connected.
#    A link of the batch is clicked on its old shard meanwhile.  A
#    rebalance started from another session (cron, a second psql) must
#    run, the cancelled one no longer does; it finishes the move with
#    every count exact and nothing left behind;
# 2. the same with statement_timeout firing in the held commit (a 4th
#    shard, delta), the rerun in the same session;
# 3. terminated while the old shard (bravo) commits step 3 (move_out): its
#    links are gone there and their final counts in moved_links, the
#    journal has the batch; a moving link is clicked through the
#    coordinator meanwhile, and another on bravo directly for 15 s: its
#    counter's fence must refuse it while move_out's commit is held, though
#    that is longer than the 10 s the fence lasts after a commit; the rerun
#    finishes the move with every click served counted;
# 4. (in case 1's window) a link of the half-moved batch, clicked on
#    alpha like the other, deleted through the coordinator: it must be
#    gone, now and after the rerun; another disabled: it must not be
#    served from the copy its old shard still has;
# 5. cancelled in the new shard's commit of the copy (delta), then the
#    operator puts the weight back: the rerun takes the copies back off
#    delta and must leave no copied_links row there; the weight raised
#    again, the links move to delta with exactly their counts and series.
#
# After each rerun: every link on exactly one shard, its owner, with
# exactly the clicks it served (visits() on the shards and through the
# coordinator), each link's series adding up to its count, no journal,
# moved_links, arrived_links or copied_links row left, no rebalance due.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

my $n_links = 300;
my $gate_key = 90009;
my @conf = ("shorturl.flush_interval = '200ms'", "shorturl.purge_interval = '1h'");

my %node = map { $_ => ShortURL::Test::shard($_, @conf) } qw(alpha bravo charlie delta);
my %shard = map { $_ => $node{$_} } qw(alpha bravo);    # the cluster's shards
my $coord = ShortURL::Test::coordinator('coord');

# Bugs this test found, all fixed: A (a cancelled run kept running_pid and
# refused every other session's) and B (a link deleted while its batch was
# half moved came back) in pg_shorturl_coordinator 0.11; C (move_out()'s
# fence ended 10 s after it took the clicks, though its commit was still
# held) in the core library (README "Rebalancing"); D (a copied_links row
# a copy left behind) in pg_shorturl 0.12 (case 5).

sub co { return $coord->safe_psql('postgres', $_[0]); }
sub co_error { return ShortURL::Test::sql_error($coord, 'postgres', $_[0]); }
sub on { return $node{ $_[0] }->safe_psql('postgres', $_[1]); }

# ---------------------------------------------------------------------
# Holding a commit: a deferred constraint trigger on a shard's table waits,
# in the commit of any transaction that inserted there, for the advisory
# lock the test's gate session holds
# ---------------------------------------------------------------------
my $held_sql = "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $gate_key AND NOT granted";
my $free_sql = "SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $gate_key";

sub hold_commits
{
	my ($name, $table) = @_;
	on($name, qq{CREATE FUNCTION public.held_commit() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN PERFORM pg_advisory_xact_lock_shared($gate_key); RETURN NULL; END\$\$;
		CREATE CONSTRAINT TRIGGER held_commit AFTER INSERT ON $table
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.held_commit()});
	my $gate = ShortURL::Test::session($node{$name}, 'postgres');
	my (undef, $error) = ShortURL::Test::ask($gate, "SELECT pg_advisory_lock($gate_key)");
	die "the gate on $name: $error" if $error ne '';
	return $gate;
}

# release_commits lets the held commit go, waits until it is over, and
# drops the trigger
sub release_commits
{
	my ($name, $gate) = @_;
	ShortURL::Test::ask($gate, "SELECT pg_advisory_unlock($gate_key)");
	ShortURL::Test::end_session($gate);
	my $over = ShortURL::Test::wait_until($node{$name}, 'postgres', $free_sql, 30);
	on($name, 'DROP FUNCTION public.held_commit() CASCADE');
	return $over;
}

# click_on clicks a link on a shard directly (a client routed there);
# returns whether it was served, and if so records the click
sub click_on
{
	my ($name, $code) = @_;
	my $served = on($name, "SELECT shorturl.resolve('$code') IS NOT NULL") eq 't';
	co(qq{INSERT INTO clicks VALUES ('$code')}) if $served;
	return $served;
}

# click clicks a link through the coordinator; returns whether it was served
sub click
{
	my ($code) = @_;
	return co(qq{WITH c AS (INSERT INTO clicks SELECT '$code' WHERE shorturl.resolve('$code', NULL) IS NOT NULL
		RETURNING 1) SELECT count(*) FROM c}) eq '1';
}

# stored_on is a link's flushed count on a shard
sub stored_on
{
	my ($name, $code) = @_;
	return on($name, qq{SELECT coalesce((SELECT c.visits FROM shorturl.visit_counts c JOIN shorturl.links l
		ON l.id = c.link_id WHERE l.code = '$code'), -1)});
}

sub leftovers
{
	return join ', ', 'journal ' . co('SELECT count(*) FROM shorturl.rebalance_moves'),
	  map { "$_ " . on($_, q{SELECT (SELECT count(*) FROM shorturl.moved_links) || '/'
		|| (SELECT count(*) FROM shorturl.arrived_links) || '/' || (SELECT count(*) FROM shorturl.copied_links)}) }
	  sort keys %shard;
}

sub no_leftovers { return join ', ', 'journal 0', map { "$_ 0/0/0" } sort keys %shard; }

sub show
{
	my ($what, $list) = @_;
	diag("$what: " . join(', ', @$list[ 0 .. ($#$list < 9 ? $#$list : 9) ])) if @$list;
}

# check_cluster: after a rerun, every link of made but those deleted (gone)
# on exactly one shard, its owner, with exactly its clicks (those in apart
# are checked by the case itself), every series adding up, nothing left
sub check_cluster
{
	my ($case, %opt) = @_;
	my %gone = map { $_ => 1 } @{ $opt{gone} // [] };
	my %apart = map { $_ => 1 } @{ $opt{apart} // [] };
	on($_, 'SELECT shorturl.flush()') for sort keys %shard;
	my $census = ShortURL::Test::census(%shard);
	my %want = map { split /\|/ } split /\n/,
	  co('SELECT m.code, count(c.code) FROM made m LEFT JOIN clicks c USING (code) GROUP BY m.code');
	my %via = map { split /\|/ } split /\n/,
	  co(q{SELECT m.code, coalesce(shorturl.visits(m.code)::text, 'null') FROM made m});
	my %owner = map { split /\|/ } split /\n/, co('SELECT m.code, shorturl.route(m.code) FROM made m');
	my @codes = grep { !$gone{$_} && !$apart{$_} } sort keys %want;
	my @bad;

	@bad = map { "$_ wants $want{$_}, has " . ($census->{visits}{$_} // '(none)') }
	  grep { ($census->{visits}{$_} // -1) != $want{$_} } @codes;
	is(scalar @bad, 0, "$case: on the shards, every link has exactly the clicks it served");
	show('on the shards', \@bad);
	@bad = map { "$_ wants $want{$_}, visits() says $via{$_}" } grep { $via{$_} ne $want{$_} } @codes;
	is(scalar @bad, 0, "$case: visits() through the coordinator says the same");
	show('through the coordinator', \@bad);
	is(scalar @{ $census->{dups} }, 0, "$case: no link is on two shards");
	show('on two shards', $census->{dups});
	@bad = map { "$_ on " . ($census->{where}{$_} // '(none)') . ", owner $owner{$_}" }
	  grep { ($census->{where}{$_} // '') ne $owner{$_} } @codes, sort keys %apart;
	is(scalar @bad, 0, "$case: every link is on its owner, none is lost");
	show('astray', \@bad);
	my $gone_list = join ',', map { "'$_'" } sort keys %gone;
	my $skip = $gone_list eq '' ? '' : " AND l.code NOT IN ($gone_list)";
	is(join(' ', map { "$_=" . on($_, qq{SELECT count(*) FROM shorturl.links l
		WHERE (SELECT coalesce(sum(s.visits), 0) FROM shorturl.visit_series(l.code, now() - interval '2 days',
			now() + interval '1 day', 'day') s) <> shorturl.visits(l.code)$skip}) } sort keys %shard),
		join(' ', map { "$_=0" } sort keys %shard), "$case: on every shard, each link's series adds up to its count");
	is(leftovers(), no_leftovers(), "$case: no journal, moved, arrived or copied row is left");
	is(co('SELECT pending, running_pid IS NULL FROM shorturl.rebalance_state'), 'f|t',
		"$case: no rebalance is due or running");
	return ($census, \%want);
}

# ---------------------------------------------------------------------
# Two shards, 300 links, each clicked once through the coordinator
# ---------------------------------------------------------------------
my $t0 = time;
ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_} ] } sort keys %shard);
co('SET client_min_messages = warning; CALL shorturl.rebalance()');
co(qq{CREATE TABLE made AS SELECT g, shorturl.shorten('https://example.com/h/' || g) AS code
	FROM generate_series(1, $n_links) g});
co(q{CREATE TABLE clicks (code text COLLATE "C" NOT NULL)});
co(q{INSERT INTO clicks SELECT code FROM made WHERE shorturl.resolve(code, NULL) IS NOT NULL});
is(co('SELECT count(*) FROM clicks'), $n_links, "$n_links links made and clicked");

# ---------------------------------------------------------------------
# 1. Cancelled while the new shard commits the copy
# ---------------------------------------------------------------------
$shard{charlie} = $node{charlie};
ShortURL::Test::add_shards($coord, 'postgres', [ 'charlie', $node{charlie} ]);
# two links of the first batch (alpha -> charlie): one clicked on alpha
# meanwhile, one deleted through the coordinator (case 4)
my ($m1, $deleted, $disabled) = split /\n/, co(q{SELECT m.code FROM made m WHERE shorturl.route(m.code) = 'charlie'
	AND EXISTS (SELECT FROM shorturl_remote.alpha_links l WHERE l.code = m.code) ORDER BY m.g LIMIT 3});
# the links picked for later cases are ones a click can be served for: not
# these two (a pick that was the disabled link failed its click at random)
my $servable = "m.code NOT IN ('$deleted', '$disabled')";
my $gate = hold_commits('charlie', 'shorturl.links');
my $run = ShortURL::Test::session($coord, 'postgres');
my ($pid) = ShortURL::Test::ask($run, 'SET client_min_messages = warning; SELECT pg_backend_pid()');
ShortURL::Test::send_sql($run, 'CALL shorturl.rebalance(1000)');
ok(ShortURL::Test::wait_until($node{charlie}, 'postgres', $held_sql, 60),
	'case 1: the copy into charlie is committing, held there');
like(co_error("SET lock_timeout = '5s'; CALL shorturl.rebalance(1000)"),
	qr/^55006: a rebalance is already running \(pid $pid\)/,
	'case 1: meanwhile a rebalance from another session is refused (55006)');
ok(click_on('alpha', $m1), 'case 1: a moving link clicked on alpha, its old shard, meanwhile');
click_on('alpha', $deleted);
co("SELECT pg_cancel_backend($pid)");
my ($out, $error) = ShortURL::Test::answer($run, 30);
is($error, '57014: canceling statement due to user request', 'case 1: the rebalance was cancelled (57014)');
ok(release_commits('charlie', $gate), 'case 1: charlie\'s commit is over once let go');
my $copies = on('charlie', 'SELECT count(*) FROM shorturl.links');
cmp_ok($copies, '>', 0, "case 1: charlie has the batch's copies ($copies)");
is(on('charlie', 'SELECT count(*) FROM shorturl.copied_links'), $copies, 'case 1: ... and what each carried');
is(co('SELECT count(*) FROM shorturl.rebalance_moves'), 0, 'case 1: the coordinator journaled none of them');
ok(ShortURL::Test::wait_until($node{alpha}, 'postgres',
	qq{SELECT c.visits = 2 FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
	   WHERE l.code = '$m1'}), 'case 1: alpha flushed the click made meanwhile');
is((ShortURL::Test::ask($run, 'SELECT 1'))[0], '1', 'case 1: the cancelled session is still connected, idle');

# 4. a user deletes a link of the half-moved batch through the coordinator
is(co("SELECT shorturl.delete_link('$deleted')"), 't', 'case 4: a link of the half-moved batch deleted through the coordinator');
is(co("SELECT shorturl.link_status('$deleted')"), 'unknown', 'case 4: ... it is unknown to the coordinator at once');
is(join(' ', map { "$_=" . on($_, "SELECT count(*) FROM shorturl.links WHERE code = '$deleted'") } qw(alpha charlie)),
	'alpha=0 charlie=0', 'case 4: ... and gone from both its old shard and its copy\'s');
# another is disabled: its owner (charlie) has it, so its old shard's copy
# must not serve it either
is(co("SELECT shorturl.disable_link('$disabled', 'abuse report')"), 't',
	'case 4: another link of the half-moved batch disabled through the coordinator');
is(co("SELECT concat_ws('|', coalesce(shorturl.resolve('$disabled', NULL), 'null'),
	coalesce(shorturl.resolve('$disabled'), 'null'), shorturl.link_status('$disabled'))"), 'null|null|disabled',
	'case 4: ... it is not served, with or without a domain, and link_status() says disabled');

# the rerun from another session, while the cancelled one stays connected
$error = co_error('SET client_min_messages = warning; CALL shorturl.rebalance(1000)');
is($error, '', 'case 1: a rebalance from another session runs: the cancelled one no longer does');
if ($error ne '')
{
	diag("rerun from another session: $error; rerunning in the cancelled session");
	(undef, $error) = ShortURL::Test::ask($run, 'CALL shorturl.rebalance(1000)', 120);
	die "the rerun in the cancelled session failed too: $error" if $error ne '';
}
ShortURL::Test::end_session($run);
my ($census, $want) = check_cluster('case 1', gone => [$deleted]);
is($census->{visits}{$m1}, 2, 'case 1: the link clicked on alpha meanwhile has its 2 clicks');
is(($census->{where}{$disabled} // '(none)') . '|' . co("SELECT concat_ws('|', coalesce(shorturl.resolve('$disabled', NULL), 'null'),
	shorturl.link_status('$disabled'))"), 'charlie|null|disabled', 'case 4: after the rerun the disabled link is on charlie, disabled');
is(($census->{where}{$deleted} // '(none)') . ' ' . co("SELECT shorturl.link_status('$deleted')"), '(none) unknown',
	'case 4: after the rerun the deleted link is on no shard, unknown')
  or diag("case 4: the deleted link is back on $census->{where}{$deleted} with $census->{visits}{$deleted} visits"
	. " (it served $want->{$deleted} clicks, one on alpha after the copy)");

# ---------------------------------------------------------------------
# 2. statement_timeout fires while the new shard commits the copy
# ---------------------------------------------------------------------
$shard{delta} = $node{delta};
ShortURL::Test::add_shards($coord, 'postgres', [ 'delta', $node{delta} ]);
my $m2 = co(qq{SELECT m.code FROM made m WHERE $servable AND shorturl.route(m.code) = 'delta'
	AND EXISTS (SELECT FROM shorturl_remote.alpha_links l WHERE l.code = m.code) ORDER BY m.g LIMIT 1});
my $m2_before = $want->{$m2};
$gate = hold_commits('delta', 'shorturl.links');
$run = ShortURL::Test::session($coord, 'postgres');
ShortURL::Test::ask($run, q{SET client_min_messages = warning; SET statement_timeout = '5s'});
my $sent = time;
ShortURL::Test::send_sql($run, 'CALL shorturl.rebalance(1000)');
ok(ShortURL::Test::wait_until($node{delta}, 'postgres', $held_sql, 60),
	'case 2: the copy into delta is committing, held there');
note(sprintf('case 2: the copy reached its commit %.1f s after the CALL', time - $sent));
ok(click_on('alpha', $m2), 'case 2: a moving link clicked on alpha, its old shard, meanwhile');
($out, $error) = ShortURL::Test::answer($run, 60);
is($error, '57014: canceling statement due to statement timeout', 'case 2: statement_timeout stopped the rebalance (57014)');
is(on('delta', $held_sql), 't', 'case 2: ... while delta\'s commit of the copy was still held');
ok(release_commits('delta', $gate), 'case 2: delta\'s commit is over once let go');
$copies = on('delta', 'SELECT count(*) FROM shorturl.links');
cmp_ok($copies, '>', 0, "case 2: delta has the batch's copies ($copies)");
is(on('delta', 'SELECT count(*) FROM shorturl.copied_links'), $copies, 'case 2: ... and what each carried');
is(co('SELECT count(*) FROM shorturl.rebalance_moves'), 0, 'case 2: the coordinator journaled none of them');
ok(ShortURL::Test::wait_until($node{alpha}, 'postgres',
	qq{SELECT c.visits = @{[ $m2_before + 1 ]} FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
	   WHERE l.code = '$m2'}), 'case 2: alpha flushed the click made meanwhile');
(undef, $error) = ShortURL::Test::ask($run, 'SET statement_timeout = 0; CALL shorturl.rebalance(1000)', 120);
is($error, '', 'case 2: the rerun in the same session, without the timeout, completes');
ShortURL::Test::end_session($run);
($census, $want) = check_cluster('case 2', gone => [$deleted]);
is($census->{visits}{$m2}, $m2_before + 1, 'case 2: the link clicked on alpha meanwhile has its clicks');

# ---------------------------------------------------------------------
# 3. Terminated while the old shard commits step 3 (move_out)
# ---------------------------------------------------------------------
co(q{SELECT shorturl.set_shard_weight('alpha', 3)});
# the first pair is bravo -> alpha: one link clicked through the
# coordinator meanwhile, one on bravo directly
my ($m3, $m5) = split /\n/, co(qq{SELECT m.code FROM made m WHERE $servable AND shorturl.route(m.code) = 'alpha'
	AND EXISTS (SELECT FROM shorturl_remote.bravo_links l WHERE l.code = m.code) ORDER BY m.g LIMIT 2});
my %before = map { $_ => $want->{$_} } $m3, $m5;
$gate = hold_commits('bravo', 'shorturl.moved_links');
$run = ShortURL::Test::session($coord, 'postgres');
($pid) = ShortURL::Test::ask($run, 'SET client_min_messages = warning; SELECT pg_backend_pid()');
ShortURL::Test::send_sql($run, 'CALL shorturl.rebalance(1000)');
ok(ShortURL::Test::wait_until($node{bravo}, 'postgres', $held_sql, 60),
	'case 3: bravo\'s move_out is committing, held there');
my $journaled = co(q{SELECT count(*) FROM shorturl.rebalance_moves WHERE source = 'bravo' AND target = 'alpha'});
cmp_ok($journaled, '>', 0, "case 3: the batch's copies are on alpha and journaled ($journaled)");
ok(click($m3), 'case 3: a moving link clicked through the coordinator meanwhile');
co("SELECT pg_terminate_backend($pid)");
($out, $error) = ShortURL::Test::answer($run, 30);
like($error, qr/^57P01: |^session ended/, 'case 3: the rebalance was terminated');
ShortURL::Test::end_session($run);
# a client routed to bravo: its counter's fence refuses the link while
# move_out's transaction is open, which here is longer than the 10 s the
# fence lasts once it commits (bug C: it used to end 10 s after the take)
my $served = 0;
my $tries = 0;
my $deadline = time + 15;
while (time < $deadline)
{
	$tries++;
	last if ($served = click_on('bravo', $m5));
	usleep(250_000);
}
ok(!$served, "case 3: bravo refused the moving link all the while its move_out was held ($tries tries in 15 s)");
is(on('bravo', $held_sql), 't', 'case 3: (bravo\'s move_out was still held meanwhile)');
ok(release_commits('bravo', $gate), 'case 3: bravo\'s commit is over once let go');
is(on('bravo', qq{SELECT count(*) FROM shorturl.moved_links}), $journaled,
	'case 3: bravo let the batch go, with its final counts in moved_links');
$error = co_error('SET client_min_messages = warning; CALL shorturl.rebalance(1000)');
is($error, '', 'case 3: the rerun completes');
($census, $want) = check_cluster('case 3', gone => [$deleted]);
is($census->{visits}{$m3}, $before{$m3} + 1, 'case 3: the link clicked through the coordinator meanwhile has its clicks');
is($census->{visits}{$m5}, $want->{$m5}, 'case 3: the link clicked on bravo has every click bravo served')
  or diag('case 3: bravo\'s stats (refused_clicks|dropped_deltas): '
	  . on('bravo', 'SELECT refused_clicks, dropped_deltas FROM shorturl.stats'));
is(on('bravo', 'SELECT dropped_deltas FROM shorturl.stats'), 0, 'case 3: bravo dropped no click');

# ---------------------------------------------------------------------
# 5. Cancelled in the copy's commit, then the operator changes their mind
# ---------------------------------------------------------------------
# delta weighs 3: links move from alpha, bravo and charlie to delta; the
# first batch (alpha -> delta) is cancelled in delta's commit, delta's
# weight goes back to 1 and the rerun takes the copies back off delta.
# Delta must not keep their copied_links rows, or the day they move there
# again the journal takes a stale count.
co(q{SELECT shorturl.set_shard_weight('delta', 3)});
my $m6 = co(qq{SELECT m.code FROM made m WHERE $servable AND shorturl.route(m.code) = 'delta'
	AND EXISTS (SELECT FROM shorturl_remote.alpha_links l WHERE l.code = m.code) ORDER BY m.g LIMIT 1});
$gate = hold_commits('delta', 'shorturl.links');
$run = ShortURL::Test::session($coord, 'postgres');
($pid) = ShortURL::Test::ask($run, 'SET client_min_messages = warning; SELECT pg_backend_pid()');
ShortURL::Test::send_sql($run, 'CALL shorturl.rebalance(1000)');
ok(ShortURL::Test::wait_until($node{delta}, 'postgres', $held_sql, 60),
	'case 5: the copy into delta is committing, held there');
ok(click_on('alpha', $m6), 'case 5: a moving link clicked on alpha meanwhile');
co("SELECT pg_cancel_backend($pid)");
($out, $error) = ShortURL::Test::answer($run, 30);
is($error, '57014: canceling statement due to user request', 'case 5: the rebalance was cancelled (57014)');
ok(release_commits('delta', $gate), 'case 5: delta\'s commit is over once let go');
my $stale = on('delta', q{SELECT count(*) FROM shorturl.copied_links});
cmp_ok($stale, '>', 0, "case 5: delta has the batch's copies and copied_links rows ($stale)");
co(q{SELECT shorturl.set_shard_weight('delta', 1)});
# (the rerun in the cancelled session itself, this time)
(undef, $error) = ShortURL::Test::ask($run, 'CALL shorturl.rebalance(1000)', 120);
is($error, '', 'case 5: delta weighs 1 again; the rerun takes the copies back off delta');
($census, $want) = check_cluster('case 5, back to weight 1', gone => [$deleted]);
# they move to delta for good, after a click through the coordinator
co(q{SELECT shorturl.set_shard_weight('delta', 3)});
ok(click($m6), 'case 5: delta weighs 3 again; the link clicked through the coordinator');
(undef, $error) = ShortURL::Test::ask($run, 'CALL shorturl.rebalance(1000)', 120);
is($error, '', 'case 5: the rebalance to delta completes');
ShortURL::Test::end_session($run);
($census, $want) = check_cluster('case 5, moved to delta', gone => [$deleted]);
is(($census->{where}{$m6} // '(none)') . ' ' . ($census->{visits}{$m6} // '(none)'), "delta $want->{$m6}",
	'case 5: the link clicked meanwhile is on delta with exactly its clicks');

note(sprintf('run time %.1f s', time - $t0));
done_testing();
