# 014_metrics.pl: the Prometheus metrics of issue 16 as a monitoring
# system reads them, through the real postgres_exporter
# (prometheus-postgres-exporter, Debian's 0.11) with
# monitoring/postgres_exporter.yaml, and through shorturl.metrics().
#
# For each server below the exporter runs on a free port of 127.0.0.1,
# connected over the Unix socket as a role in pg_monitor (not a
# superuser), with its default and settings metrics and its collectors
# off (so the catalogs of the PostgreSQL version do not matter), and
# curl scrapes /metrics.  Every metric shorturl.metrics() lists must be
# in the scrape with the same TYPE, HELP, labels (but the exporter's own
# server label) and value, that value must be what shorturl.stats says
# (shorturl_links: what count(*) says), and the scrape must have no
# other shorturl metric and no error.
# - (a) a primary that preloads the library and whose worker serves the
#   database, after known traffic (links, clicks with a referrer, an
#   expired link purged, a client blocked for scanning, a rate-limit key)
#   and a flush;
# - (b) its hot standby (mode standby: it counts in shared memory, so its
#   figures are numbers, the shipping's too; the links are
#   pg_class.reltuples, which the primary's ANALYZE set);
# - (c) a server without shared_preload_libraries (mode sync, NaN).
# The figures must not move while they are read: the worker flushes and
# purges only hourly here.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;
use IPC::Run;
use Time::HiRes qw(time usleep);

my ($exporter) = grep { -x $_ } '/usr/bin/prometheus-postgres-exporter',
  map { "$_/postgres_exporter" } split /:/, $ENV{PATH} // '';
plan skip_all =>
  'prometheus-postgres-exporter is not installed (apt-get install prometheus-postgres-exporter)'
  unless defined $exporter;

my $queries = "$FindBin::Bin/../../monitoring/postgres_exporter.yaml";
my $tmp     = PostgreSQL::Test::Utils::tempdir();
my $ROLE    = 'regress_exporter';

# What shorturl.stats says for each metric, as SQL over its row s; NULL is
# NaN, as the exporter reports a NULL column
my %from_stats = (
	shorturl_mode_info                    => '1',
	shorturl_links                        => '(SELECT count(*) FROM shorturl.links)',
	shorturl_pending_links                => 's.pending_links',
	shorturl_pending_visits               => 's.pending_visits',
	shorturl_flushed_visits_total         => 's.flushed_visits',
	shorturl_flushes_total                => 's.flushes',
	shorturl_last_flush_timestamp_seconds => 'extract(epoch FROM s.last_flush_at)',
	shorturl_last_flush_duration_seconds  => 's.last_flush_ms / 1000',
	shorturl_purged_links_total           => 's.purged',
	shorturl_last_purge_timestamp_seconds => 'extract(epoch FROM s.last_purge_at)',
	shorturl_room_waits_total             => 's.room_waits',
	shorturl_sync_fallbacks_total         => 's.sync_fallbacks',
	shorturl_refused_clicks_total         => 's.refused_clicks',
	shorturl_dropped_visits_total         => 's.dropped_deltas',
	shorturl_worker_pid                   => 's.worker_pid',
	shorturl_last_error_timestamp_seconds => 'extract(epoch FROM s.last_error_at)',
	shorturl_max_pending_links            => 's.max_pending_links',
	shorturl_pending_dimension_values     => 's.pending_dimension_values',
	shorturl_pending_visitors             => 's.pending_visitors',
	shorturl_dimension_overflow_total     => 's.dimension_overflow',
	shorturl_dimension_dropped_total      => 's.dimension_dropped',
	shorturl_visitors_dropped_total       => 's.visitors_dropped',
	shorturl_max_pending_dimensions       => 's.max_pending_dimensions',
	shorturl_max_pending_visitors         => 's.max_pending_visitors',
	shorturl_scan_clients_blocked_total   => 's.scan_clients_blocked',
	shorturl_scan_lookups_blocked_total   => 's.scan_lookups_blocked',
	shorturl_host_lookups_blocked_total   => 's.host_lookups_blocked',
	shorturl_rate_keys                    => 's.rate_keys',
	shorturl_rate_keys_reclaimed_total    => 's.rate_keys_reclaimed',
	shorturl_rate_keys_full_total         => 's.rate_keys_full',
	shorturl_max_rate_keys                => 's.max_rate_keys',
	shorturl_url_cache_hits_total         => 's.url_cache_hits',
	shorturl_url_cache_misses_total       => 's.url_cache_misses',
	shorturl_url_cache_fills_total        => 's.url_cache_fills',
	shorturl_url_cache_rejected_total     => 's.url_cache_rejected',
	shorturl_url_cache_evictions_total    => 's.url_cache_evictions',
	shorturl_url_cache_invalidations_total => 's.url_cache_invalidations',
	shorturl_url_cache_entries            => 's.url_cache_entries',
	shorturl_url_cache_used_bytes         => 's.url_cache_bytes',
	shorturl_url_cache_size_bytes         => 's.url_cache_size',
	shorturl_ship_unshipped_visits        => 's.unshipped_visits',
	shorturl_ship_visits_total            => 's.shipped_visits',
	shorturl_ship_batches_total           => 's.ship_batches',
	shorturl_ship_failures_total          => 's.ship_failures',
	shorturl_ship_last_timestamp_seconds  => 'extract(epoch FROM s.last_ship_at)',
	shorturl_ship_dropped_visits_total    => 's.standby_dropped');

