# 015_redirect_service.pl: the reference redirect service
# (examples/redirect-service) against a real server, over HTTP.
#
# The service runs as a child process on a free port of 127.0.0.1, as the
# role its grants.sql makes, over the node's Unix socket; curl asks it.
#
# - (a) GET /{code}: 302 with the URL, and every answer of the README's
#   table when resolve() gives NULL: 404 unknown (and a text that cannot be
#   a code, without asking the database), 410 expired, exhausted, disabled
#   and blocked, 451 for a legal takedown (disabled or blocked), and 503
#   with Retry-After for a link that link_status() calls active but that
#   resolve() does not serve (a limited link in table mode, through a
#   second instance on a database no worker serves).  HEAD answers alike
#   without counting.  A short domain comes from the Host header.
# - (b) the scan guard through the service: each miss counts once (25
#   misses leave a client served), and a client past the limit hears 404
#   for a real code while another client is served.
# - (c) POST /api/links: 401 without or with a wrong key, 400 for what the
#   body or shorten() refuses (with shorten()'s message), 409 for an alias
#   taken, 201 with the code and short URL (which then redirects), 429 with
#   Retry-After from rate_limit() per key and from an owner's quota
#   (SQLSTATE 53400).
# - (d) clicks are counted with their facts: after shorturl.flush(),
#   visits(), visit_breakdown() by referrer, country and device, and
#   unique_visitors() equal what the requests sent (X-Forwarded-For from
#   the trusted proxy names the client; bots are counted but left out of
#   the breakdowns).
# - (e) the statistics page in headless chromium: the served HTML has no
#   bar, the DOM after the page's script has one per bucket of
#   visit_series() with its value (30 days, and 48 hours); the page needs
#   an API key, and another owner's key reads the link as unknown; a
#   screenshot is a real picture whose QR code zbarimg decodes to the
#   link's short URL.
# - (f) SIGTERM stops the service cleanly (exit 0).
#
# Skipped when /usr/bin/python3 lacks python3-psycopg, python3-psycopg-pool
# or python3-aiohttp, or when chromium or curl is missing.
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
use JSON::PP;

my $PYTHON = '/usr/bin/python3';
my $SERVICE_DIR = "$FindBin::Bin/../../examples/redirect-service";
my ($CHROMIUM) = grep { -x } qw(/usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome);
# seconds a service gets to answer /healthz after it starts, and chromium
# to load a page, on a loaded CI machine
my $START_TIMEOUT = 90;
my $BROWSER_TIMEOUT = 120;

plan skip_all => "$PYTHON cannot import psycopg, psycopg_pool and aiohttp (Debian: python3-psycopg python3-psycopg-pool python3-aiohttp)"
  unless system("$PYTHON -c 'import psycopg, psycopg_pool, aiohttp' >/dev/null 2>&1") == 0;
plan skip_all => 'chromium is missing (Debian: chromium)' unless $CHROMIUM;
plan skip_all => 'curl is missing (Debian: curl)' unless system('curl --version >/dev/null 2>&1') == 0;

my $ALICE = 'alice-key-0123456789abcdef';
my $BOB = 'bob-key-0123456789abcdef';
my $ADMIN = 'admin-key-0123456789abcdef';
my $DESKTOP = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';
my $FIREFOX = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0';
my $IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1';
my $IPAD = 'Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1';
my $BOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

my $node = ShortURL::Test::node('redirect',
	# the test decides when clicks are flushed; nothing is purged under it
	"shorturl.flush_interval = '1h'",
	"shorturl.purge_interval = '1h'",
	"shorturl.database = 'postgres'");
