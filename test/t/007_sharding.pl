# 007_sharding.pl: links sharded over several servers by a coordinator,
# each case measured with numbers.
#
# Five servers, each preloading pg_shorturl and serving its database
# postgres with a worker of its own: a coordinator and the shards alpha,
# bravo, charlie, delta.  Flushes happen only when the test (or a
# rebalance) asks for them (flush_interval = 1h), so unflushed clicks are
# under control.
#
# - map: add_shard() of three shards with weights 1, 1, 2 makes the
#   coordinator's shorturl.links a partitioned table of foreign tables,
#   with no local rows;
# - shorten: 100,000 links through the coordinator (rate printed), plus
#   aliases, links with max_visits and expires_at;
# - spread: per-shard counts, from the coordinator (per tableoid) and on
#   each shard, within 1 percentage point of the weights' shares; every link
#   on the shard route(code) names;
# - visits: a sample resolved 1 to 4 times through the coordinator: exact
#   counts by visits() and, after the shards flush, in the shards' tables;
#   max_visits = 3 resolved 5 times serves exactly 3;
# - pruning: WHERE code = '...' plans a single foreign scan, on the owner;
# - add a shard: rebalance_plan() equals the moves the pure route computes;
#   lookups work before and during CALL shorturl.rebalance(), including
#   clicks not flushed when it starts; afterwards exactly the predicted
#   codes moved, nothing lost or duplicated, every count intact, shares
#   within 1 point again (also after each later rebalance);
# - quarantine: an alias deleted on its shard stays quarantined once the
#   new shard owns the key;
# - kill: a rebalance terminated midway, then run again to completion;
# - a map change while a rebalance runs leaves no link where lookups do
#   not look;
# - remove a shard: it ends empty and leaves shorturl.shards;
# - round trip: a link that leaves a shard and comes back (one batch per
#   shard pair) keeps its count and its max_visits;
# - a stopped shard: lookups of its codes fail at once naming it (SQLSTATE
#   08006), others work, shorten() with a generated code fails only when
#   the code falls on it; after a restart lookups work again, also in a
#   session that was connected to the shard before it restarted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# How many generated links the coordinator makes, and of which extra kinds
my $n_plain = 100_000;
my $n_alias = 300;
my $n_max = 300;
my $n_exp = 300;
my $n_soon = 20;

# The sample resolved through the coordinator: every 50th plain link, and
# every third alias
my $sample_every = 50;

# Shares must be within this many percentage points of the weights'
my $share_tolerance = 1.0;

# A lookup of a stopped shard's code must fail within this many seconds
my $fail_limit = 10;

# ---------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------

# make_node starts a server that preloads pg_shorturl, with the extension
sub make_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_shorturl'
shorturl.database = 'postgres'
shorturl.flush_interval = '1h'
shorturl.purge_interval = '1h'
log_line_prefix = '%m [%p] %b '
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
	return $node;
}

my $coord = make_node('coordinator');
my %node = map { $_ => make_node($_) } qw(alpha bravo charlie delta);

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

# coord runs SQL on the coordinator and returns its output
sub coord { return $coord->safe_psql('postgres', $_[0]); }

# on runs SQL on a shard's server
sub on { return $node{ $_[0] }->safe_psql('postgres', $_[1]); }

# conninfo is the libpq connection string of a shard's server
sub conninfo
{
	my ($n) = @_;
	return 'host=' . $node{$n}->host . ' port=' . $node{$n}->port . ' dbname=postgres';
}

# shards lists the shards of the coordinator's map, retiring or not
sub shards { return split /\n/, coord('SELECT name FROM shorturl.shards ORDER BY name'); }

# flush_shards writes every live shard's pending clicks to its table
sub flush_shards
{
	on($_, 'SELECT shorturl.flush()') for shards();
}

# rows_of reads "code|rest" lines into a hash
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