# Exporters still running, for the END block
my @running;

END
{
	local $?;
	$_->kill_kill(grace => 5) for grep { $_->pumpable } @running;
}

# parse reads the text format: name -> { type, help, labels => {}, value }
sub parse
{
	my ($text) = @_;
	my %m;

	for (split /\n/, $text)
	{
		if (/^# HELP (\S+) (.*)$/)
		{
			$m{$1}{help} = $2;
		}
		elsif (/^# TYPE (\S+) (\S+)$/)
		{
			$m{$1}{type} = $2;
		}
		elsif (/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/)
		{
			my ($name, $labels, $value) = ($1, $2 // '', $3);
			my %l;
			$l{$1} = $2 while $labels =~ /\G([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)",?/gc;
			$m{$name}{labels} = \%l;
			$m{$name}{value}  = $value;
		}
	}
	return \%m;
}

# same_value compares two sample values: NaN equals NaN, numbers by value
sub same_value
{
	my ($x, $y) = @_;
	return 0 unless defined $x && defined $y;
	return $x eq $y if $x eq 'NaN' || $y eq 'NaN';
	return $x == $y;
}

# stats_values returns shorturl.stats' figure for each metric
sub stats_values
{
	my ($node) = @_;
	my $values = join ",\n", map { "('$_', ($from_stats{$_})::float8)" } sort keys %from_stats;
	my %v = map { split /=/, $_, 2 } split /\n/, $node->safe_psql('postgres', qq{
		SELECT v.name || '=' || coalesce(v.value::text, 'NaN')
		FROM shorturl.stats s, LATERAL (VALUES $values) v(name, value)});
	return \%v;
}

# scrape starts the exporter for a server's database postgres, scrapes it
# once with curl, stops it, and returns the scrape and the exporter's log
sub scrape
{
	my ($node, $name) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $log  = "$tmp/exporter_$name.log";
	my $url  = "http://127.0.0.1:$port";
	my ($out, $err) = ('', '');

	local $ENV{DATA_SOURCE_NAME} =
	  'host=' . $node->host . ' port=' . $node->port . " user=$ROLE dbname=postgres sslmode=disable";
	my $h = IPC::Run::start(
		[
			$exporter, "--web.listen-address=127.0.0.1:$port",
			"--extend.query-path=$queries", '--disable-default-metrics',
			'--disable-settings-metrics', '--no-collector.database',
			'--no-collector.bgwriter'
		],
		'<', '/dev/null', '>', $log, '2>&1');
	push @running, $h;

	# it listens at once; it connects to the server at the first scrape
	my $deadline = time + 20;
	while (!IPC::Run::run([ 'curl', '-sf', '--max-time', '5', "$url/" ], '>', \$out, '2>', \$err))
	{
		die "the exporter does not answer on $url: " . slurp_file($log)
		  if time > $deadline || !$h->pumpable;
		usleep(100_000);
	}
	IPC::Run::run([ 'curl', '-sSf', '--max-time', '30', "$url/metrics" ], '>', \$out, '2>', \$err)
	  or die "curl $url/metrics failed: $err";
	$h->kill_kill(grace => 5);
	@running = grep { $_ != $h } @running;
	return ($out, slurp_file($log));
}

# check scrapes a server and compares the scrape, shorturl.metrics() (as
# the exporter's role) and shorturl.stats, metric by metric
sub check
{
	my ($node, $name, $mode) = @_;
	my $before = stats_values($node);
	my ($scraped, $log) = scrape($node, $name);
	my $exp = parse($scraped);
	my $fn  = parse($node->safe_psql('postgres', 'SELECT shorturl.metrics()',
		extra_params => [ '-U', $ROLE ]));
	my $after = stats_values($node);

	is_deeply($after, $before, "$name: the figures did not move while they were read");
	is($exp->{pg_up}{value}, '1', "$name: the exporter reached the server");
	is($exp->{pg_exporter_last_scrape_error}{value}, '0', "$name: the scrape had no error");
	is($exp->{pg_exporter_user_queries_load_error}{value}, '0',
		"$name: the exporter loaded the queries file");
	is(join("\n", grep { /level=(?:warn|error)|err=/ } split /\n/, $log), '',
		"$name: the exporter logged no error");
	is_deeply([ sort grep { /^shorturl_/ } keys %$exp ], [ sort keys %from_stats ],
		"$name: the exporter exports every metric, and no other");
	is_deeply([ sort keys %$fn ], [ sort keys %from_stats ],
		"$name: metrics() renders every metric, and no other");
	is($fn->{shorturl_mode_info}{labels}{mode}, $mode, "$name: mode $mode");

	for my $m (sort keys %from_stats)
	{
		my ($e, $f) = ($exp->{$m} // {}, $fn->{$m} // {});
		my %labels = %{ $e->{labels} // {} };
		my ($ev, $fv) = map { $_->{value} // '(none)' } $e, $f;
		delete $labels{server};
		is($e->{type}, $f->{type}, "$name: $m: TYPE " . ($f->{type} // '(none)'));
		is($e->{help}, $f->{help}, "$name: $m: the same HELP");
		is_deeply(\%labels, $f->{labels}, "$name: $m: the same labels");
		ok(same_value($e->{value}, $f->{value}),
			"$name: $m: the exporter says $ev, metrics() $fv");
		ok(same_value($f->{value}, $before->{$m}),
			"$name: $m: shorturl.stats says " . ($before->{$m} // '(none)'));
	}
	diag "exporter log:\n$log" unless Test::More->builder->is_passing;
	return ($exp, $fn);
}

#
# (a) a served primary after known traffic
#
my $node = ShortURL::Test::node('metrics', { init => { allows_streaming => 1 } },
	"shorturl.database = 'postgres'",
	"shorturl.flush_interval = '1h'",
	"shorturl.purge_interval = '1h'",
	'shorturl.scan_limit = 3');
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pg_shorturl;
	CREATE ROLE $ROLE LOGIN IN ROLE pg_monitor;
});
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$ROLE'"),
	'f', 'the exporter\'s role is not a superuser');
ok(ShortURL::Test::wait_served($node, 'postgres'), 'a worker serves the database');
# the worker flushes once as it starts, then hourly
ok(ShortURL::Test::wait_until($node, 'postgres', 'SELECT flushes >= 1 FROM shorturl.stats'),
	'the worker made its first flush');

$node->safe_psql('postgres', q{
	SELECT shorturl.shorten('https://example.com/' || i, alias => 'm' || i) FROM generate_series(1, 4) i;
	SELECT shorturl.shorten('https://example.com/soon', alias => 'soon',
	                        expires_at => clock_timestamp() + interval '1 second');
	SELECT count(shorturl.resolve('m1', NULL, referrer => 'https://news.example/')) FROM generate_series(1, 7);
	SELECT count(shorturl.resolve('m2')) FROM generate_series(1, 3);
	SELECT count(shorturl.resolve('missing' || i, NULL, client => '203.0.113.7')) FROM generate_series(1, 6) i;
	SELECT allowed FROM shorturl.rate_limit('api:metrics', 10, 10);
});
is($node->safe_psql('postgres', 'SELECT pending_visits FROM shorturl.stats'), '10',
	'ten clicks wait in shared memory');
usleep(1_100_000);
is($node->safe_psql('postgres', 'SELECT shorturl.purge_expired()'), '1', 'the expired link is purged');
is($node->safe_psql('postgres', 'SELECT shorturl.flush()'), '10', 'a flush writes the ten clicks');
ok(ShortURL::Test::wait_until($node, 'postgres',
	q{SELECT pg_stat_get_live_tuples('shorturl.links'::regclass) = 4}),
	'the statistics system counts the four links');
is(ShortURL::Test::stats($node, 'postgres',
	'mode, pending_visits, flushed_visits, purged, scan_clients_blocked > 0, rate_keys > 0'),
	'shared|0|10|1|t|t', 'shorturl.stats shows the traffic');

my ($exp, $fn) = check($node, 'primary', 'shared');
is($fn->{shorturl_mode_info}{labels}{datname}, 'postgres', 'primary: the datname label');
is($exp->{shorturl_links}{value}, '4', 'primary: four links');
is($exp->{shorturl_flushed_visits_total}{value}, '10', 'primary: ten clicks flushed');
like($exp->{shorturl_last_flush_timestamp_seconds}{value}, qr/^1\.\d+e\+09$/,
	'primary: the latest flush as Unix seconds');

#
# (b) its hot standby: the links are the primary's ANALYZE
#
$node->safe_psql('postgres', 'ANALYZE shorturl.links');
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('metrics_standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
($exp, $fn) = check($standby, 'standby', 'standby');
is($exp->{shorturl_links}{value}, '4', 'standby: four links, from pg_class.reltuples');
# a standby counts in shared memory too (and ships, never flushes)
is($exp->{shorturl_flushes_total}{value}, '0', 'standby: the flushes counter is 0');
$standby->stop;
$node->stop;

#
# (c) without shared_preload_libraries
#
my $plain = PostgreSQL::Test::Cluster->new('metrics_not_preloaded');
$plain->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$plain->start;
$plain->safe_psql('postgres', qq{
	CREATE EXTENSION pg_shorturl;
	CREATE ROLE $ROLE LOGIN IN ROLE pg_monitor;
	SELECT shorturl.shorten('https://example.com/' || i, alias => 'm' || i) FROM generate_series(1, 2) i;
	SELECT shorturl.resolve('m1');
});
ok(ShortURL::Test::wait_until($plain, 'postgres',
	q{SELECT pg_stat_get_live_tuples('shorturl.links'::regclass) = 2}),
	'the statistics system counts the two links');
($exp, $fn) = check($plain, 'not preloaded', 'sync');
is(scalar(grep { $exp->{$_}{value} ne 'NaN' } keys %from_stats), 2,
	'not preloaded: all but the mode and the links are NaN');
$plain->stop;

done_testing();
