# 012_analytics_durability.pl: a link's hourly series keeps adding up to
# its count across restarts: a clean restart carries the unflushed clicks
# of both, an immediate stop loses the same clicks from both.  Every check
# reads, for each link, visits() and the sum of visit_series(code, NULL,
# NULL, 'hour') with shorturl.count_bots on (and off, where the bots'
# clicks are known), so a click lost by one and not by the other, or
# restored into one only, shows as a number.
#
# Clicks come from pgbench clients whose scripts fail (division by zero)
# if resolve() returns NULL, with referrers, countries, user agents (a
# browser's, a phone's, Googlebot's) and visitors, or with resolve(code)
# alone.
#
# - (a) clean restart: clicks while the worker flushes every 100 ms, then
#   more with flush_interval = 1h so that they are still in shared memory
#   at the restart; before and after pg_ctl restart -m fast, and after a
#   flush, each link reads visits = series = the clicks made, and the
#   series without bots = the clicks made minus the bots' (a link with
#   max_visits, one clicked by resolve(code), one never clicked among
#   them); the postmaster logs the restore of exactly the pending clicks,
#   and the tables (visit_counts, link_visits_hourly) hold the clicks and
#   the bots' clicks exactly; the dimensions and visitors pending at the
#   restart (shorturl.analytics_flush_interval = 1h) are restored too
#   (logged), so after the flush each dimension of each link adds up to its
#   visits, and unique_visitors() counts every visitor;
# - (b) immediate stop under load, flush_interval = 1h: a forced flush in
#   the middle of the load, 100 more clicks of each link, pg_ctl stop -m
#   immediate: each link reads series = visits = exactly what that flush
#   wrote, less than it read before the stop, and nothing was restored;
# - (c) immediate stop under load, flush_interval = 100 ms, so that the
#   stop lands among the worker's flushes (perhaps in one): each link
#   reads series = visits, at least what a forced flush late in the load
#   left in the tables, and at most the clicks its clients made.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

# User agents: Googlebot's (device_class() says bot), a desktop
# browser's, a phone's.  No colons: pgbench would take ":x" for a variable.
my $BOT    = 'Googlebot/2.1 (+http://www.google.com/bot.html)';
my $HUMAN  = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';
my $MOBILE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148';

# (a): the clicks each pgbench transaction makes, per link: [all, bots'].
# m1 has max_visits (its entry keeps a total); z1 is never clicked.
my %PER_XACT = (
	a1 => [ 1, 0 ],
	a2 => [ 2, 1 ],
	a3 => [ 1, 0 ],
	a4 => [ 1, 1 ],
	m1 => [ 2, 1 ],
	z1 => [ 0, 0 ]);
my $CLIENTS = 4;
my $XACTS   = 100;

# (a): transactions per second of all the clients together, so that a
# batch lasts 0.8 s: the worker (every 100 ms) flushes during the first
my $RATE = 500;

# (b), (c): links under load (one statement clicks each once), pgbench
# clients, and the clicks of each link to wait for at each step
my $LOAD_LINKS   = 20;
my $LOAD_CLIENTS = 4;
my $LOAD_STEP    = 100;

# (c): flushes the worker must have committed during the load, so that the
# stop lands among them
my $LOAD_FLUSHES = 3;

my $node = ShortURL::Test::node('analytics_durability',
	"shorturl.flush_interval = '100ms'",
	"shorturl.purge_interval = '1h'");

# query runs SQL in postgres and returns its output
sub query { return $node->safe_psql('postgres', $_[0]); }

sub stats    { return ShortURL::Test::stats($node, 'postgres', @_); }
sub served   { return ShortURL::Test::wait_served($node, 'postgres', @_); }
sub interval { return ShortURL::Test::set_flush_interval($node, 'postgres', @_); }

# SERIES is the SQL of the sum of link l's hourly series from its creation
# to now
my $SERIES = q{(SELECT coalesce(sum(s.visits), 0)
	FROM shorturl.visit_series(l.code, NULL, NULL, 'hour') s)};