# snapshot reads every shard server's links directly (not through the
# coordinator): code -> shard, the link's fields, its visits; and the codes
# found on more than one server
sub snapshot
{
	my (%where, %row, %visits, @dups);

	for my $n (sort keys %node)
	{
		my $out = on($n,
			q{SELECT code, visits, concat_ws(';', url, created_at, expires_at,
				max_visits, is_alias) FROM shorturl.links});
		for (split /\n/, $out)
		{
			my ($code, $v, $rest) = split /\|/, $_, 3;
			push @dups, $code if exists $where{$code};
			$where{$code} = $n;
			$row{$code} = $rest;
			$visits{$code} = $v;
		}
	}
	return { where => \%where, row => \%row, visits => \%visits, dups => \@dups };
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

# The fields of every link as made (code -> url;created_at;...)
my $baseline;

# The map's weights, as the test set them (retiring shards left out)
my %weight;

# check_cluster flushes the shards and checks every link on the servers:
# each exactly once, unchanged, on the shard route(code) names (unless a
# rebalance is due: pass $due), with the visits the test counted.  Returns
# the snapshot.
sub check_cluster
{
	my ($label, $due) = @_;

	flush_shards();
	my $s = snapshot();
	my $made = rows_of(coord('SELECT code, expected FROM made'));
	my $route = rows_of(coord('SELECT code, shorturl.route(code) FROM made'));

	is(scalar @{ $s->{dups} }, 0, "$label: no code on two shards")
	  or note "duplicates: @{ $s->{dups} }[0 .. 4]";
	is(scalar keys %{ $s->{where} }, scalar keys %$made,
		"$label: the shards hold exactly the links made");
	is(count_bad("$label row", $baseline, $s->{row}), 0,
		"$label: every link is there with its url, created_at, limits, alias flag unchanged");
	is(count_bad("$label place", $route, $s->{where}), 0,
		"$label: every link is on the shard route(code) names")
	  unless $due;
	is(count_bad("$label visits", $made, $s->{visits}), 0,
		"$label: every link's visits in its shard's table are the clicks served");
	return $s;
}

# resolve resolves links of made through the coordinator, $times times each
# (an SQL expression over m), and adds what was served to made.expected;
# returns "refused|wrong url|asked"
sub resolve
{
	my ($where, $times) = @_;
	return coord(qq{
		WITH r AS MATERIALIZED (
			SELECT m.code, m.url, shorturl.resolve(m.code) AS got
			FROM made m, generate_series(1, $times) t
			WHERE $where),
		u AS (
			UPDATE made m SET expected = m.expected + c.k
			FROM (SELECT code, count(*) AS k FROM r WHERE got IS NOT NULL GROUP BY code) c
			WHERE c.code = m.code)
		SELECT count(*) FILTER (WHERE got IS NULL),
		       count(*) FILTER (WHERE got <> url),
		       count(*)
		FROM r});
}

# check_shares checks that each shard of %weight holds its weight's share
# of the links of a snapshot, within $share_tolerance percentage points,
# and prints the figures
sub check_shares
{
	my ($label, $s) = @_;
	my (%count, $sum_w);
	my $total = scalar keys %{ $s->{where} };

	$count{ $s->{where}{$_} }++ for keys %{ $s->{where} };
	$sum_w += $_ for values %weight;
	for my $n (sort keys %weight)
	{
		my $want = 100 * $weight{$n} / $sum_w;
		my $share = 100 * ($count{$n} // 0) / $total;
		diag(sprintf('%s: shard %-7s weight %g: %6d links, %.2f %% (weight share %.2f %%)',
				$label, $n, $weight{$n}, $count{$n} // 0, $share, $want));
		cmp_ok(abs($share - $want), '<=', $share_tolerance,
			"$label: shard $n holds its weight's share within $share_tolerance point");
	}
	return \%count;
}

# read_weights sets %weight from the coordinator's map
sub read_weights
{
	%weight = map { split /\|/ }
	  split /\n/, coord('SELECT name, weight FROM shorturl.shards WHERE NOT retiring');
}

# count_links counts the links of made that pass $filter (on made's own
# columns), then $cond (which may call the API): the fence keeps the
# planner from calling the API on links the filter excludes
sub count_links
{
	my ($filter, $cond) = @_;
	return coord(qq{SELECT count(*) FROM (SELECT * FROM made m WHERE $filter OFFSET 0) m WHERE $cond});
}

# moved_between lists code -> "source>target" of the codes whose shard
# differs between two snapshots
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

# predicted_moves routes every code of made by the current map (the pure
# route over active_map()) and lists those that change shard as
# code -> "source>target"
sub predicted_moves
{
	my ($before) = @_;
	my $new = rows_of(coord(q{SELECT code, shorturl.route(code, m.names, m.weights)
		FROM made, shorturl.active_map() m}));
	my %moves;

	for (keys %$new)
	{
		$moves{$_} = "$before->{where}{$_}>$new->{$_}" if $before->{where}{$_} ne $new->{$_};
	}
	return \%moves;
}

# pair_counts turns code -> "source>target" into "source>target" -> count
sub pair_counts
{
	my ($moves) = @_;
	my %c;
	$c{$_}++ for values %$moves;
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

# rebalance runs CALL shorturl.rebalance() to completion and returns the
# seconds it took
sub rebalance
{
	my ($args) = @_;
	my $t0 = time;
	# psql sends the lines one by one: CALL runs outside a transaction block
	coord("SET client_min_messages = warning;\nCALL shorturl.rebalance($args)");
	return time - $t0;
}

# wait_until polls a coordinator query until it returns t (at most $timeout s)
sub wait_until
{
	my ($sql, $timeout) = @_;
	my $deadline = time + ($timeout // 60);

	while (time < $deadline)
	{
		my ($rc, $out) = $coord->psql('postgres', $sql);
		return 1 if $rc == 0 && $out eq 't';
		usleep(10_000);
	}
	return 0;
}

# fails runs SQL on the coordinator with a timeout: its error and seconds
sub fails
{
	my ($sql) = @_;
	my ($e, $timed_out) = ('', 0);
	my $t = time;
	$coord->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		stderr => \$e, timeout => 60, timed_out => \$timed_out);
	return ($timed_out ? 'timed out' : $e, time - $t);
}

# ---------------------------------------------------------------------
# 1. The map: three shards, weights 1, 1, 2
# ---------------------------------------------------------------------
%weight = (alpha => 1, bravo => 1, charlie => 2);
coord("SELECT shorturl.add_shard('$_', '" . conninfo($_) . "', $weight{$_})")
  for sort keys %weight;

is(coord(q{SELECT string_agg(name || ':' || weight, ',' ORDER BY name) FROM shorturl.shards}),
	'alpha:1,bravo:1,charlie:2', 'the coordinator has three shards with weights 1, 1, 2');
is(coord(q{SELECT relkind FROM pg_class WHERE oid = 'shorturl.links'::regclass}),
	'p', "the coordinator's shorturl.links is partitioned");
is(coord(q{SELECT string_agg(inhrelid::regclass::text, ',' ORDER BY inhrelid::regclass::text)
	FROM pg_inherits WHERE inhparent = 'shorturl.links'::regclass}),
	'shorturl_remote.alpha_links,shorturl_remote.bravo_links,shorturl_remote.charlie_links',
	'its partitions are the three shards\' foreign tables');
is(coord(q{SELECT count(*) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
	WHERE i.inhparent = 'shorturl.links'::regclass AND c.relkind <> 'f'}),
	0, 'every partition is a foreign table');
is(on($_, 'SELECT mode FROM shorturl.stats'), 'shared',
	"shard $_ counts clicks in shared memory") for sort keys %node;

# ---------------------------------------------------------------------
# 2. Shorten 100,000 links through the coordinator
# ---------------------------------------------------------------------
coord(q{CREATE TABLE made (n integer PRIMARY KEY, code text COLLATE "C" UNIQUE NOT NULL,
	url text NOT NULL, kind text NOT NULL, expected bigint NOT NULL DEFAULT 0)});

my $chunk = 25_000;
my $t0 = time;
for (my $from = 1; $from <= $n_plain; $from += $chunk)
{
	my $to = $from + $chunk - 1 < $n_plain ? $from + $chunk - 1 : $n_plain;
	coord(qq{INSERT INTO made (n, code, url, kind)
		SELECT g, shorturl.shorten('https://example.com/item/' || g), 'https://example.com/item/' || g, 'plain'
		FROM generate_series($from, $to) g});
}
my $shorten_secs = time - $t0;
my $shorten_rate = $n_plain / $shorten_secs;
diag(sprintf('shorten through the coordinator: %d links in %.1f s, %.0f links/s',
		$n_plain, $shorten_secs, $shorten_rate));

my $n0 = $n_plain;
coord(qq{INSERT INTO made (n, code, url, kind)
	SELECT $n0 + g, shorturl.shorten('https://example.com/alias/' || g, alias => 'go-' || g),
	       'https://example.com/alias/' || g, 'alias'
	FROM generate_series(1, $n_alias) g});
$n0 += $n_alias;
coord(qq{INSERT INTO made (n, code, url, kind)
	SELECT $n0 + g, shorturl.shorten('https://example.com/max/' || g, max_visits => 3),
	       'https://example.com/max/' || g, 'max'
	FROM generate_series(1, $n_max) g});
$n0 += $n_max;
coord(qq{INSERT INTO made (n, code, url, kind)
	SELECT $n0 + g, shorturl.shorten('https://example.com/exp/' || g,
	                                 expires_at => now() + interval '1 day'),
	       'https://example.com/exp/' || g, 'exp'
	FROM generate_series(1, $n_exp) g});
$n0 += $n_exp;
coord(qq{INSERT INTO made (n, code, url, kind)
	SELECT $n0 + g, shorturl.shorten('https://example.com/soon/' || g,
	                                 expires_at => now() + interval '2 seconds'),
	       'https://example.com/soon/' || g, 'soon'
	FROM generate_series(1, $n_soon) g});
my $n_total = $n_plain + $n_alias + $n_max + $n_exp + $n_soon;

is(coord('SELECT count(*) FROM made'), $n_total, "$n_total links made");
is(coord(qq{SELECT count(*) FROM made WHERE kind = 'alias' AND code <> 'go-' || (n - $n_plain)}),
	0, 'each alias is its own code');
is(coord('SELECT count(*) FROM ONLY shorturl.links'), 0,
	"the coordinator's shorturl.links has no rows of its own");
is(coord('SELECT count(*) FROM shorturl.links_unsharded'), 0,
	"the coordinator's former links table stayed empty");
is(coord(q{SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
	WHERE s.nspname = 'shorturl' AND c.relname = 'links' AND c.relkind = 'r'}),
	0, 'the coordinator stores no links locally');

my $err;
$coord->psql('postgres', q{SELECT shorturl.shorten('https://example.com/dup', alias => 'go-1')},
	stderr => \$err);
like($err, qr/alias "go-1" is already taken/,
	'an alias taken on its shard cannot be shortened again through the coordinator');

# An alias deleted on its shard is quarantined there.  It is one that the
# fourth shard will own (the map of step 6), so step 6 can check that the
# quarantine still holds once the key has a new owner.
my $gone = coord(q{SELECT a FROM (SELECT 'gone-' || g AS a FROM generate_series(1, 10000) g) s
	WHERE shorturl.route(a, '{alpha,bravo,charlie,delta}', '{1,1,2,1}') = 'delta'
	ORDER BY length(a), a LIMIT 1});
my $gone_shard = coord("SELECT shorturl.route('$gone')");
coord("SELECT shorturl.shorten('https://example.com/gone', alias => '$gone')");
on($gone_shard, "DELETE FROM shorturl.links WHERE code = '$gone'");
$coord->psql('postgres', "SELECT shorturl.shorten('https://example.com/other', alias => '$gone')",
	stderr => \$err);
like($err, qr/alias "$gone" is quarantined/,
	"an alias deleted on its shard ($gone_shard) is quarantined through the coordinator");

# ---------------------------------------------------------------------
# 3. The spread follows the weights
# ---------------------------------------------------------------------
$baseline = snapshot()->{row};
my $s0 = check_cluster('after shorten');

my $direct = check_shares('after shorten', $s0);
my $via_coord = rows_of(coord(q{
	SELECT regexp_replace(tableoid::regclass::text, '^shorturl_remote\.(.*)_links$', '\1'), count(*)
	FROM shorturl.links GROUP BY 1}));
is($via_coord->{$_}, $direct->{$_},
	"shard $_: the count per tableoid on the coordinator equals the shard's own")
  for sort keys %weight;
is($direct->{delta} // 0, 0, 'the server not yet in the map holds nothing');

# ---------------------------------------------------------------------
# 4. Visits through the coordinator
# ---------------------------------------------------------------------
my $sample = "(m.kind = 'plain' AND m.n % $sample_every = 0 OR m.kind = 'alias' AND m.n % 3 = 0)";
my $n_sample = coord("SELECT count(*) FROM made m WHERE $sample");
is(resolve($sample, '1 + m.n % 4'), "0|0|" . coord("SELECT sum(1 + m.n % 4) FROM made m WHERE $sample"),
	"$n_sample sampled links resolve 1 to 4 times each through the coordinator, to their URLs");
is(count_links($sample, 'shorturl.visits(m.code) IS DISTINCT FROM 1 + m.n % 4'), 0, 'visits() on the coordinator gives each sampled link its exact count');
cmp_ok(on('charlie', 'SELECT pending_visits FROM shorturl.stats'), '>', 0,
	'the clicks wait in the shard\'s shared memory');

my $maxed = "m.kind = 'max' AND m.n % 6 = 0";
my $n_maxed = coord("SELECT count(*) FROM made m WHERE $maxed");
is(resolve($maxed, 5), (2 * $n_maxed) . "|0|" . (5 * $n_maxed),
	"$n_maxed links with max_visits = 3, resolved 5 times each, serve exactly 3 times each");
is(count_links($maxed, "shorturl.link_status(m.code) <> 'exhausted' OR shorturl.visits(m.code) <> 3"), 0, 'they are exhausted, with 3 visits');

# the soon-expiring links have expired by now
usleep(1_000_000) while coord(q{SELECT now() < max(created_at) + interval '2.5 seconds'
	FROM shorturl.links WHERE expires_at < now() + interval '1 hour'}) eq 't';
is(count_links("m.kind = 'soon'", "shorturl.link_status(m.code) = 'expired'"), $n_soon,
	'links past their expires_at are expired on the coordinator');
is(resolve("m.kind = 'soon'", 1), "$n_soon|0|$n_soon", 'and refused');
is(count_links("m.kind IN ('exp', 'alias')", "shorturl.link_status(m.code) = 'active'"), $n_exp + $n_alias, 'aliases and links expiring tomorrow are active');
is(coord(q{SELECT shorturl.link_status('nosuchcode'), shorturl.visits('nosuchcode') IS NULL,
	shorturl.resolve('nosuchcode') IS NULL}),
	'unknown|t|t', 'an unknown code is unknown on the coordinator');

check_cluster('after resolves');

# ---------------------------------------------------------------------
# 5. Pruning: a lookup by code reads one shard
# ---------------------------------------------------------------------
for my $n (sort keys %weight)
{
	my $c = coord(qq{SELECT code FROM made WHERE shorturl.route(code) = '$n' ORDER BY n LIMIT 1});
	my $plan = coord(qq{EXPLAIN (COSTS OFF) SELECT * FROM shorturl.links WHERE code = '$c'});
	my @scans = ($plan =~ /Foreign Scan/g);
	is(scalar @scans, 1, "EXPLAIN of a lookup of a code of $n shows a single foreign scan")
	  or note $plan;
	like($plan, qr/Foreign Scan on ${n}_links/, "... on $n\'s table");
	is(coord(qq{SELECT url FROM shorturl.links WHERE code = '$c'}),
		coord(qq{SELECT url FROM made WHERE code = '$c'}), '... and finds the link');
}
my @all_scans = (coord('EXPLAIN (COSTS OFF) SELECT * FROM shorturl.links') =~ /Foreign Scan/g);
is(scalar @all_scans, 3, 'without WHERE code = ..., the plan reads the three shards');

# ---------------------------------------------------------------------
# 6. Add a fourth shard and rebalance
# ---------------------------------------------------------------------
coord("SELECT shorturl.add_shard('delta', '" . conninfo('delta') . "', 1)");
$weight{delta} = 1;
is(coord('SELECT pending FROM shorturl.rebalance_state'), 't', 'adding a shard makes a rebalance due');

my $before = check_cluster('before adding delta', 'due');
my $predicted = predicted_moves($before);
my $pred_pairs = pair_counts($predicted);
my $plan = plan_counts();
is_deeply($plan, $pred_pairs,
	'rebalance_plan() gives, per source and target, the moves the pure route predicts');
is(scalar(grep { !/>delta$/ } values %$predicted), 0, 'adding a shard moves links only to it');
my $n_predicted = scalar keys %$predicted;
diag("adding delta: $n_predicted links to move, plan: "
	  . join(', ', map { "$_ $plan->{$_}" } sort keys %$plan));
cmp_ok(abs(100 * $n_predicted / $n_total - 20), '<=', $share_tolerance,
	'about a fifth of the links move to the new shard');

# clicks right before the rebalance, left unflushed on the old shards
is(resolve($sample, 1), "0|0|$n_sample",
	'before the rebalance every sampled link resolves (those due to move from their old shard)');
my $unflushed = 0;
$unflushed += on($_, 'SELECT pending_visits FROM shorturl.stats') for qw(alpha bravo charlie);
cmp_ok($unflushed, '>=', $n_sample, "$unflushed clicks are unflushed when the rebalance starts");

my $bg = $coord->background_psql('postgres', on_error_stop => 0);
$t0 = time;
$bg->query_until(qr/rebalancing\n/,
	"SET client_min_messages = warning;\n\\echo rebalancing\nCALL shorturl.rebalance();\n\\echo rebalanced\n");
my ($rounds, $during, $refused, $finished) = (0, 0, 0, 0);
while (!$finished)
{
	my $state = coord('SELECT finished_at IS NOT NULL, moved FROM shorturl.rebalance_state');
	my ($fin, $moved) = split /\|/, $state;
	$finished = $fin eq 't';
	my ($no, $wrong, $asked) = split /\|/, resolve("$sample AND m.n % 20 = $rounds % 20", 1);
	$refused += $no + $wrong;
	$during++ if !$finished && $moved > 0;
	$rounds++;
	last if time - $t0 > 300;
}
$bg->query_until(qr/rebalanced\n/, '');
my $rebalance_secs = time - $t0;
$bg->quit;
is($refused, 0, "every sampled link resolved during the rebalance ($rounds rounds, $during mid-way)");
cmp_ok($during, '>', 0, 'some of those lookups ran while links were mid-move');
is(coord('SELECT pending, planned, moved, running_pid IS NULL, finished_at IS NOT NULL
	FROM shorturl.rebalance_state'), "f|$n_predicted|$n_predicted|t|t",
	'the rebalance moved every planned link and is done');
diag(sprintf('rebalance to add delta: %d links in %.1f s (with lookups), %.0f links/s',
		$n_predicted, $rebalance_secs, $n_predicted / $rebalance_secs));

my $after = check_cluster('after adding delta');
check_shares('after adding delta', $after);
my $moved = moved_between($before, $after);
is(count_bad('moved', $predicted, $moved), 0, 'every link the routing said would move did');
is(count_bad('unmoved', $moved, $predicted), 0, 'no other link moved');
is(coord("SELECT shorturl.route('$gone')"), 'delta', "the quarantined alias $gone now routes to delta");
# moving aliases quarantines none, and the one quarantine row follows its key
is(on($_, 'SELECT count(*) FROM shorturl.alias_quarantine'), $_ eq 'delta' ? 1 : 0,
	"the quarantine of $gone is on its new owner only ($_)") for sort keys %node;
$coord->psql('postgres', "SELECT shorturl.shorten('https://example.com/other', alias => '$gone')",
	stderr => \$err);
like($err, qr/alias "$gone" is quarantined/, 'it is still quarantined through the coordinator')
  or on('delta', "DELETE FROM shorturl.links WHERE code = '$gone'");
is(count_links($sample, 'shorturl.visits(m.code) IS DISTINCT FROM m.expected'), 0, 'visits() on the coordinator agrees for every sampled link');
{
	my $c = coord(q{SELECT code FROM made WHERE shorturl.route(code) = 'delta' ORDER BY n LIMIT 1});
	like(coord(qq{EXPLAIN (COSTS OFF) SELECT * FROM shorturl.links WHERE code = '$c'}),
		qr/^\s*Foreign Scan on delta_links links\s*$/s, 'a lookup of a moved code prunes to the new shard');
}

# ---------------------------------------------------------------------
# 7. A rebalance killed midway, then run again
# ---------------------------------------------------------------------
coord("SELECT shorturl.set_shard_weight('charlie', 1)");
$weight{charlie} = 1;
$before = check_cluster('before reweighting charlie', 'due');
$predicted = predicted_moves($before);
is_deeply(plan_counts(), pair_counts($predicted),
	'after set_shard_weight, rebalance_plan() gives the predicted moves');
is(scalar(grep { !/^charlie>/ } values %$predicted), 0, 'lowering a weight moves links only away from it');
$n_predicted = scalar keys %$predicted;
diag("charlie weight 2 -> 1: $n_predicted links to move");
is(resolve($sample, 1), "0|0|$n_sample", 'every sampled link resolves before this rebalance');

$bg = $coord->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/rebalancing\n/,
	"SET client_min_messages = warning;\n\\echo rebalancing\nCALL shorturl.rebalance(100);\n");
ok(wait_until('SELECT finished_at IS NULL AND moved > 0 FROM shorturl.rebalance_state'),
	'the rebalance is under way');
$coord->psql('postgres', 'CALL shorturl.rebalance()', stderr => \$err);
like($err, qr/a rebalance is already running \(pid \d+\)/, 'a second rebalance is refused meanwhile');
my ($pid, $moved_at_kill) = split /\|/, coord('SELECT running_pid, moved FROM shorturl.rebalance_state');
is(coord("SELECT pg_terminate_backend($pid)"), 't', 'the rebalance is terminated');
ok(wait_until("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)"),
	'its backend is gone');
eval { $bg->quit; };
($moved_at_kill) = coord('SELECT moved FROM shorturl.rebalance_state');
cmp_ok($moved_at_kill, '<', $n_predicted, "it stopped midway ($moved_at_kill of $n_predicted moved)");
my $mid = snapshot();
note scalar(@{ $mid->{dups} }) . ' links were on two shards when it stopped';
is(coord('SELECT pending, finished_at IS NULL FROM shorturl.rebalance_state'), 't|t',
	'the rebalance is still due');
is(resolve($sample, 1), "0|0|$n_sample", 'every sampled link resolves with the rebalance half done');

$rebalance_secs = rebalance('');
my $rest = coord('SELECT planned FROM shorturl.rebalance_state');
diag(sprintf('rebalance rerun: %d links in %.1f s, %.0f links/s',
		$rest, $rebalance_secs, $rest / $rebalance_secs));
is(coord('SELECT pending, moved = planned, running_pid IS NULL FROM shorturl.rebalance_state'),
	'f|t|t', 'run again, it completes and nothing is due');
cmp_ok($rest, '<=', $n_predicted - $moved_at_kill + 100,
	'the rerun moves only what the killed run left');
$after = check_cluster('after the killed rebalance and its rerun');
check_shares('charlie at weight 1', $after);
$moved = moved_between($before, $after);
is(count_bad('moved', $predicted, $moved), 0, 'every link the routing said would move did');
is(count_bad('unmoved', $moved, $predicted), 0, 'no other link moved');

# ---------------------------------------------------------------------
# 7b. The map changes while a rebalance runs
# ---------------------------------------------------------------------
# The change may be refused or accepted, but no link may be left where
# lookups do not look: when the rebalance ends, either another is due or
# nothing is left to move.
coord("SELECT shorturl.set_shard_weight('alpha', 2)");
$bg = $coord->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/rebalancing\n/,
	"SET client_min_messages = warning;\n\\echo rebalancing\nCALL shorturl.rebalance(500);\n\\echo rebalanced\n");
ok(wait_until('SELECT finished_at IS NULL AND moved > 0 FROM shorturl.rebalance_state'),
	"a rebalance for alpha's new weight is under way");
my ($rc_weight) = $coord->psql('postgres', "SELECT shorturl.set_shard_weight('delta', 2)", stderr => \$err);
my $running = coord('SELECT finished_at IS NULL FROM shorturl.rebalance_state');
$bg->query_until(qr/rebalanced\n/, '');
$bg->quit;
is($running, 't', 'the map changed while the rebalance was still running');
diag('set_shard_weight during a rebalance: ' . ($rc_weight == 0 ? 'accepted' : "refused: $err"));
read_weights();
my $misplaced = coord('SELECT coalesce(sum(links), 0) FROM shorturl.rebalance_plan()');
ok(coord('SELECT pending FROM shorturl.rebalance_state') eq 't' || $misplaced == 0,
	"when it ends, a rebalance is still due or nothing is left to move ($misplaced links to move)");
is(resolve($sample, 1), "0|0|$n_sample", 'every sampled link resolves after it');
rebalance('');
is(coord('SELECT pending FROM shorturl.rebalance_state'), 'f', 'run again, nothing is due');
$after = check_cluster('after a map change during a rebalance');
check_shares('after a map change during a rebalance', $after);

# ---------------------------------------------------------------------
# 8. Remove a shard
# ---------------------------------------------------------------------
coord("SELECT shorturl.remove_shard('bravo')");
delete $weight{bravo};
is(coord(q{SELECT retiring FROM shorturl.shards WHERE name = 'bravo'}), 't', 'bravo is retiring');
$before = check_cluster('before removing bravo', 'due');
$predicted = predicted_moves($before);
is_deeply(plan_counts(), pair_counts($predicted), 'rebalance_plan() moves bravo\'s links away');
is(scalar(grep { !/^bravo>/ } values %$predicted), 0, 'only bravo\'s links move');
is(scalar keys %$predicted, scalar(grep { $_ eq 'bravo' } values %{ $before->{where} }),
	'all of bravo\'s links move');
is(resolve($sample, 1), "0|0|$n_sample", 'every sampled link resolves while bravo retires');
$rebalance_secs = rebalance('');
diag(sprintf('rebalance to remove bravo: %d links in %.1f s, %.0f links/s',
		scalar keys %$predicted, $rebalance_secs, (scalar keys %$predicted) / $rebalance_secs));
is(on('bravo', 'SELECT count(*) FROM shorturl.links'), 0, 'bravo ends empty');
is(coord(q{SELECT string_agg(name, ',' ORDER BY name) FROM shorturl.shards}),
	'alpha,charlie,delta', 'and has left shorturl.shards');
is(coord(q{SELECT count(*) FROM pg_foreign_server WHERE srvname = 'shorturl_shard_bravo'})
	  . coord(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'shorturl.links'::regclass}),
	'03', 'its foreign server is dropped; three partitions remain');
is(coord('SELECT pending FROM shorturl.rebalance_state'), 'f', 'nothing is due');
$after = check_cluster('after removing bravo');
check_shares('after removing bravo', $after);
$moved = moved_between($before, $after);
is(count_bad('moved', $predicted, $moved), 0, 'every link of bravo moved where the routing said');
is(count_bad('unmoved', $moved, $predicted), 0, 'no other link moved');

# ---------------------------------------------------------------------
# 8b. Round trip: a link leaves a shard and comes back
# ---------------------------------------------------------------------
# An alias on alpha that a returning bravo would take: it goes to bravo and
# back.  One batch per shard pair, so alpha is flushed once on the way out.
my $trip = coord(q{SELECT a FROM (SELECT 'trip-' || g AS a FROM generate_series(1, 10000) g) s,
	shorturl.active_map() m
	WHERE shorturl.route(a) = 'alpha'
	  AND shorturl.route(a, m.names || 'bravo'::text, m.weights || 1::float8) = 'bravo'
	ORDER BY length(a), a LIMIT 1});
coord(qq{INSERT INTO made (n, code, url, kind)
	SELECT $n_total + 1, shorturl.shorten('https://example.com/trip', max_visits => 5, alias => '$trip'),
	       'https://example.com/trip', 'trip'});
$baseline->{$trip} = on('alpha', qq{SELECT concat_ws(';', url, created_at, expires_at, max_visits, is_alias)
	FROM shorturl.links WHERE code = '$trip'});
is(resolve("m.code = '$trip'", 3), '0|0|3', "alias $trip (max_visits 5) on alpha serves 3 visits");
coord("SELECT shorturl.add_shard('bravo', '" . conninfo('bravo') . "', 1)");
rebalance('batch_size => 1000000');
is(on('bravo', "SELECT count(*) FROM shorturl.links WHERE code = '$trip'"), 1, 'it moved to bravo');
is(resolve("m.code = '$trip'", 3), '1|0|3', 'there it serves 2 more and is refused the 3rd time');
is(coord("SELECT shorturl.link_status('$trip') || ' ' || shorturl.visits('$trip')"), 'exhausted 5',
	'it is exhausted with 5 visits');
coord("SELECT shorturl.remove_shard('bravo')");
rebalance('batch_size => 1000000');
is(on('alpha', "SELECT count(*) FROM shorturl.links WHERE code = '$trip'"), 1, 'it came back to alpha');
is(coord("SELECT shorturl.link_status('$trip') || ' ' || shorturl.visits('$trip')"), 'exhausted 5',
	'back on alpha it is still exhausted with 5 visits');
is(resolve("m.code = '$trip'", 2), '2|0|2', 'and serves no more than its max_visits');
is(coord(q{SELECT string_agg(name, ',' ORDER BY name) FROM shorturl.shards}),
	'alpha,charlie,delta', 'bravo has left again');
check_cluster('after the round trip');

# ---------------------------------------------------------------------
# 9. A stopped shard
# ---------------------------------------------------------------------
my %code_on = map {
	my $n = $_;
	$n => coord(qq{SELECT code FROM made WHERE kind = 'plain' AND shorturl.route(code) = '$n'
		ORDER BY n LIMIT 1})
} qw(alpha charlie delta);
my $alias_on_charlie = coord(q{SELECT a FROM (SELECT 'down-' || g AS a FROM generate_series(1, 1000) g) s
	WHERE shorturl.route(a) = 'charlie' ORDER BY length(a), a LIMIT 1});

# a session that has talked to charlie before it stops
my $pooled = $coord->background_psql('postgres', on_error_stop => 0);
like($pooled->query("SELECT shorturl.resolve('$code_on{charlie}')"), qr/^https:/,
	'a long-lived session resolves a code of charlie');

$node{charlie}->stop;

my $worst = 0;
for my $case (
	[ 'resolve', "SELECT shorturl.resolve('$code_on{charlie}')" ],
	[ 'link_status', "SELECT shorturl.link_status('$code_on{charlie}')" ],
	[ 'visits', "SELECT shorturl.visits('$code_on{charlie}')" ],
	[ 'shorten with an alias', "SELECT shorturl.shorten('https://example.com/x', alias => '$alias_on_charlie')" ],
	[ 'shorten with an alias and reuse',
		"SELECT shorturl.shorten('https://example.com/x', alias => '$alias_on_charlie', reuse => true)" ])
{
	my ($e, $secs) = fails($case->[1]);
	$worst = $secs if $secs > $worst;
	like($e, qr/08006: shard "charlie" is unavailable/,
		"$case->[0] of a code of the stopped shard fails naming it (SQLSTATE 08006)")
	  or note $e;
	cmp_ok($secs, '<', $fail_limit, sprintf('... within %.2f s', $secs));
}
diag(sprintf('a stopped shard: lookups fail in at most %.2f s', $worst));

# shorten() with a generated code: the code picks the shard, so those that
# fall on charlie fail, naming it
my ($down_ok, $down_named, $down_tries) = (0, 0, 40);
for my $i (1 .. $down_tries)
{
	my ($e, $timed_out) = ('', 0);
	my $rc = $coord->psql('postgres', qq{INSERT INTO made (n, code, url, kind)
		SELECT $n_total + 100 + $i, shorturl.shorten('https://example.com/down/$i'),
		       'https://example.com/down/$i', 'down'},
		stderr => \$e, timeout => 60, timed_out => \$timed_out);
	$down_ok++ if $rc == 0;
	$down_named++ if $e =~ /shard "charlie" is unavailable/;
}
diag("with charlie stopped, shorten() with a generated code succeeded $down_ok times of $down_tries");
is($down_ok + $down_named, $down_tries,
	'shorten() with a generated code succeeds, or fails naming the stopped shard');
$pooled->query("SELECT shorturl.resolve('$code_on{charlie}')");
like($pooled->{stderr}, qr/shard "charlie" is unavailable/,
	'the long-lived session gets the same error');
$pooled->{stderr} = '';
my $others = "m.kind = 'plain' AND m.n % 97 = 0 AND shorturl.route(m.code) <> 'charlie'";
my $n_others = coord("SELECT count(*) FROM made m WHERE $others");
is(resolve($others, 1), "0|0|$n_others", "the $n_others sampled codes of the other shards still resolve");

$node{charlie}->start;
is(resolve("m.code = '$code_on{charlie}'", 1), '0|0|1', 'restarted, the shard answers lookups again');
my $url_charlie = coord("SELECT url FROM made WHERE code = '$code_on{charlie}'");
my $pooled_served = 1;
my $got = $pooled->query("SELECT shorturl.resolve('$code_on{charlie}')");
$pooled_served++ if $got eq $url_charlie;
is($got, $url_charlie, 'so does the long-lived session');

# charlie restarts again while the long-lived session is idle: its next
# lookup must not fail on the connection the restart broke
$node{charlie}->restart;
$got = $pooled->query("SELECT shorturl.resolve('$code_on{charlie}')");
$pooled_served++ if $got eq $url_charlie;
is($got, $url_charlie, 'a session idle across a shard restart resolves at its first try')
  or note $pooled->{stderr};
$pooled->quit;
coord("UPDATE made SET expected = expected + $pooled_served WHERE code = '$code_on{charlie}'");
check_cluster('after the stopped shard restarted');

$_->stop for ($coord, values %node);
done_testing();
