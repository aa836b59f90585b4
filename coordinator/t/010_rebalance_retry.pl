# 010_rebalance_retry.pl: a rebalance whose batch a shard refuses with a
# serialization failure (40001), and coordinator 0.12, which retries it.
#
# postgres_fdw works on a shard in a REPEATABLE READ transaction.  A run
# cancelled in the new shard's commit of a batch (as in 009, case 1) leaves
# the batch's copies there, live: clicks routed to that shard count on
# them, and its worker flushes their counts.  The rerun copies the same
# links again (ON CONFLICT DO NOTHING); when the new shard flushed a copy's
# count after the batch's snapshot there, the conflicting row is one that
# snapshot cannot see, and the INSERT fails with 40001.  Under click load
# the window is a few milliseconds; here the rerun is held inside the batch
# (a BEFORE INSERT trigger on the new shard's links waits for an advisory
# lock the test holds) while a copy is clicked and the shard flushed, so
# the failure is certain:
#
# 1. at coordinator 0.11 the rerun fails with 40001 (the bug);
# 2. ALTER EXTENSION pg_shorturl_coordinator UPDATE takes it to 0.12;
# 3. the same again: the rerun says it tries the batch again, and
#    completes with every link on its owner, with exactly the clicks it
#    served, and no journal, moved, arrived or copied row left.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

my $n_links = 200;
my $gate_key = 90010;
my @conf = ("shorturl.flush_interval = '200ms'", "shorturl.purge_interval = '1h'");

my %node = map { $_ => ShortURL::Test::shard($_, @conf) } qw(alpha bravo charlie);
my $coord = ShortURL::Test::coordinator_at('coord', '0.11');

sub co { return $coord->safe_psql('postgres', $_[0]); }
sub on { return $node{ $_[0] }->safe_psql('postgres', $_[1]); }

my $held_sql = "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $gate_key AND NOT granted";
my $free_sql = "SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $gate_key";

# hold makes charlie's inserts into shorturl.links wait for the test's
# gate: $when is 'commit' (a deferred constraint trigger: the commit
# waits) or 'insert' (a BEFORE trigger: the INSERT waits, inside the
# transaction, after its first statement took the snapshot)
sub hold
{
	my ($when) = @_;
	on('charlie', qq{CREATE FUNCTION public.held() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN PERFORM pg_advisory_xact_lock_shared($gate_key); RETURN NEW; END\$\$});
	on('charlie', $when eq 'commit'
		? q{CREATE CONSTRAINT TRIGGER held AFTER INSERT ON shorturl.links
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.held()}
		: q{CREATE TRIGGER held BEFORE INSERT ON shorturl.links FOR EACH ROW EXECUTE FUNCTION public.held()});
	my $gate = ShortURL::Test::session($node{charlie}, 'postgres');
	my (undef, $error) = ShortURL::Test::ask($gate, "SELECT pg_advisory_lock($gate_key)");
	die "the gate: $error" if $error ne '';
	return $gate;
}

sub release
{
	my ($gate) = @_;
	ShortURL::Test::ask($gate, "SELECT pg_advisory_unlock($gate_key)");
	ShortURL::Test::end_session($gate);
	my $over = ShortURL::Test::wait_until($node{charlie}, 'postgres', $free_sql, 30);
	on('charlie', 'DROP FUNCTION public.held() CASCADE');
	return $over;
}

# ---------------------------------------------------------------------
# Two shards, links clicked once each; charlie joins, and the first run
# is cancelled while charlie commits the batch's copies
# ---------------------------------------------------------------------
ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $node{$_} ] } qw(alpha bravo));
co(qq{CREATE TABLE made AS SELECT g, shorturl.shorten('https://example.com/r/' || g) AS code
	FROM generate_series(1, $n_links) g});
co(q{CREATE TABLE clicks (code text COLLATE "C" NOT NULL)});
co(q{INSERT INTO clicks SELECT code FROM made WHERE shorturl.resolve(code, NULL) IS NOT NULL});
is(co('SELECT count(*) FROM clicks'), $n_links, "$n_links links made and clicked");

ShortURL::Test::add_shards($coord, 'postgres', [ 'charlie', $node{charlie} ]);
my $gate = hold('commit');
my $run = ShortURL::Test::session($coord, 'postgres');
my ($pid) = ShortURL::Test::ask($run, 'SET client_min_messages = notice; SELECT pg_backend_pid()');
ShortURL::Test::send_sql($run, 'CALL shorturl.rebalance(1000)');
ok(ShortURL::Test::wait_until($node{charlie}, 'postgres', $held_sql, 60), 'the copy into charlie is committing, held');
co("SELECT pg_cancel_backend($pid)");
my ($out, $error) = ShortURL::Test::answer($run, 30);
is($error, '57014: canceling statement due to user request', 'the first run was cancelled (57014)');
ok(release($gate), "charlie's commit is over once let go");
# a copy the rerun's first batch copies again, clicked on charlie (its
# owner now) while that batch is held
my $copy = on('charlie', 'SELECT l.code FROM shorturl.links l JOIN shorturl.copied_links c USING (id) ORDER BY l.id LIMIT 1');
isnt($copy, '', "charlie has copies the journal does not have ($copy first)");
is(co("SELECT shorturl.route('$copy')"), 'charlie', '... whose owner is charlie');