# the links of (a), and those of the loads of (b) and (c): conditions on
# link l
my $A_LINKS = 'l.code IN (' . join(', ', map { "'$_'" } sort keys %PER_XACT) . ')';
my $B_LINKS = q{l.code LIKE 'lb%'};
my $C_LINKS = q{l.code LIKE 'lc%'};

# per_link returns a hash code => value of an expression of link l, for
# the links where $where holds; $bots sets count_bots (on or off) first
sub per_link
{
	my ($expr, $where, $bots) = @_;
	my $set = defined $bots ? "SET shorturl.count_bots = $bots;\n" : '';
	return { map { split /\|/ } split /\n/,
		  query("${set}SELECT l.code, $expr FROM shorturl.links l WHERE $where") };
}

# joined writes a hash code => value as "code=value ..." in code order
sub joined
{
	my ($h) = @_;
	return join ' ', map { "$_=$h->{$_}" } sort keys %$h;
}

# figures returns, for the links where $where holds, "code=visits/series/
# series without bots" joined in code order, read at rest (nothing clicks)
sub figures
{
	my ($where) = @_;
	my $visits = per_link('shorturl.visits(l.code)', $where);
	my $series = per_link($SERIES, $where, 'on');
	my $humans = per_link($SERIES, $where, 'off');
	return join ' ', map { "$_=$visits->{$_}/$series->{$_}/$humans->{$_}" } sort keys %$visits;
}

# expected is what figures() reads after $xacts transactions of each client
sub expected
{
	my ($xacts) = @_;
	my $n = $CLIENTS * $xacts;
	return join ' ', map {
		my ($all, $bots) = map { $_ * $n } @{ $PER_XACT{$_} };
		"$_=$all/$all/" . ($all - $bots)
	} sort keys %PER_XACT;
}

# tables returns "code=count/hourly visits/hourly bots" from visit_counts
# and link_visits_hourly, for the links where $where holds
sub tables
{
	my ($where) = @_;
	return query("SELECT string_agg(l.code || '=' || " . ShortURL::Test::stored_expr('l')
		  . q{ || '/' || coalesce(h.visits, 0) || '/' || coalesce(h.bots, 0), ' ' ORDER BY l.code)
		FROM shorturl.links l
		LEFT JOIN (SELECT link_id, sum(visits) AS visits, sum(bots) AS bots
		           FROM shorturl.link_visits_hourly GROUP BY link_id) h ON h.link_id = l.id}
		  . " WHERE $where");
}

# restored returns the save-file lines of the log since an offset
sub restored { return join "\n", ShortURL::Test::restore_lines($node, $_[0]); }

# ---------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------
query('CREATE EXTENSION pg_shorturl');
ok(served(), 'the worker serves postgres: stats.mode is shared');
query(join ";\n",
	(map { "SELECT shorturl.shorten('https://example.com/$_', alias => '$_')" } grep { $_ ne 'm1' } sort keys %PER_XACT),
	"SELECT shorturl.shorten('https://example.com/m1', alias => 'm1', max_visits => 1000000)",
	(map { "SELECT shorturl.shorten('https://example.com/lb$_', alias => 'lb$_')" } 1 .. $LOAD_LINKS),
	(map { "SELECT shorturl.shorten('https://example.com/lc$_', alias => 'lc$_')" } 1 .. $LOAD_LINKS));
# proves the bot clicks below are bots' for the analytics
is(query("SELECT shorturl.device_class('$BOT') || ' ' || shorturl.device_class('$HUMAN')"),
	'bot desktop', "device_class() says Googlebot's user agent is a bot's");

