# 004_failures.pl: a coordinator facing a shard that fails, each case
# timed.
#
# One coordinator in front of three shard servers: alpha, bravo, and
# charlie, which speaks German (lc_messages = de_DE.UTF-8).
#
# (a) A frozen shard: every process of alpha's server stopped with
#     SIGSTOP, so it accepts connections and queries at the socket level
#     but never answers.  A coordinator call for one of its codes must fail
#     within shorturl.remote_timeout (2 s here, applied by sync_cluster())
#     plus a little, with SQLSTATE 08006 naming the shard, instead of
#     hanging: both in a fresh session (it must connect) and in a session
#     that already holds a connection to alpha.  Meanwhile a code of
#     another shard resolves at once.  After SIGCONT alpha answers again
#     in both sessions (one more failed call is allowed).
# (b) The retry on a closed connection does not read message text: charlie
#     ends the coordinator's connection between two calls of one
#     coordinator session, as a restart does (its backend gets SIGTERM,
#     pg_terminate_backend here, which a fast shutdown sends too; a real
#     restart took 2 s and more on a loaded machine, too long for what
#     follows).  The calls are under 2 s apart (PL/Proxy does not check a
#     connection idle for less than 2 whole seconds before it reuses it),
#     so the second call meets the closed connection and its SQLSTATE
#     57P01, in German; the call is asked again and succeeds, and no error
#     reaches the client.
# (c) A cancel reaches the shard: resolve() on bravo waits for a lock that
#     a transaction on bravo holds; statement_timeout = 1s on the
#     coordinator ends the call with 57014 in about a second, and bravo is
#     left with no coordinator backend waiting for the lock, nor a visit
#     counted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

# shorturl.remote_timeout for the cases, in seconds
my $remote_timeout = 2;

# what a failure may take beyond shorturl.remote_timeout: PL/Proxy counts
# whole seconds and polls once a second
my $grace = 1.5;

# how long the test waits for a call before it calls it hung (and thaws
# the shard, so that the test goes on)
my $hang_limit = 12;

# statement_timeout of case (c), and how long its cancel may take
my $cancel_after = 1;
my $cancel_limit = 2.5;

my $coord = ShortURL::Test::coordinator('coord');
my %shard = (
	alpha => ShortURL::Test::shard('alpha'),
	bravo => ShortURL::Test::shard('bravo'),
	charlie => ShortURL::Test::shard('charlie', "lc_messages = 'de_DE.UTF-8'"));
ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_} ] } sort keys %shard);

# servers frozen by the test: thawed whatever happens, or they could not
# be stopped at the end
my %frozen;
END { ShortURL::Test::thaw($shard{$_}) for keys %frozen; }

sub coord { return $coord->safe_psql('postgres', $_[0]); }

# the cluster's PL/Proxy timeouts: query_timeout, and the connect_timeout
# of each partition
sub cluster_timeouts
{
	return coord(q{SELECT string_agg(substring(o FROM '^query_timeout=(.*)$'), '')
		|| ' ' || string_agg(substring(o FROM 'connect_timeout=''(\d+)'''), ',' ORDER BY o)
		FROM pg_foreign_server s, unnest(s.srvoptions) o WHERE s.srvname = 'shorturl_cluster'});
}

# ---------------------------------------------------------------------
# Setup: links on every shard, and shorturl.remote_timeout = 2 s
# ---------------------------------------------------------------------
coord(q{SET client_min_messages = warning; CALL shorturl.rebalance()});
coord(q{CREATE TABLE made AS SELECT g, shorturl.shorten('https://example.com/f/' || g) AS code
	FROM generate_series(1, 300) g});
my %code_on = map {
	$_ => coord("SELECT code FROM made WHERE shorturl.route(code) = '$_' ORDER BY g LIMIT 1")
} sort keys %shard;
my %url_of = map {
	$_ => coord("SELECT 'https://example.com/f/' || g FROM made WHERE code = '$code_on{$_}'")
} sort keys %shard;

# the setup: no rebalance due, so a lookup asks the owner only
is(coord('SELECT pending FROM shorturl.rebalance_state'), 'f', 'no rebalance is due');
# each shard owns a code the test uses
ok($code_on{$_} ne '', "shard $_ owns code $code_on{$_}") for sort keys %shard;

# the default (5 s) is what the cluster was built with
is(cluster_timeouts(), '5 5,5,5', 'add_shard built the cluster with remote_timeout 5 s');
$coord->safe_psql('postgres',
	"ALTER SYSTEM SET shorturl.remote_timeout = '${remote_timeout}s'; SELECT pg_reload_conf()");
usleep(300_000);
coord('SELECT shorturl.sync_cluster()');
# sync_cluster() applies a new shorturl.remote_timeout to the query and
# connect timeouts
is(cluster_timeouts(), "$remote_timeout $remote_timeout,$remote_timeout,$remote_timeout",
	"after sync_cluster() the cluster's timeouts are $remote_timeout s");

