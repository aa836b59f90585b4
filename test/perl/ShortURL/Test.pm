# ShortURL::Test: what the TAP tests of pg_shorturl share.
#
# Every test that starts a server starts it here, so the settings it runs
# with are stated once: the library preloaded, the log prefix that shows
# process ids and types, and whatever the test adds.  The helpers wait for
# a worker, poll a condition with a short deadline (a failing case fails in
# seconds, not in poll_query_until's three minutes), and count clicks with
# pgbench so that a test proves exact numbers.  Others measure (the
# seconds until a condition holds or a process is gone), reconfigure
# reload settings, list the launcher and workers, pick the launcher's and
# workers' errors and bad exits out of the log, and run a query in the
# background.  Others read shorturl.stats, change the flush interval and
# wait for the worker to take it, follow the save file a clean shutdown
# leaves (its path, the postmaster's lines about it) and wait out a
# crash's reinitialization.
#
#   use FindBin; use lib "$FindBin::Bin/../perl";
#   # (prove -I test/perl works too, but PGXS's Makefile.global empties
#   # PROVE_FLAGS after the Makefile sets it)
#   use ShortURL::Test;
#   my $node = ShortURL::Test::node('name', 'shorturl.flush_interval = 100ms');
#   ShortURL::Test::wait_served($node, 'postgres');
package ShortURL::Test;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

