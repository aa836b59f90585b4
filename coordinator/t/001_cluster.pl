# 001_cluster.pl: links sharded over several servers by a coordinator,
# each case checked against the shards' own tables.
#
# Five servers, each preloading pg_shorturl: the coordinator, and the
# shards alpha, bravo, charlie (weights 1, 1, 2) and delta (added later).
# The shards' workers flush every half second, so flushes run while links
# move; they purge hourly, so expired links stay for the test to check.  The coordinator logs every click the test issues (clicks) and
# whether it was served: a link's visits must be its served clicks.
#
# 1-2. spread: 30,000 links made through the coordinator land on the
#   shards in the weights' shares, within five standard deviations; every link
#   is on the shard route(code) names, and on no other;
# 3. API: resolve, link_status and visits through the coordinator answer
#   what the same calls answer directly on the owner (plain links,
#   aliases, exhausted, expired and unknown codes), and visits are the
#   clicks served, exactly;
# 4. add a shard: rebalance_plan() equals the moves the pure
#   route(code, names, weights) predicts on the coordinator; CALL
#   rebalance() is terminated midway (pg_terminate_backend), then run
#   again, while pgbench clicks links through the coordinator (most of them
#   links that move): every click is served, every code ends on exactly
#   one shard, its new owner, with exactly the clicks served, only the
#   predicted codes moved, and no journal or moved/arrived/copied row is left;
# 5. remove a shard: the rebalance is terminated in the last step of a
#   batch (the shards have added and forgotten the moved counts, the
#   coordinator has not committed), then run again; it moves all the
#   shard's links, and only those, where the routing says, leaves nothing
#   behind, and the coordinator forgets the shard;
# 6. the links that left the removed shard move again (a weight change),
#   counts intact, and rebalancing still works.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

# how many generated links the coordinator makes, and of which other kinds
my $n_plain = 30_000;
my $n_alias = 50;
my $n_max = 50;
my $n_soon = 20;

# the sample compared with the owners: every 100th plain link and the other
# kinds
my $sample_every = 100;

# a share of n links routed independently with probability p has a
# standard deviation of 100 * sqrt(p (1 - p) / n) percentage points;
# shares must be within this many of them of the weights' (a fixed point
# of tolerance failed a CI: 51.07 % for 50 % over 30,120 links, 3.7 of
# them; at 5, a check fails by chance about once in 1.7 million)
my $share_sigmas = 5;

# share_tolerance is that bound, in percentage points, for a share p (a
# fraction) of n links
sub share_tolerance
{
	my ($p, $n) = @_;
	return $share_sigmas * 100 * sqrt($p * (1 - $p) / $n);
}

# batch size of the rebalance that is terminated: small, so that it is
# terminated between batches of a run that has many
my $kill_batch = 100;

my $coord = ShortURL::Test::coordinator('coord');
my %shard = map {
	$_ => ShortURL::Test::shard($_, "shorturl.flush_interval = '500ms'", "shorturl.purge_interval = '1h'")
} qw(alpha bravo charlie delta);
my %server = %shard;
my %weight = (alpha => 1, bravo => 1, charlie => 2);
ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_}, $weight{$_} ] } sort keys %weight);

sub coord { return $coord->safe_psql('postgres', $_[0]); }

# rows_of reads "key|value" lines into a hash
sub rows_of
{
	my %h;
	for (split /\n/, $_[0])
	{
		my ($k, $v) = split /\|/, $_, 2;
		$h{$k} = $v;
	}
	return \%h;
}