# ---------------------------------------------------------------------
# (a) A frozen shard
# ---------------------------------------------------------------------
my $unavailable = qr/^08006: shard "alpha" (?:is unavailable|did not answer within shorturl\.remote_timeout)/;

# a session that has talked to alpha: it holds a connection to it
my $held = ShortURL::Test::session($coord, 'postgres');
my ($out, $err) = ShortURL::Test::ask($held, "SELECT shorturl.resolve('$code_on{alpha}')");
is($out, $url_of{alpha}, 'a long-lived session resolves a code of alpha before it freezes');

my $n_frozen = ShortURL::Test::freeze($shard{alpha});
$frozen{alpha} = 1;
my @pids = ShortURL::Test::server_pids($shard{alpha});
my $stopped = grep { (`ps -o stat= -p $_` // '') =~ /^T/ } @pids;
# every process of alpha's server (postmaster and children) is stopped
is($stopped, scalar @pids, "alpha is frozen: $stopped of its " . scalar(@pids) . ' processes stopped');

# a fresh session must connect to alpha, which never answers
my ($e, $secs) = ShortURL::Test::timed_error($coord, 'postgres',
	"SELECT shorturl.resolve('$code_on{alpha}')", $hang_limit);
diag(sprintf('frozen shard, fresh session: "%s" after %.2f s', $e, $secs));
like($e, $unavailable, 'a fresh session: resolve of a code of the frozen shard fails naming it (08006)');
cmp_ok($secs, '<', $remote_timeout + $grace,
	sprintf('... within shorturl.remote_timeout + %.1f s (%.2f s)', $grace, $secs));

# a code of another shard does not wait for alpha
($e, $secs) = ShortURL::Test::timed_error($coord, 'postgres',
	"SELECT shorturl.resolve('$code_on{bravo}')", $hang_limit);
is($e, '', 'with alpha frozen, a fresh session resolves a code of bravo');
# (sooner than alpha's timeout: it did not wait for alpha at all)
cmp_ok($secs, '<', $remote_timeout, sprintf('... sooner than shorturl.remote_timeout (%.2f s)', $secs));

# the held session sends its query on the connection it has
my @ans = ShortURL::Test::ask($held, "SELECT shorturl.resolve('$code_on{alpha}')", $hang_limit);
my $held_hung = !@ans;
diag($held_hung
	? "frozen shard, held session: no answer after $hang_limit s"
	  : sprintf('frozen shard, held session: "%s" after %.2f s', $ans[1], $ans[2]));
like($ans[1] // 'hung', $unavailable,
	'a session holding a connection to the frozen shard: resolve fails naming it (08006)');
cmp_ok($ans[2] // $hang_limit, '<', $remote_timeout + $grace,
	sprintf('... within shorturl.remote_timeout + %.1f s', $grace));

ShortURL::Test::thaw($shard{alpha});
delete $frozen{alpha};

# the held session first gets the answer of its last call, if it hung
@ans = ShortURL::Test::answer($held, 60) if $held_hung;
ok(!$held_hung || @ans, 'after SIGCONT, the held session\'s hung call returns')
  or $held = ShortURL::Test::session($coord, 'postgres');

# resolve_in_tries resolves a code in a session at most twice: returns the
# URL and the errors of the failed tries
sub resolve_in_tries
{
	my ($session, $code) = @_;
	my @errors;
	for (1 .. 2)
	{
		my ($url, $error) = $session
		  ? ShortURL::Test::ask($session, "SELECT shorturl.resolve('$code')", 30)
		  : ($coord->psql('postgres', "SELECT shorturl.resolve('$code')"))[1];
		return ($url, @errors) if defined $url && $url ne '';
		push @errors, $error // 'no answer';
	}
	return ('', @errors);
}

my ($url, @errors) = resolve_in_tries(undef, $code_on{alpha});
is($url, $url_of{alpha}, 'after SIGCONT, a fresh session resolves the code of alpha again')
  or diag("errors: @errors");
($url, @errors) = resolve_in_tries($held, $code_on{alpha});
is($url, $url_of{alpha},
	'after SIGCONT, the held session resolves it again (after at most one failed call)')
  or diag("errors: @errors");
note("failed call after SIGCONT: @errors") if @errors;

# ---------------------------------------------------------------------
# (b) A connection ended between two calls, answered in German
# ---------------------------------------------------------------------
my (undef, undef, $german) = $shard{charlie}->psql('postgres', 'SELECT 1/0');
# the shard really speaks German: PostgreSQL's translations are installed
like($german, qr/FEHLER:\s+Division durch Null/, "charlie answers in German: $german");

# PL/Proxy reuses a connection idle for under 2 whole seconds without a
# look at it (PLPROXY_IDLE_CONN_CHECK); one idle longer it polls first,
# warns "detected unstable connection" and connects again.  The case is
# the first path, where the call meets the closed connection and the
# coordinator asks again by SQLSTATE 57P01.  Should a loaded machine still
# take the second path, the case is run again.
my $s = ShortURL::Test::session($coord, 'postgres');
my (@second, $stderr, $log_at, $gap, $ended);
for my $attempt (1 .. 5)
{
	($out, $err) = ShortURL::Test::ask($s, "SELECT shorturl.resolve('$code_on{charlie}')");
	is($out, $url_of{charlie}, 'a session resolves a code of charlie') if $attempt == 1;
	my $answered = time;
	$log_at = ShortURL::Test::log_offset($shard{charlie});
	# SIGTERM to the coordinators' backends there, waiting for them to end
	$ended = $shard{charlie}->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
		FROM pg_stat_activity WHERE application_name = 'pg_shorturl coordinator'});
	@second = ShortURL::Test::ask($s, "SELECT shorturl.resolve('$code_on{charlie}')");
	$gap = $s->{sent_at} - $answered;
	$stderr = $s->{err};
	last unless $stderr =~ /detected unstable connection/;
	note(sprintf('attempt %d: the calls were %.2f s apart, PL/Proxy polled the idle connection; again',
		$attempt, $gap));
}
cmp_ok($ended, '>=', 1, "charlie ended the coordinators' connections ($ended)");
# the call met the old connection: PL/Proxy did not find it unstable first
unlike($stderr, qr/detected unstable connection/,
	sprintf('the two calls were %.2f s apart, PL/Proxy reused the connection', $gap));