my $grants = slurp_file("$SERVICE_DIR/grants.sql");
$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
$node->safe_psql('postgres', $grants);
ShortURL::Test::wait_served($node, 'postgres') or die 'no worker serves postgres';
# the quota of (c), for the service's role only
$node->safe_psql('postgres', q{ALTER ROLE shorturl_app SET shorturl.shorten_quota = '3/hour'});
$node->safe_psql('postgres', q{
	INSERT INTO shorturl.domains (domain) VALUES ('go.example');
	SELECT shorturl.shorten('https://example.com/spring', alias => 'spring', owner => 'alice', title => 'Spring sale');
	SELECT shorturl.shorten('https://example.com/sale-default', alias => 'sale');
	SELECT shorturl.shorten('https://example.com/sale-go', alias => 'sale', domain => 'go.example');
	SELECT shorturl.shorten('https://example.com/once', alias => 'once', max_visits => 1);
	SELECT shorturl.shorten('https://example.com/old', alias => 'old', expires_at => now() + interval '1 second');
	SELECT shorturl.shorten('https://example.com/spam', alias => 'spam');
	SELECT shorturl.disable_link('spam', 'spam report #12');
	SELECT shorturl.shorten('https://example.com/dmca', alias => 'dmca');
	SELECT shorturl.disable_link('dmca', 'legal: DMCA notice #7');
	SELECT shorturl.shorten('https://login.phish.example/', alias => 'phish');
	SELECT shorturl.shorten('https://court.example/page', alias => 'court');
	INSERT INTO shorturl.blocked_hosts (pattern, reason)
	VALUES ('phish.example', 'phishing'), ('court.example', 'Legal: court order 2026-117');
	SELECT shorturl.shorten('https://example.com/count', alias => 'count', owner => 'alice');
	SELECT shorturl.shorten('https://example.com/bobs', alias => 'bobs', owner => 'bob');
});