# ---------------------------------------------------------------------
# (a) A clean restart carries the unflushed clicks of counts and series
# ---------------------------------------------------------------------
my $script = join '', map { "SELECT 1 / ($_ IS NOT NULL)::int;\n" }
  "shorturl.resolve('a1', NULL, 'https://news.example.com/item/' || :client_id, 'FR', '$HUMAN', 'visitor-BATCH-' || :client_id)",
  "shorturl.resolve('a2', NULL, NULL, 'DE', '$MOBILE', NULL)",
  "shorturl.resolve('a2', NULL, 'https://www.google.com/', NULL, '$BOT', NULL)",
  "shorturl.resolve('a3')",
  "shorturl.resolve('a4', NULL, NULL, 'US', '$BOT', 'crawler')",
  "shorturl.resolve('m1', '', 'https://t.co/x', 'JP', '$BOT')",
  "shorturl.resolve('m1', NULL, NULL, NULL, '$HUMAN', 'visitor-m-BATCH')";
my $xact_clicks = 0;
$xact_clicks += $_->[0] for values %PER_XACT;

# clicks runs the script in $CLIENTS clients of $XACTS transactions each
my $batch = 0;

sub clicks
{
	my $n = $CLIENTS * $XACTS;
	$batch++;
	$node->pgbench(
		"--no-vacuum --client=$CLIENTS --jobs=2 --transactions=$XACTS --rate=$RATE",
		0,
		[qr{actually processed: $n/$n}],
		[],
		"(a) pgbench $batch: $CLIENTS clients x $XACTS transactions of $xact_clicks clicks, all resolved",
		# each batch its own visitors, so that a lost one shows
		{ "012_clicks_$batch.sql" => $script =~ s/BATCH/$batch/gr },
		'postgres');
}

my $flushes = stats('flushes');
clicks();
# proves the worker flushed while the clients clicked: the reads below
# add up clicks in the tables and in shared memory, some taken mid-batch
cmp_ok(stats('flushes'), '>', $flushes, '(a) the worker flushed during the first batch');
# proves the series counts flushed and unflushed clicks alike, and keeps bots apart
is(figures($A_LINKS), expected($XACTS), '(a) after the first batch: visits = series = clicks, each link');

interval('1h');
# the analytics then wait for the restart: the worker writes them only
# with an interval's flush, or when a table is half full
query(q{ALTER SYSTEM SET shorturl.analytics_flush_interval = '1h'; SELECT pg_reload_conf()});
query('SELECT shorturl.flush()');
clicks();
my $pending = $CLIENTS * $XACTS * $xact_clicks;
# proves the second batch is still only in shared memory, so the restart must carry it
is(stats('pending_visits'), $pending, "(a) with flush_interval = 1h the second batch's $pending clicks are pending");
is(figures($A_LINKS), expected(2 * $XACTS), '(a) before the restart: visits = series = clicks of both batches');

# proves the second batch's dimensions and visitors are only in shared memory too
my ($pending_dims, $pending_visitors) = (stats('pending_dimension_values'), stats('pending_visitors'));
cmp_ok($pending_dims, '>', 0, "(a) the second batch's dimension values are pending ($pending_dims)");
cmp_ok($pending_visitors, '>', 0, "(a) the second batch's visitors are pending ($pending_visitors)");

my $offset = ShortURL::Test::log_offset($node);
$node->restart;
# proves the postmaster saved and restored the pending clicks, dimensions and visitors, once
is(restored($offset),
	"pg_shorturl: restored $pending unflushed visits saved at shutdown\n"
	  . "pg_shorturl: restored $pending_dims unflushed dimension values and $pending_visitors visitors saved at shutdown",
	"(a) two log lines: restored $pending unflushed visits, $pending_dims dimension values, $pending_visitors visitors");
ok(served(), '(a) the worker serves again after the restart');
# proves the restore gave the series the same clicks as the counts, bots' as bots'
is(figures($A_LINKS), expected(2 * $XACTS), '(a) after a fast restart: visits = series = clicks, each link');

query('SELECT shorturl.flush()');
is(figures($A_LINKS), expected(2 * $XACTS), '(a) after a flush: visits = series = clicks, each link');
my $n = 2 * $CLIENTS * $XACTS;
# proves the flush wrote every click, and every bot's, to its hour once
is(tables($A_LINKS),
	join(' ', map { my ($all, $bots) = map { $_ * $n } @{ $PER_XACT{$_} }; "$_=$all/$all/$bots" } sort keys %PER_XACT),
	'(a) the tables hold each click once: visit_counts = link_visits_hourly, and its bots');