# count_bad counts the keys of %$want whose value in %$got differs, and
# notes a few
sub count_bad
{
	my ($what, $want, $got) = @_;
	my @bad = grep { ($got->{$_} // '(none)') ne $want->{$_} } sort keys %$want;

	note "$what: $_ wants $want->{$_}, has " . ($got->{$_} // '(none)')
	  for @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ];
	return scalar @bad;
}

# The coordinator keeps what the test made (made) and every click it
# issued, served or not (clicks): a link's visits must be its served clicks.
coord(q{CREATE TABLE made (n integer PRIMARY KEY, code text COLLATE "C" UNIQUE NOT NULL,
	url text NOT NULL, kind text NOT NULL)});
coord(q{CREATE TABLE clicks (id bigserial PRIMARY KEY, code text COLLATE "C" NOT NULL,
	served boolean NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())});

# click resolves codes of made through the coordinator ($times times each,
# an SQL expression over m) and logs the clicks; returns "served|refused|wrong url"
sub click
{
	my ($where, $times) = @_;
	return coord(qq{
		WITH r AS MATERIALIZED (
			SELECT m.code, m.url, shorturl.resolve(m.code) AS got
			FROM made m, generate_series(1, $times) t WHERE $where),
		logged AS (INSERT INTO clicks (code, served) SELECT code, got IS NOT NULL FROM r)
		SELECT count(got), count(*) - count(got), count(*) FILTER (WHERE got <> url) FROM r});
}

# expected is code -> "url|visits" of every link made, visits being the
# clicks served
sub expected
{
	return rows_of(coord(q{SELECT m.code, m.url || '|' || count(c.code) FILTER (WHERE c.served)
		FROM made m LEFT JOIN clicks c ON c.code = m.code GROUP BY m.code, m.url}));
}

# check_cluster reads every shard server directly and checks every link:
# on exactly one shard, the one the coordinator's route(code) names (unless
# $due, a rebalance being due), with its URL and its visits exact; returns
# the census
sub check_cluster
{
	my ($label, $due) = @_;
	my $c = ShortURL::Test::census(%shard);
	my $want = expected();
	my %got = map { $_ => "$c->{url}{$_}|$c->{visits}{$_}" } keys %{ $c->{where} };

	# a link is never on two shards
	is(scalar @{ $c->{dups} }, 0, "$label: no code is on two shards")
	  or note "on two shards: @{ $c->{dups} }[0 .. 4]";
	# nothing lost, nothing invented
	is(scalar keys %{ $c->{where} }, scalar keys %$want, "$label: the shards hold exactly the links made");
	# URL and visits, compared with what was made and clicked
	is(count_bad("$label url|visits", $want, \%got), 0,
		"$label: every link has its URL and exactly the visits served");
	unless ($due)
	{
		my $route = rows_of(coord('SELECT code, shorturl.route(code) FROM made'));
		is(count_bad("$label place", $route, $c->{where}), 0,
			"$label: every link is on the shard route(code) names");
	}
	return $c;
}

# check_shares checks that each shard of %weight holds its weight's share
# of a census's links, within $share_tolerance points
sub check_shares
{
	my ($label, $c) = @_;
	my (%count, $sum_w);
	my $total = scalar keys %{ $c->{where} };

	$count{ $c->{where}{$_} }++ for keys %{ $c->{where} };
	$sum_w += $_ for values %weight;
	for my $n (sort keys %weight)
	{
		my $want = 100 * $weight{$n} / $sum_w;
		my $share = 100 * ($count{$n} // 0) / $total;
		my $tolerance = share_tolerance($weight{$n} / $sum_w, $total);
		cmp_ok(abs($share - $want), '<=', $tolerance,
			sprintf('%s: shard %s holds %.2f %% of the links (weight share %.2f %%, within %.2f)',
				$label, $n, $share, $want, $tolerance));
	}
}

# predicted_moves routes every code made by the active map with the pure
# route() on the coordinator and returns code -> "source>target" for those
# whose owner changes, from a census
sub predicted_moves
{
	my ($before) = @_;
	my $new = rows_of(coord(q{SELECT code, shorturl.route(code, m.names, m.weights)
		FROM made, shorturl._active_map() m}));
	my %moves;

	for (keys %$new)
	{
		$moves{$_} = "$before->{where}{$_}>$new->{$_}" if $before->{where}{$_} ne $new->{$_};
	}
	return \%moves;
}

# moved_between returns code -> "source>target" of the codes whose shard
# differs between two censuses
sub moved_between
{
	my ($before, $after) = @_;
	my %moved;

	for (keys %{ $after->{where} })
	{
		my ($from, $to) = ($before->{where}{$_} // '(none)', $after->{where}{$_});
		$moved{$_} = "$from>$to" if $from ne $to;
	}
	return \%moved;
}

# pair_counts turns code -> "source>target" into "source>target" -> count
sub pair_counts
{
	my %c;
	$c{$_}++ for values %{ $_[0] };
	return \%c;
}

# plan_counts reads rebalance_plan() as "source>target" -> links
sub plan_counts
{
	my %c;
	for (split /\n/, coord('SELECT source, target, links FROM shorturl.rebalance_plan()'))
	{
		my ($s, $t, $n) = split /\|/;
		$c{"$s>$t"} = $n;
	}
	return \%c;
}

# leftovers lists the rows a finished rebalance must leave nowhere: its
# journal on the coordinator, moved_links, arrived_links and copied_links on
# each shard
sub leftovers
{
	my @n = ('journal ' . coord('SELECT count(*) FROM shorturl.rebalance_moves'));
	for my $name (sort keys %shard)
	{
		push @n, "$name " . $shard{$name}->safe_psql('postgres',
			q{SELECT (SELECT count(*) FROM shorturl.moved_links) || '/' || (SELECT count(*) FROM shorturl.arrived_links)
				|| '/' || (SELECT count(*) FROM shorturl.copied_links)});
	}
	return join ', ', @n;
}

# no_leftovers is what leftovers() says when nothing is left
sub no_leftovers
{
	return join ', ', 'journal 0', map { "$_ 0/0/0" } sort keys %shard;
}

# ---------------------------------------------------------------------
# 1. 30,000 links through the coordinator
# ---------------------------------------------------------------------
# the map's first rebalance finds nothing to move
coord('SET client_min_messages = warning; CALL shorturl.rebalance()');
# (the map's first rebalance: nothing to move, nothing due after it)
is(coord('SELECT pending FROM shorturl.rebalance_state'), 'f', 'the new map is balanced: no rebalance due');

my $t0 = time;
for (my $from = 1; $from <= $n_plain; $from += 10_000)
{
	my $to = $from + 9_999;
	coord(qq{INSERT INTO made SELECT g, shorturl.shorten('https://example.com/item/' || g),
		'https://example.com/item/' || g, 'plain' FROM generate_series($from, $to) g});
}
diag(sprintf('shorten through the coordinator: %d links in %.1f s', $n_plain, time - $t0));
my $n0 = $n_plain;
coord(qq{INSERT INTO made SELECT $n0 + g, shorturl.shorten('https://example.com/alias/' || g, alias => 'go-' || g),
	'https://example.com/alias/' || g, 'alias' FROM generate_series(1, $n_alias) g});
$n0 += $n_alias;
coord(qq{INSERT INTO made SELECT $n0 + g, shorturl.shorten('https://example.com/max/' || g, max_visits => 2),
	'https://example.com/max/' || g, 'max' FROM generate_series(1, $n_max) g});
$n0 += $n_max;
coord(qq{INSERT INTO made SELECT $n0 + g,
	shorturl.shorten('https://example.com/soon/' || g, expires_at => now() + interval '1 second'),
	'https://example.com/soon/' || g, 'soon' FROM generate_series(1, $n_soon) g});
my $n_total = $n0 + $n_soon;

# every call returned a code of its own; aliases are their own codes
is(coord('SELECT count(DISTINCT code) FROM made'), $n_total, "$n_total links made, each with its own code");
is(coord(qq{SELECT count(*) FROM made WHERE kind = 'alias' AND code <> 'go-' || (n - $n_plain)}), 0,
	'each alias is its own code');

# ---------------------------------------------------------------------
# 2. The spread
# ---------------------------------------------------------------------
my $c0 = check_cluster('after shorten');
check_shares('after shorten', $c0);
# a server outside the map gets nothing
is(scalar(grep { $_ eq 'delta' } values %{ $c0->{where} }), 0, 'delta, not in the map yet, holds nothing');

# ---------------------------------------------------------------------
# 3. The API through the coordinator, compared with the owner's
# ---------------------------------------------------------------------
my $sample = "(m.kind = 'plain' AND m.n % $sample_every = 0 OR m.kind <> 'plain')";
my @sample = split /\n/, coord("SELECT code FROM made m WHERE $sample ORDER BY code");
push @sample, 'nosuchcode';

# the soon-expiring links have expired
ok(ShortURL::Test::wait_until($coord, 'postgres',
		q{SELECT bool_and(shorturl.link_status(code) = 'expired') FROM made WHERE kind = 'soon'}),
	"the $n_soon links made to expire in a second have expired");

# clicks through the coordinator: 1 to 3 each; max_visits = 2 links 3 times
# serve twice; expired links serve none
my ($served, $refused, $wrong) = split /\|/,
  click("$sample AND m.kind <> 'max'", "1 + m.n % 3");
my ($served_max, $refused_max) = split /\|/, click("m.kind = 'max'", 3);
is($wrong, 0, "through the coordinator, $served clicks of sampled links got their URLs");
is($refused, coord("SELECT sum(1 + n % 3) FROM made WHERE kind = 'soon'"),
	'the clicks refused were exactly those of the expired links');
is("$served_max|$refused_max", (2 * $n_max) . "|$n_max",
	'links with max_visits = 2 clicked 3 times serve twice, then refuse');

# what_owner asks each sampled code's owner directly (unknown codes: any
# shard); what_coord asks the coordinator
my $list = join ',', map { "'$_'" } @sample;
sub what_owner
{
	my ($expr) = @_;
	my %got;
	for my $name (sort keys %shard)
	{
		my $here = rows_of($shard{$name}->safe_psql('postgres',
			"SELECT c, $expr FROM unnest(ARRAY[$list]) c"
			  . " WHERE EXISTS (SELECT FROM shorturl.links l WHERE l.code = c) OR c = 'nosuchcode'"));
		$got{$_} //= $here->{$_} for keys %$here;
	}
	return \%got;
}
sub what_coord
{
	my ($expr) = @_;
	return rows_of(coord("SELECT c, $expr FROM unnest(ARRAY[$list]) c"));
}

my $status_expr = q{shorturl.link_status(c) || ' ' || coalesce(shorturl.visits(c)::text, 'null')};
my $direct = what_owner($status_expr);
# link_status and visits: the coordinator's answer is the owner's, for
# every sampled code (active, exhausted, expired, alias, unknown)
is(count_bad('status', $direct, what_coord($status_expr)), 0,
	'link_status() and visits() through the coordinator equal the owner\'s own, for ' . scalar(@sample) . ' codes');
my %kinds;
$kinds{ (split / /, $direct->{$_})[0] }++ for keys %$direct;
# the sample covers the statuses the comparison is about
is(join(',', sort keys %kinds), 'active,exhausted,expired,unknown',
	'the sampled codes are active, exhausted, expired and unknown');

# resolve: the URL the coordinator serves is the one the owner serves
my $resolve_expr = q{coalesce(shorturl.resolve(c), 'null')};
my $by_coord = what_coord($resolve_expr);
my $by_owner = what_owner($resolve_expr);
is(count_bad('resolve', $by_owner, $by_coord), 0,
	'resolve() through the coordinator serves what resolve() on the owner serves');
# both clicks count: log them
coord('INSERT INTO clicks (code, served) VALUES ' . join ',',
	map { "('$_', " . ($by_coord->{$_} ne 'null' ? 'true' : 'false') . ')' } grep { $_ ne 'nosuchcode' } @sample);
coord('INSERT INTO clicks (code, served) VALUES ' . join ',',
	map { "('$_', " . ($by_owner->{$_} ne 'null' ? 'true' : 'false') . ')' } grep { $_ ne 'nosuchcode' } @sample);
check_cluster('after the API clicks');

# ---------------------------------------------------------------------
# 4. A fourth shard: the plan, and a rebalance terminated midway
# ---------------------------------------------------------------------
coord("SELECT shorturl.add_shard('delta', '" . ShortURL::Test::conninfo($shard{delta}) . "', 1)");
$weight{delta} = 1;
# add_shard changes the map only: a rebalance is due
is(coord('SELECT pending FROM shorturl.rebalance_state'), 't', 'adding delta makes a rebalance due');

my $before = check_cluster('delta added, before the rebalance', 'due');
my $predicted = predicted_moves($before);
my $n_predicted = scalar keys %$predicted;
# the dry run is the pure routing function's prediction, pair by pair
is_deeply(plan_counts(), pair_counts($predicted),
	"rebalance_plan() gives the moves route(code, names, weights) predicts ($n_predicted links)");
# adding a shard takes keys only to it, about its weight's share
is(scalar(grep { !/>delta$/ } values %$predicted), 0, 'every predicted move goes to delta');
cmp_ok(abs(100 * $n_predicted / $n_total - 20), '<=', share_tolerance(0.2, $n_total),
	sprintf('about a fifth of the links move (%.2f %%, within %.2f of 20)', 100 * $n_predicted / $n_total,
		share_tolerance(0.2, $n_total)));

# to_click picks the links pgbench clicks during a rebalance: ten of the
# predicted movers from each source, spread over their ids, and ten that
# stay
sub to_click
{
	my ($predicted, $census) = @_;
	my (@movers, %sources);
	$sources{ (split />/)[0] } = 1 for values %$predicted;
	for my $from (sort keys %sources)
	{
		my @m = sort grep { $predicted->{$_} =~ /^$from>/ && $census->{url}{$_} =~ m{/item/} } keys %$predicted;
		push @movers, @m[ map { int($_ * $#m / 9) } 0 .. 9 ];
	}
	my @stayers = (grep { !exists $predicted->{$_} && $census->{url}{$_} =~ m{/item/} }
		  sort keys %{ $census->{where} })[ 0 .. 9 ];
	return (@movers, @stayers);
}

# rebalance_clicking runs CALL shorturl.rebalance($batch) in a session of
# its own while rounds of pgbench (4 clients, 5 transactions each) click
# @clicked through the coordinator, logging each click.  When $kill is
# given, the rebalance's backend is terminated as soon as $kill->() is
# true (asked every 20 ms, also while a round runs).  Returns the error
# the session got, the rounds run, the output of those that did not run
# every transaction, and whether the rebalance was terminated.
my $round_clients = 4;
my $round_xacts = 5;

sub rebalance_clicking
{
	my ($batch, $kill, @clicked) = @_;
	my $script = join '',
	  map { "INSERT INTO clicks (code, served) VALUES ('$_', shorturl.resolve('$_') IS NOT NULL);\n" } @clicked;
	my $n = $round_clients * $round_xacts;
	my $run = ShortURL::Test::session($coord, 'postgres');
	my ($pid) = ShortURL::Test::ask($run, 'SET client_min_messages = warning; SELECT pg_backend_pid()');
	my ($rounds, $killed, @answer, @failed) = (0, 0);

	ShortURL::Test::send_sql($run, "CALL shorturl.rebalance($batch)");
	while (!@answer)
	{
		my $b = ShortURL::Test::start_pgbench($coord, 'postgres',
			"--client=$round_clients --jobs=2 --transactions=$round_xacts", $script);
		while ($b->{h}->pumpable)
		{
			$b->{h}->pump_nb;
			if (!@answer && !$killed && $kill && $kill->($pid))
			{
				coord("SELECT pg_terminate_backend($pid)");
				$killed = 1;
			}
			@answer = ShortURL::Test::answer($run, 0) unless @answer;
			usleep(20_000);
		}
		my ($rc, $out, $err) = ShortURL::Test::finish_pgbench($b);
		push @failed, "$out$err" unless $rc == 0 && $out =~ m{actually processed: $n/$n};
		$rounds++;
	}
	ShortURL::Test::end_session($run);
	return ($answer[1], $rounds, \@failed, $killed);
}

# last_click is where the click log is now; unserved counts the clicks
# logged since that were not served
sub last_click { return coord('SELECT coalesce(max(id), 0) FROM clicks'); }
sub unserved
{
	my ($since) = @_;
	# (a click not served is shown with its time and the rebalance's)
	my $late = coord("SELECT string_agg(format('not served: %s at %s (rebalance started %s, finished %s)',
		c.code, c.at, r.started_at, r.finished_at), E'\n')
		FROM clicks c, shorturl.rebalance_state r WHERE c.id > $since AND NOT c.served");
	diag($late) if $late ne '';
	return coord("SELECT count(*) FILTER (WHERE NOT served) || ' of ' || count(*) FROM clicks WHERE id > $since");
}

my @clicked = to_click($predicted, $before);
my $clicks_before = last_click();
my $moved_at_kill;
my ($error, $rounds, $failed, $killed) = rebalance_clicking($kill_batch, sub {
	my ($pid) = @_;
	my ($moved, $ok) = split /\|/, coord("SELECT moved, moved >= $kill_batch AND moved < planned
		FROM shorturl.rebalance_state WHERE running_pid = $pid");
	$moved_at_kill = $moved;
	return ($ok // '') eq 't';
}, @clicked);
# the rebalance was terminated while it ran, between batches of a run that
# has many
ok($killed, "the rebalance was terminated midway, after $moved_at_kill of $n_predicted links moved")
  or BAIL_OUT('the rebalance finished before it could be terminated');
like($error, qr/^57P01: /, 'its session got 57P01 (terminated by an administrator)');
is(coord('SELECT pending, finished_at IS NULL FROM shorturl.rebalance_state'), 't|t',
	'a rebalance is still due, and the terminated one is not finished');
# every click while it ran was served: no link was on no shard
is(scalar @$failed, 0, "$rounds pgbench rounds clicked during the first run, every transaction ran")
  or diag($failed->[0]);
my $not_served = unserved($clicks_before);
like($not_served, qr/^0 of [1-9]/, "every click during it was served ($not_served not)");

# run again, clicking all along
my $clicks_mid = last_click();
$t0 = time;
($error, $rounds, $failed) = rebalance_clicking(1000, undef, @clicked);
diag(sprintf('rebalance rerun: %.1f s with %d pgbench rounds alongside', time - $t0, $rounds));
# the rerun finishes what the terminated run left, then the rest
is($error, '', 'run again, the rebalance completes without error');
is(scalar @$failed, 0, "$rounds pgbench rounds clicked during the rerun, every transaction ran")
  or diag($failed->[0]);
$not_served = unserved($clicks_mid);
like($not_served, qr/^0 of [1-9]/, "every click during the rerun was served ($not_served not)");
my ($planned) = coord('SELECT planned FROM shorturl.rebalance_state');
# the rerun finishes what the terminated run left (a batch at most twice)
cmp_ok($planned, '<=', $n_predicted - $moved_at_kill + $kill_batch,
	"the rerun moved only what the terminated run left ($planned links)");
# done: nothing due, nothing half moved anywhere
is(coord('SELECT pending, moved = planned, running_pid IS NULL FROM shorturl.rebalance_state'), 'f|t|t',
	'the rebalance is done and none is due');
is(leftovers(), no_leftovers(), 'no journal row, moved_links, arrived_links or copied_links row (moved/arrived/copied) is left');

# dropped tells where lost clicks went, if any: a shard drops the clicks of
# a link deleted before they were flushed (here only moves delete links)
sub dropped
{
	return 'clicks dropped by the shards (stats.dropped_deltas): ' . join ', ',
	  map { "$_ " . $server{$_}->safe_psql('postgres', 'SELECT dropped_deltas FROM shorturl.stats') } sort keys %server;
}

my $after = check_cluster('after the rebalance');
diag(dropped());
check_shares('with delta', $after);
# what moved is exactly what the pure routing predicted before the run
my $moved = moved_between($before, $after);
is(count_bad('moved', $predicted, $moved), 0, 'every link predicted to move did, to its predicted shard');
is(count_bad('unmoved', $moved, $predicted), 0, 'no other link moved');
is(coord('SELECT count(*) FROM shorturl.rebalance_plan()'), 0, 'the plan is empty now');

# ---------------------------------------------------------------------
# 5. Remove a shard, the rebalance terminated in its last step
# ---------------------------------------------------------------------
coord(q{SELECT shorturl.remove_shard('bravo')});
delete $weight{bravo};
$before = check_cluster('bravo retiring', 'due');
$predicted = predicted_moves($before);
my $on_bravo = grep { $_ eq 'bravo' } values %{ $before->{where} };
# a retiring shard: the plan empties it, into the other shards only
is_deeply(plan_counts(), pair_counts($predicted), 'rebalance_plan() gives the predicted moves off bravo');
is(scalar(grep { !/^bravo>/ } values %$predicted), 0, 'only links of bravo are to move');
is(scalar keys %$predicted, $on_bravo, "all $on_bravo links of bravo are to move");

# The last step of a batch: add_visits on the new shard, forget_moved on
# the old one, the journal rows deleted, forget_arrived on the new one,
# commit.  The test slows forget_arrived down (a trigger sleeps) and
# terminates the rebalance while it waits there: the shards have done
# their part, the coordinator's commit never comes.
my $slow = q{CREATE FUNCTION public.slow_forget() RETURNS trigger LANGUAGE plpgsql
	AS $$BEGIN PERFORM pg_sleep(2); RETURN NULL; END$$;
	CREATE TRIGGER slow_forget BEFORE DELETE ON shorturl.arrived_links
	FOR EACH STATEMENT EXECUTE FUNCTION public.slow_forget()};
$shard{$_}->safe_psql('postgres', $slow) for qw(alpha charlie delta);
my $sleeping = q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE application_name = 'pg_shorturl coordinator' AND wait_event = 'PgSleep'};
@clicked = to_click($predicted, $before);
$clicks_before = last_click();
($error, $rounds, $failed, $killed) = rebalance_clicking(1000, sub {
	return grep { $shard{$_}->safe_psql('postgres', $sleeping) eq 't' } qw(alpha charlie delta);
}, @clicked);
# (not asserted here: a round that failed is shown, for the record)
diag("a pgbench round failed during the first run off bravo: $failed->[0]") if @$failed;
# terminated while a shard ran forget_arrived (sleeping in the trigger)
ok($killed, 'the rebalance off bravo was terminated while forget_arrived ran');
like($error, qr/^57P01: /, '... its session got 57P01');
$shard{$_}->safe_psql('postgres', 'DROP FUNCTION public.slow_forget() CASCADE') for qw(alpha charlie delta);

# run again: it must finish what the terminated run left
($error, $rounds, $failed) = rebalance_clicking(1000, undef, @clicked);
# the rerun completes, every click meanwhile served, and bravo is forgotten
is($error, '', 'run again, the rebalance off bravo completes without error');
diag("a pgbench round failed during the rerun off bravo: $failed->[0]") if @$failed;
$not_served = unserved($clicks_before);
like($not_served, qr/^0 of [1-9]/, "every click during the two runs was served ($not_served not)");
is($shard{bravo}->safe_psql('postgres', 'SELECT count(*) FROM shorturl.links'), 0, 'bravo ends empty');
is(coord(q{SELECT string_agg(name, ',' ORDER BY name) FROM shorturl.shards}), 'alpha,charlie,delta',
	'the coordinator has forgotten bravo');
is(coord(q{SELECT count(*) FROM pg_foreign_server WHERE srvname = 'shorturl_shard_bravo'})
	  . coord(q{SELECT count(*) FROM pg_foreign_table t JOIN pg_class c ON c.oid = t.ftrelid
		WHERE c.relname LIKE 'bravo\_%'})
	  . coord(q{SELECT count(*) FROM pg_foreign_server s, unnest(s.srvoptions) o
		WHERE s.srvname = 'shorturl_cluster' AND o ~ '^p\d+='}),
	'003', 'its foreign server and tables are gone; the PL/Proxy cluster has three partitions');
# nothing is due, and nothing of the terminated batch is left half done
is(coord('SELECT pending FROM shorturl.rebalance_state'), 'f', 'no rebalance is due');
my $stale = coord(q{SELECT string_agg(source || '>' || target || ':' || n, ' ') FROM
	(SELECT source, target, count(*) AS n FROM shorturl.rebalance_moves GROUP BY 1, 2) j});
is(leftovers(), no_leftovers(), 'no journal row, moved_links, arrived_links or copied_links row (moved/arrived/copied) is left')
  or diag("journal rows left: $stale");
delete $shard{bravo};
$after = check_cluster('after removing bravo');
diag(dropped());
check_shares('without bravo', $after);
# exactly bravo's links moved, where the routing said
$moved = moved_between($before, $after);
is(count_bad('moved', $predicted, $moved), 0, 'every link of bravo moved to its predicted shard');
is(count_bad('unmoved', $moved, $predicted), 0, 'no other link moved');

# ---------------------------------------------------------------------
# 6. Links that moved off bravo move again
# ---------------------------------------------------------------------
# delta's weight goes up, so links of alpha and charlie move to delta,
# among them links that the terminated run above had just moved there
coord(q{SELECT shorturl.set_shard_weight('delta', 3)});
$weight{delta} = 3;
$before = check_cluster('delta weighing 3', 'due');
$predicted = predicted_moves($before);
my %from_bravo = map { $_ => 1 } grep { exists $predicted->{$_} } keys %$moved;
note(scalar(keys %from_bravo) . ' links that came from bravo move again');
# only live links are clicked: an exhausted or expired one among them is
# never served (a CI run drew one: 80 of 3200 clicks not served, the 20
# clicks of one code in each of 4 rounds)
@clicked = ((sort grep { $before->{url}{$_} =~ m{/(?:item|alias)/} } keys %from_bravo)[ 0 .. 19 ],
	to_click($predicted, $before));
@clicked = grep { defined } @clicked[ 0 .. 39 ];
$clicks_before = last_click();
($error, $rounds, $failed) = rebalance_clicking(1000, undef, @clicked);
# rebalancing still works after the terminated run, and moves those
# links again with their counts
is($error, '', 'the rebalance to delta completes without error');
$not_served = unserved($clicks_before);
like($not_served, qr/^0 of [1-9]/, "every click during it was served ($not_served not)");
is(leftovers(), no_leftovers(), 'no journal row, moved_links, arrived_links or copied_links row (moved/arrived/copied) is left');
$after = check_cluster('after delta weighs 3');
diag(dropped());
check_shares('delta weighing 3', $after);
# exactly the predicted links moved
$moved = moved_between($before, $after);
is(count_bad('moved', $predicted, $moved), 0, 'every link predicted to move did, to its predicted shard');
is(count_bad('unmoved', $moved, $predicted), 0, 'no other link moved');

done_testing();