# a second database that no worker serves (table mode), for the 503 of (a)
$node->safe_psql('postgres', 'CREATE DATABASE tablemode');
$node->safe_psql('tablemode', 'CREATE EXTENSION pg_shorturl');
$node->safe_psql('tablemode', $grants =~ s/^CREATE ROLE .*$//mr);
$node->safe_psql('tablemode', q{SELECT shorturl.shorten('https://example.com/limited', alias => 'limited', max_visits => 10)});

my $tmp = PostgreSQL::Test::Utils::tempdir();
my @services;

# start_service starts the service with extra settings; returns its base URL
sub start_service
{
	my ($db, %env) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $log = "$PostgreSQL::Test::Utils::log_path/redirect_service_$db.log";
	local %ENV = (%ENV,
		SHORTURL_DSN => ShortURL::Test::conninfo($node, $db) . ' user=shorturl_app',
		SHORTURL_LISTEN => "127.0.0.1:$port",
		SHORTURL_WORKERS => 2,
		SHORTURL_POOL_SIZE => 2,
		SHORTURL_API_KEYS => "alice:$ALICE,bob:$BOB,*:$ADMIN",
		SHORTURL_TRUSTED_PROXIES => '127.0.0.1/32',
		SHORTURL_COUNTRY_HEADER => 'CF-IPCountry',
		SHORTURL_DOMAINS => 'go.example',
		SHORTURL_POST_RATE => '0.01',
		SHORTURL_POST_BURST => '5',
		%env);
	my $h = IPC::Run::start([ $PYTHON, "$SERVICE_DIR/redirect_service.py" ],
		'<', '/dev/null', '>>', $log, '2>>', $log);
	push @services, { h => $h, log => $log };
	my $base = "http://127.0.0.1:$port";
	my $deadline = time + $START_TIMEOUT;
	while (time < $deadline)
	{
		my $r = http('GET', "$base/healthz");
		return $base if $r->{status} eq '200';
		die "the service exited:\n" . slurp_file($log) unless $h->pumpable;
		usleep(100_000);
	}
	die "the service did not answer /healthz within ${START_TIMEOUT}s:\n" . slurp_file($log);
}

END
{
	for (@services)
	{
		eval { $_->{h}->signal('TERM') if $_->{h}->pumpable; $_->{h}->finish; };
	}
}

# http asks with curl; returns {status, h => {lower-case name => value}, body}
sub http
{
	my ($method, $url, %o) = @_;
	my @cmd = ('curl', '-sS', '--max-time', '60', '-o', "$tmp/body", '-D', "$tmp/head", '-w', '%{http_code}');
	push @cmd, $method eq 'HEAD' ? '-I' : ('-X', $method);
	push @cmd, '-A', $o{agent} // $DESKTOP;
	push @cmd, map { ('-H', $_) } @{ $o{headers} // [] };
	push @cmd, '--data-binary', $o{data} if defined $o{data};
	push @cmd, $url;
	unlink "$tmp/body", "$tmp/head";
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', '/dev/null', '>', \$out, '2>', \$err);
	my %h;
	if (-e "$tmp/head")
	{
		for (split /\r?\n/, slurp_file("$tmp/head"))
		{
			$h{ lc $1 } = $2 if /^([A-Za-z0-9-]+):\s*(.*)$/;
		}
	}
	return { status => $out || "curl: $err", h => \%h, body => -e "$tmp/body" ? slurp_file("$tmp/body") : '' };
}

sub json_of { my ($r) = @_; return eval { decode_json($r->{body}) } // {}; }

my $base = start_service('postgres', SHORTURL_STATS_ACCESS => 'owner');
my $r;

# (a) the redirect and the statuses
$r = http('GET', "$base/spring", headers => [ 'Referer: https://t.co/x' ]);
is($r->{status}, '302', 'an active link: 302');
is($r->{h}{location}, 'https://example.com/spring', '... to its URL');
is($r->{h}{'cache-control'}, 'no-store', '... not to be kept by caches (every click counts)');
is(http('GET', "$base/nothing-here")->{status}, '404', 'an unknown code: 404');
is(http('GET', "$base/favicon.ico")->{status}, '404', 'a text that cannot be a code: 404');
is(http('GET', "$base/once")->{status}, '302', 'a link of one visit: served once');
is(http('GET', "$base/once")->{status}, '410', '... then exhausted: 410');
ok(ShortURL::Test::wait_until($node, 'postgres', q{SELECT shorturl.link_status('old') = 'expired'}), 'the short-lived link expired');
is(http('GET', "$base/old")->{status}, '410', 'an expired link: 410');
is(http('GET', "$base/spam")->{status}, '410', 'a link disabled for spam: 410');
is(http('GET', "$base/dmca")->{status}, '451', 'a link disabled with a legal reason: 451');
is(http('GET', "$base/phish")->{status}, '410', 'a link to a host blocked for phishing: 410');
is(http('GET', "$base/court")->{status}, '451', 'a link to a host blocked for a legal reason: 451');
$r = http('GET', "$base/sale");
is($r->{h}{location}, 'https://example.com/sale-default', 'no short domain in Host: the default domain');
$r = http('GET', "$base/sale", headers => [ 'Host: GO.example:8080' ]);
is($r->{h}{location}, 'https://example.com/sale-go', 'Host go.example (any case, any port): its link');
my $before = $node->safe_psql('postgres', q{SELECT shorturl.visits('spring')});
$r = http('HEAD', "$base/spring");
is("$r->{status} $r->{h}{location}", '302 https://example.com/spring', 'HEAD: 302 with the URL');
is(http('HEAD', "$base/once")->{status}, '410', 'HEAD of an exhausted link: 410');
is(http('HEAD', "$base/nothing-here")->{status}, '404', 'HEAD of an unknown code: 404');
is($node->safe_psql('postgres', q{SELECT shorturl.visits('spring')}), $before, 'HEAD counts no visit');

my $sync = start_service('tablemode', SHORTURL_WORKERS => 1);
is(json_of(http('GET', "$sync/healthz"))->{mode}, 'sync', '/healthz tells a database in table mode');
$r = http('GET', "$sync/limited");
is("$r->{status} " . ($r->{h}{'retry-after'} // ''), '503 1',
	'a limited link in table mode (active, not served): 503 with Retry-After');

# (b) the scan guard: one miss per unknown code
my @scanner = ('X-Forwarded-For: 198.51.100.7');
http('GET', "$base/scan$_", headers => \@scanner) for 1 .. 25;
is(http('GET', "$base/spring", headers => \@scanner)->{status}, '302',
	'25 unknown codes leave a client served (each miss counted once, of 30)');
http('GET', "$base/scan$_", headers => \@scanner) for 26 .. 50;
is(http('GET', "$base/spring", headers => \@scanner)->{status}, '404',
	'past the scan limit, a real code is 404 for the scanner');
is(http('GET', "$base/spring", headers => [ 'X-Forwarded-For: 198.51.100.8' ])->{status}, '302',
	'... and 302 for another client');

# (c) POST /api/links
my $api = "$base/api/links";
my @alice = ("Authorization: Bearer $ALICE", 'Content-Type: application/json');
my @bob = ("Authorization: Bearer $BOB", 'Content-Type: application/json');
$r = http('POST', $api, data => '{"url": "https://example.com/"}');
is($r->{status}, '401', 'POST without a key: 401');
like($r->{h}{'www-authenticate'} // '', qr/^Bearer/, '... asking for a bearer token');
is(http('POST', $api, headers => [ 'Authorization: Bearer not-a-key-0123456789' ], data => '{"url": "https://example.com/"}')->{status},
	'401', 'POST with a wrong key: 401');
$r = http('POST', $api, headers => \@alice, data => '{"url": "ftp://example.com/"}');
is($r->{status}, '400', 'a URL shorten() refuses: 400');
is(json_of($r)->{sqlstate}, '22023', '... SQLSTATE 22023');
like(json_of($r)->{error}, qr/http/, "... with shorten()'s message");
is(http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/", "colour": "red"}')->{status},
	'400', 'an unknown field: 400');
is(http('POST', $api, headers => \@alice, data => 'url=https://example.com/')->{status}, '400', 'a body that is not JSON: 400');
# what PostgreSQL's text or UTF-8 cannot hold, a nesting deeper than
# Python's recursion, and an expiry no datetime holds: the client's
# mistakes (400), never a 500 with a traceback (found by a hostile review)
is(http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/", "title": "a\u0000b"}')->{status},
	'400', 'a title with a NUL: 400');
is(http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/", "alias": "\ud800"}')->{status},
	'400', 'an alias with a lone surrogate: 400');
is(http('POST', $api, headers => \@alice, data => ('[' x 20000) . (']' x 20000))->{status},
	'400', 'JSON nested 20,000 deep: 400');
is(http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/", "expires_at": "infinity"}')->{status},
	'400', 'expires_at infinity: 400');
$r = http('POST', $api, headers => \@alice,
	data => '{"url": "https://example.com/made", "alias": "made", "title": "Made by the API", "tags": ["api", "test"], "max_visits": 100}');
is($r->{status}, '201', 'a good POST: 201');
my $made = json_of($r);
is("$made->{code} $made->{short_url} $made->{owner} $made->{max_visits} @{ $made->{tags} // [] }",
	"made $base/made alice 100 api test", '... with the code, the short URL and the link as stored');
is($r->{h}{location}, "$base/made", '... and the short URL in Location');
$r = http('GET', "$base/made");
is("$r->{status} $r->{h}{location}", '302 https://example.com/made', 'the new code redirects');
$r = http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/again", "alias": "spring"}');
is($r->{status}, '409', 'an alias that is taken: 409');
is(json_of($r)->{sqlstate}, '23505', '... SQLSTATE 23505');
is(http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/", "expires_at": "not a date"}')->{status},
	'400', 'an expires_at PostgreSQL cannot read: 400');
is(http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/", "max_visits": 0}')->{status},
	'400', 'max_visits 0: 400');
# alice has spent her burst of 5: every request that reached the database
# (the unknown field and the body that is not JSON did not)
$r = http('POST', $api, headers => \@alice, data => '{"url": "https://example.com/more"}');
is($r->{status}, '429', 'past the rate limit of her key: 429');
cmp_ok($r->{h}{'retry-after'} // 0, '>=', 1, '... with Retry-After');
like($r->{body}, qr/too many requests/, '... from rate_limit()');
# bob's quota is 3 links an hour (ALTER ROLE above)
is(http('POST', $api, headers => \@bob, data => qq{{"url": "https://example.com/b$_"}})->{status}, '201', "bob's link $_: 201")
  for 1 .. 3;
$r = http('POST', $api, headers => \@bob, data => '{"url": "https://example.com/b4"}');
is($r->{status}, '429', "bob's fourth link this hour: 429");
is(json_of($r)->{sqlstate}, '53400', '... SQLSTATE 53400 (the quota)');
cmp_ok($r->{h}{'retry-after'} // 0, '>', 60, '... with the Retry-After of the DETAIL');

# (d) clicks and their facts: [referrer, user agent, country header, client]
my @clicks = (
	[ 'https://t.co/a',                $DESKTOP, 'de', '203.0.113.1' ],
	[ 'https://T.co:443/b',            $IPHONE,  'DE', '203.0.113.2' ],
	[ 'https://news.example.org/item', $IPAD,    'US', '203.0.113.3' ],
	[ undef,                           $FIREFOX, 'FR', '203.0.113.1' ],
	[ 'https://t.co/c',                $DESKTOP, 'XX', '203.0.113.1' ],
	[ 'https://news.example.org/',     $DESKTOP, undef, '203.0.113.4' ],
	[ 'https://www.google.com/',       $BOT,     'US', '66.249.66.1' ],
);
for (@clicks)
{
	my ($ref, $ua, $country, $client) = @$_;
	$r = http('GET', "$base/count", agent => $ua,
		headers => [ "X-Forwarded-For: 192.0.2.200, $client",
			(defined $ref ? "Referer: $ref" : ()), (defined $country ? "CF-IPCountry: $country" : ()) ]);
	is($r->{status}, '302', "a click of count from $client");
}
$node->safe_psql('postgres', 'SELECT shorturl.flush()');
is($node->safe_psql('postgres', q{SELECT shorturl.visits('count')}), scalar @clicks, 'visits(): every click, the bot too');
my %want = (
	referrer => 'direct=1 news.example.org=2 t.co=3',
	country  => 'DE=2 FR=1 US=1 unknown=2',
	device   => 'desktop=4 mobile=1 tablet=1',
);
for my $dim (sort keys %want)
{
	is($node->safe_psql('postgres',
		"SELECT string_agg(value || '=' || visits, ' ' ORDER BY value) FROM shorturl.visit_breakdown('count', '$dim')"),
		$want{$dim}, "visit_breakdown('$dim') matches the requests (bots left out)");
}
# distinct (client, user agent) pairs without the bot: .1 desktop, .2, .3,
# .1 firefox, .4
is($node->safe_psql('postgres', q{SELECT shorturl.unique_visitors('count')}), '5',
	'unique_visitors(): one per client and user agent (X-Forwarded-For read from the trusted proxy)');

# (e) the statistics page, of a link with a week of history and live clicks
$node->safe_psql('postgres', q{
	SET timezone = 'UTC';
	SELECT shorturl.shorten('https://example.com/launch', alias => 'launch', owner => 'alice', title => 'Launch <day>');
	UPDATE shorturl.links SET created_at = now() - interval '10 days' WHERE code = 'launch';
	INSERT INTO shorturl.link_visits_hourly (link_id, hour, visits, bots)
	SELECT l.id, date_trunc('day', now()) - d * interval '1 day' + interval '13 hours', 10 * d + 3, 0
	FROM shorturl.links l, generate_series(1, 6) d WHERE l.code = 'launch';
	INSERT INTO shorturl.visit_counts (link_id, visits, last_visit_at)
	SELECT link_id, sum(visits), max(hour) FROM shorturl.link_visits_hourly
	WHERE link_id = (SELECT id FROM shorturl.links WHERE code = 'launch') GROUP BY link_id;
});
http('GET', "$base/launch", headers => [ "X-Forwarded-For: 203.0.113.$_", 'Referer: https://t.co/z', 'CF-IPCountry: NL' ])
  for 1 .. 4;
$node->safe_psql('postgres', 'SELECT shorturl.flush()');
my $stats = "$base/launch+";
is(http('GET', $stats)->{status}, '401', 'the statistics page wants a key');
is(http('GET', $stats, headers => [ "Authorization: Bearer $BOB" ])->{status}, '404', "another owner's key: 404");
$r = http('GET', $stats, headers => [ "Authorization: Bearer $ALICE" ]);
is($r->{status}, '200', "the owner's key: 200");
unlike($r->{body}, qr/<rect class="bar"/, 'the served page has no bar: the browser draws them');
like($r->{body}, qr/Launch &lt;day&gt;/, 'the title is escaped');
like($r->{h}{'content-security-policy'} // '', qr/script-src 'sha256-/, 'a CSP admits the one inline script');
my $json = json_of(http('GET', "$stats?format=json", headers => [ "Authorization: Bearer $ALICE" ]));
is($json->{live_visits}, 6 * 7 / 2 * 10 + 18 + 4, 'format=json: the live count');

# chromium as the unprivileged user needs a HOME and a profile it can write
sub browse
{
	my ($url, @args) = @_;
	my $profile = PostgreSQL::Test::Utils::tempdir();
	local $ENV{HOME} = $profile;
	my ($out, $err) = ('', '');
	my @cmd = ($CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
		'--no-first-run', '--disable-extensions', '--hide-scrollbars', "--user-data-dir=$profile/chromium", @args, $url);
	my $ok = eval {
		IPC::Run::run(\@cmd, '<', '/dev/null', '>', \$out, '2>', \$err, IPC::Run::timeout($BROWSER_TIMEOUT));
		1;
	};
	diag "chromium: $@ $err" unless $ok;
	return $out;
}

# the credentials in the URL: Basic authentication with the key as password
(my $auth_base = $base) =~ s{^http://}{http://alice:$ALICE\@};
for my $case ([ '30d', 'day', "date_trunc('day', now()) - interval '29 days'", 30 ],
	[ '48h', 'hour', "date_trunc('hour', now()) - interval '47 hours'", 48 ])
{
	my ($range, $bucket, $from, $n) = @$case;
	my $series = qq{
		SET timezone = 'UTC';
		SELECT string_agg(to_char(bucket_start, 'YYYY-MM-DD"T"HH24') || '=' || visits, ' ' ORDER BY bucket_start)
		FROM shorturl.visit_series('launch', $from, now(), '$bucket')};
	# read before and after the page, in case an hour turns in between
	my $want_before = $node->safe_psql('postgres', $series);
	my $dom = browse("$auth_base/launch+?range=$range", '--dump-dom');
	my $want_after = $node->safe_psql('postgres', $series);
	my @bars = $dom =~ /<rect class="bar"[^>]*>/g;
	my $drawn = join ' ', map { /data-bucket="([^"]+)" data-visits="(\d+)"/ ? substr($1, 0, 13) . "=$2" : '?' } @bars;
	is(scalar @bars, $n, "range $range: the script drew $n bars");
	is($drawn, $drawn eq $want_before ? $want_before : $want_after,
		"range $range: each bar has the bucket and the visits of visit_series()");
	like($dom, qr/data-total="(\d+)"/, "range $range: the chart's total is set");
}

my $png = "$tmp/stats.png";
browse("$auth_base/launch+", "--screenshot=$png", '--window-size=1280,1000', '--run-all-compositor-stages-before-draw');
ok(-s $png && -s $png > 20_000, 'the screenshot is a real picture (' . (-s $png // 0) . ' bytes)');
is(substr(slurp_file($png), 0, 8), "\x89PNG\r\n\x1a\n", '... a PNG');
SKIP:
{
	skip 'zbarimg is missing (Debian: zbar-tools)', 1 unless system('zbarimg --version >/dev/null 2>&1') == 0;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'zbarimg', '--quiet', '--raw', $png ], '>', \$out, '2>', \$err);
	chomp $out;
	is($out, "$base/launch", "zbarimg reads the page's QR code as the short URL");
}

# (f) a clean stop
my $svc = $services[0];
$svc->{h}->signal('TERM');
my $t0 = time;
$svc->{h}->finish;
is($svc->{h}->result(0), 0, 'SIGTERM: the service exits 0');
cmp_ok(time - $t0, '<', 30, '... in ' . sprintf('%.1f', time - $t0) . ' s');
like(slurp_file($svc->{log}), qr/worker stopping.*stopped/s, '... after its workers stopped');

# (g) the service's address and visitor rules, called directly (what a
# test over HTTP on 127.0.0.1 cannot reach; found by a hostile review):
# a listener on [::] sees an IPv4 proxy as ::ffff:a.b.c.d, which must be
# the proxy; and two instances with one SHORTURL_VISITOR_SECRET give a
# visitor one hash from the day they start.
my $checks = <<'PY';
import ipaddress, sys
sys.path.insert(0, sys.argv[1])
import redirect_service as r
trusted = (ipaddress.ip_network("127.0.0.1/32"),)
print(r.parse_address("::ffff:127.0.0.1", trusted))
a = r.Visitors(b"seed-a" * 6, b"shared secret")
b = r.Visitors(b"seed-b" * 6, b"shared secret")
print(a.visitor("192.0.2.1", "UA") == b.visitor("192.0.2.1", "UA"))
PY
my ($out, $err) = ('', '');
IPC::Run::run([ $PYTHON, '-c', $checks, $SERVICE_DIR ], '>', \$out, '2>', \$err);
is($out, "('127.0.0.1', True)\nTrue\n", 'an IPv4-mapped peer is the IPv4 proxy; one secret, one visitor hash')
  or diag($err);

done_testing();