# proves no dimension value was lost or counted twice across the restart:
# every click of these links passed facts, so each dimension adds up to
# the link's visits (a3 was clicked by code alone: no rows)
my $DIMS_ADD_UP = join " || ' ' || ", map {
	"(SELECT coalesce(sum(b.visits), 0) FROM shorturl.visit_breakdown(l.code, '$_') b)::text"
} qw(referrer country device);
is(joined(per_link("shorturl.visits(l.code) || ' ' || $DIMS_ADD_UP", $A_LINKS, 'on')),
	joined({ map { my $v = $PER_XACT{$_}[0] * $n; ($_ => $_ eq 'a3' ? "$v 0 0 0" : "$v $v $v $v") } keys %PER_XACT }),
	'(a) after the restart and a flush: each dimension of each link adds up to its visits');
# proves the visitors came back: a1 has one per client and batch, m1 one
# per batch (each batch's are new), the bots none
is(joined(per_link('shorturl.unique_visitors(l.code)', $A_LINKS)),
	joined({ %{ { map { $_ => 0 } keys %PER_XACT } }, a1 => 2 * $CLIENTS, m1 => 2 }),
	'(a) after the restart and a flush: unique_visitors() counts every visitor, each link');
query(q{ALTER SYSTEM RESET shorturl.analytics_flush_interval; SELECT pg_reload_conf()});

# ---------------------------------------------------------------------
# Load: every link of a set clicked once per transaction, with a bot's
# user agent in one transaction of four
# ---------------------------------------------------------------------

# load starts pgbench clicking the links $prefix1..$LOAD_LINKS for a
# minute (a stop ends it sooner)
sub load
{
	my ($prefix) = @_;
	my $codes = join ',', map { "'$prefix$_'" } 1 .. $LOAD_LINKS;
	return ShortURL::Test::start_pgbench($node, 'postgres',
		"--client=$LOAD_CLIENTS --jobs=2 --time=60",
		"\\set r random(1, 4)\n"
		  . "\\set v random(1, 1000)\n"
		  . 'SELECT 1 / (count(shorturl.resolve(c, NULL, '
		  . q{'https://ref' || :r || '.example/page', (ARRAY['FR', 'DE', 'US', 'JP'])[:r], }
		  . "CASE WHEN :r = 1 THEN '$BOT' ELSE '$HUMAN' END, 'visitor-' || :v)) = $LOAD_LINKS)::int"
		  . " FROM unnest(ARRAY[$codes]) c;\n");
}

# each_has is the SQL of whether each link where $where holds has at
# least $n clicks more than the tables hold (all of them: $stored = 0)
sub each_has
{
	my ($n, $where, $stored) = @_;
	$stored //= ShortURL::Test::stored_expr('l');
	return "(SELECT min(shorturl.visits(l.code) - $stored) >= $n FROM shorturl.links l WHERE $where)";
}

# processed returns the transactions pgbench completed (each clicked every
# link once) from its output, after a stop aborted it
sub processed
{
	my ($bench, $what) = @_;
	my ($rc, $out, $err) = ShortURL::Test::finish_pgbench($bench);
	my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
	# proves the stop, not a refused click, ended the clients
	like($err, qr/client \d+ aborted/, "$what the stop aborted the pgbench clients mid-run");
	like($out, qr/number of failed transactions: 0 /, "$what every click before the stop was served");
	return $done // 0;
}

# ---------------------------------------------------------------------
# (b) Immediate stop, flush_interval = 1h: exactly the unflushed are lost
# ---------------------------------------------------------------------
my $bench = load('lb');
ok(ShortURL::Test::wait_until($node, 'postgres', 'SELECT ' . each_has($LOAD_STEP, $B_LINKS, 0)),
	"(b) the load made $LOAD_STEP clicks of each link");