# rerun_held reruns the rebalance in $run, holds it in the INSERT of its
# first batch's copies into charlie, clicks the copy on charlie and has
# charlie flush it meanwhile, and lets it go; returns its answer
sub rerun_held
{
	my ($label) = @_;
	my $before = on('charlie', "SELECT c.visits FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
		WHERE l.code = '$copy'");
	my $gate = hold('insert');
	ShortURL::Test::send_sql($run, 'CALL shorturl.rebalance(1000)');
	ok(ShortURL::Test::wait_until($node{charlie}, 'postgres', $held_sql, 60),
		"$label: the rerun is inside its batch, held in the INSERT of the copies into charlie");
	is(on('charlie', "SELECT shorturl.resolve('$copy') IS NOT NULL"), 't', "$label: the copy is clicked on charlie meanwhile");
	co(qq{INSERT INTO clicks VALUES ('$copy')});
	on('charlie', 'SELECT shorturl.flush()');
	is(on('charlie', "SELECT c.visits FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
		WHERE l.code = '$copy'"), $before + 1, "$label: ... and charlie flushed its count, after the batch's snapshot");
	ok(release($gate), "$label: the INSERT is let go");
	return ShortURL::Test::answer($run, 120);
}

# ---------------------------------------------------------------------
# 1. Coordinator 0.11: the rerun fails
# ---------------------------------------------------------------------
($out, $error) = rerun_held('0.11');
like($error, qr/^40001: could not serialize access/, '0.11: the rerun failed with 40001 (the bug 0.12 fixes)');

# ---------------------------------------------------------------------
# 2. The update
# ---------------------------------------------------------------------
co('ALTER EXTENSION pg_shorturl_coordinator UPDATE');
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}), '0.12',
	'ALTER EXTENSION pg_shorturl_coordinator UPDATE reaches 0.12');

# ---------------------------------------------------------------------
# 3. Coordinator 0.12: the rerun tries the batch again, and completes
# ---------------------------------------------------------------------
($out, $error) = rerun_held('0.12');
is($error, '', '0.12: the rerun completes');
like($run->{err}, qr/could not serialize the batch from "(alpha|bravo)" to "charlie" \(could not serialize access[^)]*\), trying again/,
	'0.12: ... after it said it tries the batch again');
ShortURL::Test::end_session($run);

on($_, 'SELECT shorturl.flush()') for sort keys %node;
my $census = ShortURL::Test::census(%node);
my %want = map { split /\|/ } split /\n/,
  co('SELECT m.code, count(c.code) FROM made m LEFT JOIN clicks c USING (code) GROUP BY m.code');
my %owner = map { split /\|/ } split /\n/, co('SELECT m.code, shorturl.route(m.code) FROM made m');
my @bad = grep { ($census->{visits}{$_} // -1) != $want{$_} } sort keys %want;
is(scalar @bad, 0, 'every link has exactly the clicks it served')
  or diag('e.g. ' . join(', ', map { "$_ wants $want{$_}, has " . ($census->{visits}{$_} // '(none)') } @bad[0 .. ($#bad < 4 ? $#bad : 4)]));
is($census->{visits}{$copy}, $want{$copy}, "the copy clicked on charlie has its clicks ($want{$copy})");
@bad = grep { ($census->{where}{$_} // '') ne $owner{$_} } sort keys %want;
is(scalar @bad, 0, 'every link is on its owner, none is lost');
is(scalar @{ $census->{dups} }, 0, 'no link is on two shards');
is(join(', ', 'journal ' . co('SELECT count(*) FROM shorturl.rebalance_moves'),
		map { "$_ " . on($_, q{SELECT (SELECT count(*) FROM shorturl.moved_links) || '/'
			|| (SELECT count(*) FROM shorturl.arrived_links) || '/' || (SELECT count(*) FROM shorturl.copied_links)}) }
		sort keys %node),
	'journal 0, alpha 0/0/0, bravo 0/0/0, charlie 0/0/0', 'no journal, moved, arrived or copied row is left');
is(co('SELECT pending, running_pid IS NULL FROM shorturl.rebalance_state'), 'f|t', 'no rebalance is due or running');

done_testing();