# charlie ended its side of that connection, in German
like(ShortURL::Test::log_since($shard{charlie}, $log_at),
	qr/FATAL:\s+Verbindung wird abgebrochen/, 'charlie terminated the coordinator\'s connection in German');
# the second call is asked again on a new connection, by SQLSTATE 57P01
is($second[0], $url_of{charlie}, 'the second call resolves the code');
is($second[1], '', '... and no error reaches the client');
note("the client saw: $stderr") if $stderr ne '';
ShortURL::Test::end_session($s);

# ---------------------------------------------------------------------
# (c) A cancel reaches the shard
# ---------------------------------------------------------------------
my $waiting_on_lock = q{SELECT count(*) FROM pg_stat_activity
	WHERE application_name = 'pg_shorturl coordinator' AND wait_event_type = 'Lock'};
my $visits_before = $shard{bravo}->safe_psql('postgres', "SELECT shorturl.visits('$code_on{bravo}')");
my $locker = ShortURL::Test::session($shard{bravo}, 'postgres');
($out, $err) = ShortURL::Test::ask($locker, 'BEGIN; LOCK shorturl.links IN ACCESS EXCLUSIVE MODE; SELECT 1');
is($err, '', 'a transaction on bravo holds an ACCESS EXCLUSIVE lock on shorturl.links');

for my $case ([ 'a fresh session', ShortURL::Test::session($coord, 'postgres') ], [ 'the held session', $held ])
{
	my ($label, $session) = @$case;
	ShortURL::Test::ask($session, "SET statement_timeout = '${cancel_after}s'");
	my @got = ShortURL::Test::ask($session, "SELECT shorturl.resolve('$code_on{bravo}')", $hang_limit);
	diag(sprintf("cancel, %s: \"%s\" after %.2f s", $label, $got[1] // 'no answer', $got[2] // $hang_limit));
	like($got[1] // 'hung', qr/^57014: /, "$label: resolve blocked on bravo's lock ends with 57014");
	cmp_ok($got[2] // $hang_limit, '<', $cancel_limit, sprintf('... within %.1f s', $cancel_limit));
	# the cancel reached bravo: no coordinator backend still waits there
	is($shard{bravo}->safe_psql('postgres', $waiting_on_lock), 0,
		"$label: bravo has no coordinator backend left waiting for the lock");
	ShortURL::Test::ask($session, 'RESET statement_timeout');
	ShortURL::Test::end_session($session) unless $session == $held;
}
($out, $err) = ShortURL::Test::ask($locker, 'COMMIT');
ShortURL::Test::end_session($locker);
# the cancelled resolves counted no visit
is($shard{bravo}->safe_psql('postgres', "SELECT shorturl.visits('$code_on{bravo}')"), $visits_before,
	'the cancelled resolves counted no visit on bravo');
($out, $err) = ShortURL::Test::ask($held, "SELECT shorturl.resolve('$code_on{bravo}')");
is($out, $url_of{bravo}, 'once the lock is gone, the held session resolves the code of bravo');
ShortURL::Test::end_session($held);

done_testing();