# node creates and starts a server that preloads pg_shorturl; extra lines
# of postgresql.conf follow, one per argument.  Pass start => 0 in a hash
# reference first to get it unstarted.
sub node
{
	my ($name, @conf) = @_;
	my %opt = (start => 1);
	%opt = (%opt, %{ shift @conf }) if @conf && ref $conf[0] eq 'HASH';
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(%{ $opt{init} // {} }, extra => [ '--encoding=UTF8', '--locale=C' ]);
	$node->append_conf('postgresql.conf', join "\n",
		"shared_preload_libraries = 'pg_shorturl'",
		"log_line_prefix = '%m [%p] %b '",
		suite_conf(),
		@conf, '');
	$node->start if $opt{start};
	return $node;
}

# suite_conf returns the lines of the file PG_SHORTURL_TEST_CONF names (the
# Makefile's SHORTURL_TEST_CONF: a run of the whole suite in another
# configuration), which come before a test's own settings so that those win
sub suite_conf
{
	my $file = $ENV{PG_SHORTURL_TEST_CONF};
	return () unless defined $file && $file ne '';
	open my $fh, '<', $file or die "PG_SHORTURL_TEST_CONF: cannot read $file: $!";
	my @lines = grep { !/^\s*(#|$)/ } map { chomp; $_ } <$fh>;
	close $fh;
	return @lines;
}

# wait_until polls a query in a database until it returns t, for at most
# $timeout seconds (default 20); returns whether it did
sub wait_until
{
	my ($node, $db, $sql, $timeout) = @_;
	my $deadline = time + ($timeout // 20);

	while (time < $deadline)
	{
		# psql may exit before it has read the query (a server refusing
		# connections in a crash restart), and IPC::Run then dies of the
		# broken pipe: not yet, like any other failure
		my ($rc, $out) = eval { $node->psql($db, $sql) };
		return 1 if defined $rc && $rc == 0 && $out eq 't';
		usleep(50_000);
	}
	return 0;
}

# wait_served waits until a worker serves a database (its clicks go to
# shared memory and a worker runs for it).  When databases take turns for
# too few worker slots, a worker may run for only a few tens of
# milliseconds per turn, which a psql per poll can miss turn after turn on
# a loaded machine: so each psql polls the view every 5 ms for up to 2 s,
# in a DO block that fails when it never saw a worker (shorturl.stats
# reads shared memory, so a long statement sees it live).
sub wait_served
{
	my ($node, $db, $timeout) = @_;
	my $deadline = time + ($timeout // 20);
	my $probe = q{DO $$
BEGIN
	FOR i IN 1 .. 400 LOOP
		IF (SELECT mode = 'shared' AND worker_pid IS NOT NULL FROM shorturl.stats) THEN
			RETURN;
		END IF;
		PERFORM pg_sleep(0.005);
	END LOOP;
	RAISE EXCEPTION 'no worker seen';
END
$$};

	while (time < $deadline)
	{
		my ($rc) = $node->psql($db, $probe);
		return 1 if $rc == 0;
		usleep(50_000);
	}
	return 0;
}

# clicks runs $clients pgbench clients of $xacts transactions each, each
# transaction resolving every code once in $db; fails the test unless every
# resolve returned a URL.  Returns the clicks per code.
my $bench_no = 0;

sub clicks
{
	my ($node, $db, $clients, $xacts, @codes) = @_;
	my $n = $clients * $xacts;
	my $script = join '',
	  map { "SELECT 1 / (shorturl.resolve('$_') IS NOT NULL)::int;\n" } @codes;

	$bench_no++;
	$node->pgbench(
		"--no-vacuum --client=$clients --jobs=2 --transactions=$xacts",
		0,
		[qr{actually processed: $n/$n}],
		[],
		"pgbench $bench_no: $clients clients x $xacts clicks of @codes in $db, all resolved",
		{ "shorturl_clicks_$bench_no.sql" => $script },
		$db);
	return $n;
}

# live returns "code=visits" for codes, in order, from visits()
sub live
{
	my ($node, $db, @codes) = @_;
	my $list = join ',', map { "'$_'" } @codes;
	return $node->safe_psql($db,
		"SELECT string_agg(c || '=' || coalesce(shorturl.visits(c)::text, 'null'), ' ' ORDER BY c) FROM unnest(ARRAY[$list]) c");
}

# stored_expr is the SQL expression of the visits the tables hold for the
# link aliased $alias (default l): its shorturl.visit_counts row plus its
# rows of shorturl.pending_visits (clicks counted synchronously, which a
# flush may leave there)
sub stored_expr
{
	my ($alias) = @_;
	$alias //= 'l';
	return "(coalesce((SELECT c.visits FROM shorturl.visit_counts c WHERE c.link_id = $alias.id), 0)"
	  . " + coalesce((SELECT sum(p.visits) FROM shorturl.pending_visits p WHERE p.link_id = $alias.id), 0))";
}

# stored returns "code=visits" for codes from the tables (flushed visits
# and synchronously counted ones), without shared memory
sub stored
{
	my ($node, $db, @codes) = @_;
	my $list = join ',', map { "'$_'" } @codes;
	return $node->safe_psql($db,
		"SELECT string_agg(l.code || '=' || " . stored_expr('l') . ", ' ' ORDER BY l.code)"
		  . " FROM shorturl.links l WHERE l.code IN ($list)");
}

# expect builds the string live() and stored() return when every code has $n
sub expect
{
	my ($n, @codes) = @_;
	return join ' ', map { "$_=$n" } sort @codes;
}

# log_since returns what the server logged from byte offset $from on
sub log_since
{
	my ($node, $from) = @_;
	return slurp_file($node->logfile, $from);
}

# seconds_until is wait_until that measures: it returns the seconds the
# query took to return t (polled every 20 ms), or undef if it did not
# within $timeout seconds (default 20)
sub seconds_until
{
	my ($node, $db, $sql, $timeout) = @_;
	my $t0 = time;

	while (time - $t0 < ($timeout // 20))
	{
		my ($rc, $out) = $node->psql($db, $sql);
		return time - $t0 if $rc == 0 && $out eq 't';
		usleep(20_000);
	}
	return undef;
}

# seconds_until_gone returns the seconds until process $pid no longer
# exists (polled every 5 ms), or undef if it still does after $timeout
sub seconds_until_gone
{
	my ($pid, $timeout) = @_;
	my $t0 = time;

	while (time - $t0 < ($timeout // 10))
	{
		return time - $t0 unless kill 0, $pid;
		usleep(5_000);
	}
	return undef;
}

# reconfigure sets shorturl.* settings with ALTER SYSTEM and reloads; the
# launcher and the workers take a reload on their latch at once, so they
# have it half a second later
sub reconfigure
{
	my ($node, %settings) = @_;

	$node->safe_psql('postgres', join ";\n",
		(map { "ALTER SYSTEM SET shorturl.$_ = '$settings{$_}'" } sort keys %settings),
		'SELECT pg_reload_conf()');
	usleep(500_000);
}

# worker_pids returns the pids of the pg_shorturl workers, sorted; only
# those connected to $db when it is given
sub worker_pids
{
	my ($node, $db) = @_;
	my $where = defined $db ? " AND datname = '$db'" : '';

	return split /\n/, $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_shorturl worker'$where ORDER BY pid");
}

# launcher_pid returns the pid of the launcher, or '' if none runs
sub launcher_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'pg_shorturl launcher'") // '';
}

# our_errors returns the ERROR, FATAL and PANIC lines that the launcher or
# a worker logged from byte offset $from on (the log_line_prefix node()
# sets names the process type)
sub our_errors
{
	my ($node, $from) = @_;
	return grep { /\] pg_shorturl (?:launcher|worker) (?:ERROR|FATAL|PANIC):/ }
	  split /\n/, log_since($node, $from // 0);
}

# bad_exits returns the postmaster's lines, from byte offset $from on, on a
# launcher or worker that exited with a non-zero code or by a signal
sub bad_exits
{
	my ($node, $from, $type) = @_;
	$type //= '(?:launcher|worker)';
	return grep { /background worker "pg_shorturl $type" \(PID \d+\) (?:exited with exit code [1-9]|was terminated by signal)/ }
	  split /\n/, log_since($node, $from // 0);
}

# start_query runs one SQL statement in a psql of its own, in the
# background (psql -c: IPC::Run feeds a standard input only while it is
# pumped); finish_query waits for it and returns its output
sub start_query
{
	my ($node, $db, $sql) = @_;
	my %q = (out => '', err => '');

	$q{h} = IPC::Run::start(
		[ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr($db), '-c', $sql ],
		'<', '/dev/null', '>', \$q{out}, '2>', \$q{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return \%q;
}

sub finish_query
{
	my ($q) = @_;
	$q->{h}->finish;
	diag "background query failed: $q->{err}" if $q->{err} ne '';
	chomp $q->{out};
	return $q->{out};
}

# stats returns columns of shorturl.stats in $db, joined by |
sub stats
{
	my ($node, $db, $columns) = @_;
	return $node->safe_psql($db, "SELECT $columns FROM shorturl.stats");
}

# set_flush_interval changes shorturl.flush_interval (a reload setting) and
# returns once the worker of $db runs on it.  The worker keeps the flush it
# has already scheduled, so for a long interval (hours) this waits until
# stats.flushes stops moving.
sub set_flush_interval
{
	my ($node, $db, $value) = @_;

	$node->safe_psql($db,
		"ALTER SYSTEM SET shorturl.flush_interval = '$value'; SELECT pg_reload_conf()");
	usleep(300_000);
	return if $value !~ /h$/;
	my $before = stats($node, $db, 'flushes');
	for (1 .. 50)
	{
		usleep(300_000);
		my $now = stats($node, $db, 'flushes');
		return if $now == $before;
		$before = $now;
	}
	die "the worker kept flushing after flush_interval = $value";
}

# save_file is the path of the file a clean shutdown leaves the unflushed
# clicks in
sub save_file
{
	my ($node) = @_;
	return $node->data_dir . '/pg_stat/pg_shorturl_counters.stat';
}

# log_offset is where the next lines of the server's log will start
sub log_offset
{
	my ($node) = @_;
	return -s $node->logfile // 0;
}

# restore_lines returns what the postmaster said about the save file in
# the log since $from: the "restored" and "not restoring" lines, in order
sub restore_lines
{
	my ($node, $from) = @_;
	my @lines = grep { /pg_shorturl: (restored \d+ unflushed|not restoring unflushed)/ }
	  split /\n/, log_since($node, $from);
	s/^.*?pg_shorturl: /pg_shorturl: / for @lines;
	return @lines;
}

# wait_crash_recovered waits, after a process was killed at log offset
# $from, until the postmaster has reinitialized and the server accepts
# writes again; returns whether it did within $timeout seconds (default 60)
sub wait_crash_recovered
{
	my ($node, $db, $from, $timeout) = @_;
	my $deadline = time + ($timeout // 60);

	while (time < $deadline)
	{
		last if log_since($node, $from) =~ /all server processes terminated; reinitializing/;
		usleep(50_000);
	}
	return wait_until($node, $db, 'SELECT NOT pg_is_in_recovery()', $deadline - time);
}

# rows returns the lines of a query's output, as an array reference
sub rows
{
	my ($node, $db, $sql) = @_;
	my $out = $node->safe_psql($db, $sql);
	return [ $out eq '' ? () : split /\n/, $out ];
}

# sql_error runs SQL that should fail and returns "SQLSTATE: message" of
# its first error, or '' when it succeeded
sub sql_error
{
	my ($node, $db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql");
	return $err =~ /^(?:psql:[^\n]*?)?ERROR:\s+([0-9A-Z]{5}): ([^\n]*)/m ? "$1: $2" : '';
}

# ---------------------------------------------------------------------
# Several servers: a coordinator (pg_shorturl_coordinator) in front of
# shards (pg_shorturl), each a server of its own, as coordinator/t runs
# them.  Each server's database postgres is the one that serves.
# ---------------------------------------------------------------------

# shard starts a server that is a shard: pg_shorturl in its database
# postgres, served by a worker; extra lines of postgresql.conf follow
sub shard
{
	my ($name, @conf) = @_;
	return shard_at($name, undef, @conf);
}

# shard_at is shard() with pg_shorturl at a version (undef: the default),
# for the tests that update a cluster
sub shard_at
{
	my ($name, $version, @conf) = @_;
	my $node = node($name, @conf);

	$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl' . (defined $version ? " VERSION '$version'" : ''));
	wait_served($node, 'postgres') or die "no worker serves shard $name";
	return $node;
}

# coordinator starts a server whose database postgres is a coordinator
# (pg_shorturl_coordinator and, by CASCADE, plproxy and postgres_fdw);
# extra lines of postgresql.conf follow
sub coordinator
{
	my ($name, @conf) = @_;
	return coordinator_at($name, undef, @conf);
}

# coordinator_at is coordinator() with pg_shorturl_coordinator at a version
sub coordinator_at
{
	my ($name, $version, @conf) = @_;
	my $node = node($name, @conf);

	$node->safe_psql('postgres',
		'CREATE EXTENSION pg_shorturl_coordinator' . (defined $version ? " VERSION '$version'" : '') . ' CASCADE');
	return $node;
}

# conninfo is the libpq connection string of a server's database
# (default postgres), over its Unix socket
sub conninfo
{
	my ($node, $db) = @_;
	return 'host=' . $node->host . ' port=' . $node->port . ' dbname=' . ($db // 'postgres');
}

# add_shards adds shards to the coordinator in $db: each a
# [name, node, weight] (weight default 1)
sub add_shards
{
	my ($coord, $db, @shards) = @_;

	for (@shards)
	{
		my ($name, $node, $weight) = @$_;
		$coord->safe_psql($db,
			"SELECT shorturl.add_shard('$name', '" . conninfo($node) . "', " . ($weight // 1) . ')');
	}
}

# census reads every shard server's links directly (not through a
# coordinator), from a hash name -> node: where (code -> shard name),
# visits (code -> visits(), unflushed clicks included), url (code -> url),
# and dups, the codes found on more than one shard
sub census
{
	my (%shards) = @_;
	my (%where, %visits, %url, @dups);

	for my $name (sort keys %shards)
	{
		for (split /\n/, $shards{$name}->safe_psql('postgres',
			'SELECT code, shorturl.visits(code), url FROM shorturl.links'))
		{
			my ($code, $v, $u) = split /\|/, $_, 3;
			push @dups, $code if exists $where{$code};
			$where{$code} = $name;
			$visits{$code} = $v;
			$url{$code} = $u;
		}
	}
	return { where => \%where, visits => \%visits, url => \%url, dups => \@dups };
}

# server_pids returns the pids of a running server's processes: the
# postmaster, then its children
sub server_pids
{
	my ($node) = @_;
	my $pm = $node->{_pid} or die 'the server ' . $node->name . ' is not running';
	my @children = grep { /^\d+$/ } map { s/\s+//gr } split /\n/, `ps -o pid= --ppid $pm`;

	return ($pm, @children);
}

# freeze stops every process of a server with SIGSTOP (the postmaster
# first, so that it starts no new child meanwhile), and returns how many;
# thaw lets them run again with SIGCONT
sub freeze
{
	my ($node) = @_;
	my @pids = server_pids($node);

	kill 'STOP', $pids[0];
	@pids = server_pids($node);
	kill 'STOP', @pids;
	return scalar @pids;
}

sub thaw
{
	my ($node) = @_;
	my @pids = server_pids($node);

	kill 'CONT', reverse @pids;
	return scalar @pids;
}

# first_error returns "SQLSTATE: message" of the first error (or fatal
# error) in psql's standard error (VERBOSITY verbose), or ''
sub first_error
{
	my ($stderr) = @_;
	return $stderr =~ /^(?:psql:[^\n]*?)?(?:ERROR|FATAL):\s+([0-9A-Z]{5}): ([^\n]*)/m ? "$1: $2" : '';
}

# timed_error runs SQL in a psql of its own and returns "SQLSTATE:
# message" of its first error ('' if it succeeded, 'timed out' if it took
# longer than $timeout seconds, default 60) and the seconds it took
sub timed_error
{
	my ($node, $db, $sql, $timeout) = @_;
	my ($out, $err, $timed_out) = ('', '', 0);
	my $t0 = time;

	$node->psql($db, "\\set VERBOSITY verbose\n$sql",
		stdout => \$out, stderr => \$err,
		timeout => $timeout // 60, timed_out => \$timed_out);
	my $secs = time - $t0;
	return ('timed out', $secs) if $timed_out;
	return (first_error($err), $secs);
}

# session starts a psql that stays connected to $db (one backend for all
# the queries asked of it, so that it keeps its connections to other
# servers); ask sends it SQL and waits for the answer.  Unlike
# background_psql, a query that does not answer in time leaves the
# session usable: keep waiting with answer(), once whatever held it up is
# gone.
sub session
{
	my ($node, $db) = @_;
	my $s = { in => "\\set VERBOSITY verbose\n", out => '', err => '', n => 0 };

	$s->{h} = IPC::Run::start(
		[ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr($db), '-f', '-' ],
		'<', \$s->{in}, '>', \$s->{out}, '2>', \$s->{err});
	return $s;
}

# send_sql hands SQL to a session without waiting
sub send_sql
{
	my ($s, $sql) = @_;

	$s->{n}++;
	$s->{out} = '';
	$s->{err} = '';
	$s->{sent_at} = time;
	# psql sends a query at its semicolon, before the \echo that follows
	$sql =~ s/;?\s*$/;/ unless $sql =~ /^\\/;
	$s->{in} .= "$sql\n\\echo __answered_$s->{n}\n";
	$s->{h}->pump_nb;
}

# answer waits at most $timeout seconds (default 60) for the SQL sent
# last; returns (output, "SQLSTATE: message" or '', seconds since it was
# sent), or () if it has not answered yet.  A session whose psql ended
# (its backend was terminated) answers with what it said last.
sub answer
{
	my ($s, $timeout) = @_;
	my $deadline = time + ($timeout // 60);
	my $mark = "__answered_$s->{n}";

	while (1)
	{
		my $alive = eval { $s->{h}->pump_nb; 1 } && $s->{h}->pumpable;
		if ($s->{out} =~ s/^\Q$mark\E\n//m || !$alive)
		{
			my $secs = time - $s->{sent_at};
			chomp(my $out = $s->{out});
			return ($out, first_error($s->{err}) || ($alive ? '' : 'session ended'), $secs);
		}
		return () if time >= $deadline;
		usleep(5_000);
	}
}

# ask sends SQL and waits for its answer (see answer)
sub ask
{
	my ($s, $sql, $timeout) = @_;
	send_sql($s, $sql);
	return answer($s, $timeout);
}

# end_session quits a session's psql (kills it if it has not quit within
# 10 s)
sub end_session
{
	my ($s) = @_;
	my $deadline = time + 10;

	$s->{in} .= "\\q\n";
	while (time < $deadline)
	{
		last unless eval { $s->{h}->pump_nb; 1 } && $s->{h}->pumpable;
		usleep(10_000);
	}
	$s->{h}->kill_kill if $s->{h}->pumpable;
	eval { $s->{h}->finish };
}

# start_pgbench runs pgbench in the background against $db ($opts: its
# options; $script: the text of its one script); finish_pgbench waits for
# it and returns its exit code, standard output and standard error
sub start_pgbench
{
	my ($node, $db, $opts, $script) = @_;
	my $file = PostgreSQL::Test::Utils::tempdir() . '/script.sql';
	my $b = { out => '', err => '' };

	open my $fh, '>', $file or die "$file: $!";
	print $fh $script;
	close $fh;
	$b->{h} = IPC::Run::start(
		[ $node->installed_command('pgbench'), '--no-vacuum', split(/\s+/, $opts),
			'-h', $node->host, '-p', $node->port, '-f', $file, $db ],
		'<', '/dev/null', '>', \$b->{out}, '2>', \$b->{err});
	return $b;
}

sub finish_pgbench
{
	my ($b) = @_;
	$b->{h}->finish;
	return ($b->{h}->result(0), $b->{out}, $b->{err});
}

# batches_row is the shorturl.standby_batches row of a standby on $node (a
# primary, or a standby that replayed it): a hash of last_seq, batches and
# visits (all 0 if it has none); read replicas, 018 and 019
sub batches_row
{
	my ($node, $name) = @_;
	my $row = $node->safe_psql('postgres',
		"SELECT last_seq, batches, visits FROM shorturl.standby_batches WHERE standby = '$name'");
	my %r = (last_seq => 0, batches => 0, visits => 0);
	@r{qw(last_seq batches visits)} = split /\|/, $row if $row ne '';
	return \%r;
}

# wait_shipped waits until a standby has nothing unshipped (pending or in
# flight); returns whether it did within $timeout seconds (default 30)
sub wait_shipped
{
	my ($sb, $timeout) = @_;
	return wait_until($sb, 'postgres', 'SELECT unshipped_visits = 0 FROM shorturl.stats',
		$timeout // 30);
}

# ship_figures shows a standby's shipping figures, for diagnosing a case
sub ship_figures
{
	my ($sb) = @_;
	return $sb->name . ': ' . $sb->safe_psql('postgres',
		q{SELECT 'pending ' || pending_visits || ', unshipped ' || unshipped_visits
		|| ', shipped ' || shipped_visits || ', batches ' || ship_batches || ', failures ' || ship_failures
		|| ', dropped ' || standby_dropped || ', last ' || coalesce(last_ship_at::text, 'never')
		|| ', error ' || coalesce(last_error, 'none') FROM shorturl.stats});
}

1;
