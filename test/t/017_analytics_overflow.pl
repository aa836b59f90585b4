# 017_analytics_overflow.pl: when the shared tables of pending analytics
# are full, dimension values go to their dimension's "other", and only
# past that are they lost; visitors past the table's size are lost and
# counted.  The last sixteenth of the dimension table is kept for "other"
# entries (analytics.c), so with shorturl.max_pending_dimensions = 128 a
# new value finds room while the table has fewer than 120 entries, and an
# "other" entry while it has fewer than 128.  Flushes are held back (the
# worker's interval is an hour), so the tables fill from the clicks here
# alone; shorturl.flush() then writes them.
#
# Every click records its three dimensions (a missing country or user
# agent is "unknown"), so each entry count below includes them.
#
# 1. one link, 200 referrers once each: with its country and device, 118
#    referrers keep their own entry, the other 82 go to "other"
#    (dimension_overflow 82, dropped 0), and the link's referrer breakdown
#    adds up to its 200 clicks;
# 2. 130 links, a new referrer each, on an empty table: 40 links fill the
#    120 entries for values; links 41 and 42 get three "other" entries each
#    from the reserve, link 43 two, and past that every value is lost
#    (1 + 87 * 3 = 262 dropped);
# 3. 200 visitors of one link: 128 kept, 72 lost (visitors_dropped), and
#    unique_visitors() (exact below 384) says 128.
# 4. the worker's schedule (flushes every 100 ms, analytics every hour):
#    one link with 10 referrers (12 entries): two flushes write its count
#    but leave its dimension values pending; 60 referrers more while the
#    worker is held back (72 entries, over half of 128): its next flush
#    writes them all; a few more, then
#    shorturl.analytics_flush_interval = 100ms: written at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

my $node = ShortURL::Test::node('overflow',
	"shorturl.flush_interval = '1h'",
	'shorturl.max_pending_dimensions = 128',
	'shorturl.max_pending_visitors = 128',
	'shorturl.max_dimension_values = 1000');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
ShortURL::Test::wait_served($node, 'postgres') or die 'no worker serves the database';

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub stat_row
{
	return sql('SELECT pending_dimension_values, dimension_overflow, dimension_dropped,'
		  . ' pending_visitors, visitors_dropped FROM shorturl.stats');
}

# ---------------------------------------------------------------------
# 1. One link, 200 referrers
# ---------------------------------------------------------------------
my $one = sql(q{SELECT shorturl.shorten('https://example.com/one')});
is(sql(qq{SELECT count(shorturl.resolve('$one', NULL, 'https://r' || g || '.example/page'))
	FROM generate_series(1, 200) g}), 200, 'one link resolved with 200 referrers');
is(stat_row(), '121|82|0|0|0',
	'120 values have their own entry (118 referrers), 82 went to "other" (one entry), none was lost');
sql('SELECT shorturl.flush()');
is(sql(qq{SELECT count(*) FILTER (WHERE value <> 'other') || '|' || sum(visits) FILTER (WHERE value <> 'other')
	|| '|' || sum(visits) FILTER (WHERE value = 'other')
	FROM shorturl.visit_breakdown('$one', 'referrer', now() - interval '1 day', now() + interval '1 day')}),
	'118|118|82', 'after the flush the breakdown has the 118 referrers and "other" with 82');
is(sql(qq{SELECT (SELECT sum(visits) FROM shorturl.visit_breakdown('$one', 'referrer',
	now() - interval '1 day', now() + interval '1 day')) = shorturl.visits('$one')}), 't',
	'... adding up to the link\'s visits');
is((split /\|/, stat_row())[0], 0, 'the flush emptied the table');

# ---------------------------------------------------------------------
# 2. 130 links, one new referrer each: the reserve, then losses
# ---------------------------------------------------------------------
sql(q{CREATE TABLE many AS SELECT g, shorturl.shorten('https://example.com/m/' || g) AS code
	FROM generate_series(1, 130) g});
is(sql(q{SELECT count(shorturl.resolve(code, NULL, 'https://s' || g || '.example/')) FROM many}), 130,
	'130 links resolved, each with a referrer of its own');
is(stat_row(), '128|90|262|0|0',
	'120 values, then 8 "other" entries from the reserve (overflow 82 + 8), then 262 values lost');