my $flushed = query('SELECT shorturl.flush()');
# nothing else flushes with flush_interval = 1h: this is what the tables keep
my $at_flush = per_link(ShortURL::Test::stored_expr('l'), $B_LINKS);
my $flushed_sum = 0;
$flushed_sum += $_ for values %$at_flush;
cmp_ok($flushed_sum, '>=', $LOAD_STEP * $LOAD_LINKS, "(b) a flush under load wrote $flushed_sum clicks");
is($flushed, $flushed_sum, '(b) the tables hold what flush() says it wrote');
ok(ShortURL::Test::wait_until($node, 'postgres', 'SELECT ' . each_has($LOAD_STEP, $B_LINKS)),
	"(b) the load made $LOAD_STEP clicks more of each link after the flush");
my $before = per_link('shorturl.visits(l.code)', $B_LINKS);

$offset = ShortURL::Test::log_offset($node);
$node->stop('immediate');
my $done = processed($bench, '(b)');
$node->start;
ok(served(), '(b) the worker serves again after the immediate stop');
is(restored($offset), '', '(b) nothing was restored after the immediate stop');

my $visits = per_link('shorturl.visits(l.code)', $B_LINKS);
my $series = per_link($SERIES, $B_LINKS, 'on');
note "(b) $done transactions of $LOAD_LINKS clicks, $flushed_sum flushed, "
  . 'visits after the stop ' . joined($visits);
# proves an immediate stop takes the same clicks from the series as from the count
is(joined($series),
	joined($visits),
	'(b) after the immediate stop: series = visits, each link');
# proves what is lost is exactly what no flush wrote: the flush's count, no more, no less
is(joined($visits),
	joined($at_flush),
	'(b) after the immediate stop: visits = what the forced flush wrote, each link');
# proves the stop did lose clicks: each link had more before it
is(join(' ', grep { $visits->{$_} >= $before->{$_} } sort keys %$visits), '',
	'(b) each link read more visits before the stop than after: unflushed clicks were lost');

# ---------------------------------------------------------------------
# (c) Immediate stop among the worker's flushes: series = visits, bounded
# ---------------------------------------------------------------------
interval('100ms');
$flushes = stats('flushes');
$bench = load('lc');
ok(ShortURL::Test::wait_until($node, 'postgres',
		'SELECT ' . each_has($LOAD_STEP, $C_LINKS, 0)
		  . " AND (SELECT flushes >= $flushes + $LOAD_FLUSHES FROM shorturl.stats)"),
	"(c) the load made $LOAD_STEP clicks of each link and the worker flushed $LOAD_FLUSHES times meanwhile");
query('SELECT shorturl.flush()');
# committed flushes (the worker's too) survive: a floor for each link
my $floor = per_link(ShortURL::Test::stored_expr('l'), $C_LINKS);
$flushes = stats('flushes');
ok(ShortURL::Test::wait_until($node, 'postgres',
		"SELECT flushes >= $flushes + $LOAD_FLUSHES FROM shorturl.stats"),
	"(c) the worker flushed $LOAD_FLUSHES times more under the load");

$node->stop('immediate');
$done = processed($bench, '(c)');
$node->start;
ok(served(), '(c) the worker serves again after the immediate stop');

$visits = per_link('shorturl.visits(l.code)', $C_LINKS);
$series = per_link($SERIES, $C_LINKS, 'on');
note "(c) $done transactions of $LOAD_LINKS clicks, floor "
  . joined($floor)
  . ', visits after the stop ' . joined($visits);
is(joined($series),
	joined($visits),
	'(c) after an immediate stop among flushes: series = visits, each link');
# proves no committed flush was lost
is(join(' ', grep { $visits->{$_} < $floor->{$_} } sort keys %$visits), '',
	'(c) each link keeps at least what the tables held at the forced flush');
# proves none doubled: a link has at most one click per transaction, one more
# per client for a statement the stop cut short
my $ceiling = $done + $LOAD_CLIENTS;
is(join(' ', grep { $visits->{$_} > $ceiling } sort keys %$visits), '',
	"(c) each link has at most the $ceiling clicks its clients may have made");

$node->stop;
done_testing();