sql('SELECT shorturl.flush()');
is(sql(q{SELECT count(*) FROM many m WHERE (SELECT coalesce(sum(b.visits), 0) FROM shorturl.visit_breakdown(m.code,
	'referrer', now() - interval '1 day', now() + interval '1 day') b) = 1}), 43,
	'after the flush 43 of the links have their click in the referrer breakdown (3 as "other")');

# ---------------------------------------------------------------------
# 3. 200 visitors of one link
# ---------------------------------------------------------------------
my $seen = sql(q{SELECT shorturl.shorten('https://example.com/seen')});
is(sql(qq{SELECT count(shorturl.resolve('$seen', NULL, NULL, NULL, NULL, 'visitor-' || g))
	FROM generate_series(1, 200) g}), 200, 'one link resolved by 200 visitors');
is(join('|', (split /\|/, stat_row())[3, 4]), '128|72', '128 visitors kept, 72 lost and counted');
sql('SELECT shorturl.flush()');
is(sql(qq{SELECT shorturl.unique_visitors('$seen', now() - interval '1 day', now() + interval '1 day')}), 128,
	'unique_visitors() counts the 128 kept');
is(sql(qq{SELECT shorturl.visits('$seen')}), 200, 'and the link\'s visits are all 200');

# ---------------------------------------------------------------------
# 4. The worker writes analytics every interval, or when half full
# ---------------------------------------------------------------------
sql(q{ALTER SYSTEM SET shorturl.analytics_flush_interval = '1h'; SELECT pg_reload_conf()});
ShortURL::Test::set_flush_interval($node, 'postgres', '100ms');
my $sched = sql(q{SELECT shorturl.shorten('https://example.com/schedule')});

# waits until the worker has flushed twice more
sub two_flushes
{
	my $flushes = ShortURL::Test::stats($node, 'postgres', 'flushes');
	return ShortURL::Test::wait_until($node, 'postgres',
		"SELECT flushes >= $flushes + 2 FROM shorturl.stats");
}

# referrers clicks $sched with referrers $from..$to
sub referrers
{
	my ($from, $to) = @_;
	return sql(qq{SELECT count(shorturl.resolve('$sched', NULL, 'https://t' || g || '.example/'))
		FROM generate_series($from, $to) g});
}

# breakdown is "referrer values with a row|their visits"
sub breakdown
{
	return sql(qq{SELECT count(*) || '|' || coalesce(sum(visits), 0) FROM shorturl.visit_breakdown('$sched',
		'referrer', now() - interval '1 day', now() + interval '1 day')});
}
# nothing pending to begin with
sql('SELECT shorturl.flush()');
is(referrers(1, 10), 10, '4. one link resolved with 10 referrers');
ok(two_flushes(), 'the worker flushed twice');
is(sql(qq{SELECT shorturl.visits('$sched') || '|' || pending_visits || '|' || pending_dimension_values
	FROM shorturl.stats}), '10|0|12',
	'its count was written, its 12 dimension values (10 referrers, country, device) are still pending');
is(breakdown(), '0|0', 'no referrer row yet');

# with the worker held back, so that no flush comes between the clicks
ShortURL::Test::set_flush_interval($node, 'postgres', '1h');
is(referrers(11, 70), 60, '60 more referrers, the worker held back');
is((split /\|/, stat_row())[0], 72, '72 entries pending, over half of max_pending_dimensions');
ShortURL::Test::set_flush_interval($node, 'postgres', '100ms');
ok(two_flushes(), 'the worker flushed twice');
is((split /\|/, stat_row())[0], 0, 'the half-full table was written with the count');
is(breakdown(), '70|70', 'the link has its 70 referrer rows');

is(referrers(71, 73), 3, '3 more referrers');
ok(two_flushes(), 'the worker flushed twice');
is((split /\|/, stat_row())[0], 5, 'their 5 dimension values are pending');
sql(q{ALTER SYSTEM SET shorturl.analytics_flush_interval = '100ms'; SELECT pg_reload_conf()});
ok(ShortURL::Test::wait_until($node, 'postgres', 'SELECT pending_dimension_values = 0 FROM shorturl.stats'),
	'with analytics_flush_interval = 100ms the worker writes them');
is(breakdown(), '73|73', 'the link has its 73 referrer rows');

done_testing();
