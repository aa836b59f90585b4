# 005_manage.pl: managing links through a coordinator in front of three
# shards, each a server of its own, checked against the shards' tables.
#
# 1. upgrade: a 0.6 cluster (shards and coordinator at 0.6, the library
#    of today) with links and clicks; the shards, then the coordinator,
#    ALTER EXTENSION ... UPDATE TO '0.7': every link resolves with its
#    count, an application role's grant on shorten() survives, and the
#    old links can be managed; then both to the latest version, which
#    the rest of the test runs (006_analytics.pl updates from 0.7);
# 2. domains: a row added on the coordinator is on every shard; an unknown
#    domain is 22023; a domain with links cannot go (23503), TRUNCATE is
#    refused (0A000);
# 3. routing keys: the same alias on three domains is three links, each on
#    the shard route(link_key(code, domain)) names and on no other, and
#    each resolves to its own URL; generated codes on a domain too;
# 4. owners: shorten() stores owner, title and tags; another owner's link
#    reads as unknown to every management function, exactly as a code
#    that does not exist;
# 5. update_link (PATCH), disable_link / enable_link, reset_visits with
#    clicks pending in the shard's shared memory, delete_link (the alias
#    is retired: refused again through the coordinator); none of them in
#    a read-only transaction (25006); a patch's time in the caller's zone;
# 6. list_links merges the shards: 250 links of an owner paged 100 at a
#    time with after => are each seen once, in code order, and tag,
#    search and domain filters give exactly the matching links;
# 7. import_links through the coordinator: 2,000 rows land on the shards
#    their keys route to with their counts; the bad ones are rejected with
#    a reason; a second run imports nothing;
# 8. edits during a rebalance: while CALL rebalance() moves links to a
#    fourth shard, update_link keeps changing the titles of 20 links that
#    move, rounds of edits interleaving with the moves; afterwards every link is on exactly one shard, the one its key
#    routes to, with the last title written, its owner and its tags.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

# ---------------------------------------------------------------------
# 1. A 0.6 cluster, updated
# ---------------------------------------------------------------------
my %shard = map { $_ => ShortURL::Test::shard_at($_, '0.6', "shorturl.flush_interval = '1h'") } qw(alpha bravo charlie);
my $coord = ShortURL::Test::coordinator_at('coord', '0.6');

sub co { return $coord->safe_psql('postgres', $_[0]); }
sub co_error { return ShortURL::Test::sql_error($coord, 'postgres', $_[0]); }
sub on { return $shard{ $_[0] }->safe_psql('postgres', $_[1]); }

ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_} ] } sort keys %shard);
co('SET client_min_messages = warning; CALL shorturl.rebalance()');
co(q{CREATE TABLE old_links AS SELECT g, shorturl.shorten('https://example.com/old/' || g) AS code
	FROM generate_series(1, 300) g});
co(q{SELECT count(shorturl.resolve(code)) FROM old_links, generate_series(1, g % 4)});
co(q{CREATE ROLE app});
co(q{GRANT EXECUTE ON FUNCTION shorturl.shorten(text, timestamptz, bigint, text, boolean),
	shorturl.resolve(text) TO app});
my $old_visits = co(q{SELECT sum(shorturl.visits(code)) FROM old_links});
is($old_visits, co('SELECT sum(g % 4) FROM old_links'), "0.6: 300 links made and clicked ($old_visits clicks)");

# the shards first: a 0.7 coordinator calls their 0.7 functions
like(co_error(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.7'}),
	qr/^55000: shard "alpha" runs pg_shorturl 0\.6, and this update needs 0\.7/,
	'the coordinator\'s update refuses while the shards run 0.6 (55000)');
on($_, q{ALTER EXTENSION pg_shorturl UPDATE TO '0.7'}) for sort keys %shard;
is(co('SELECT count(*) FROM old_links WHERE shorturl.resolve(code) IS NULL'), 0,
	'shards at 0.7, coordinator at 0.6: every old link resolves');
co(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.7'});
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}), '0.7',
	'the coordinator is at 0.7');
is(co(q{SELECT count(*) FROM old_links WHERE shorturl.resolve(code) = 'https://example.com/old/' || g}), 300,
	'after the update every old link resolves to its URL');
is(co(q{SELECT sum(shorturl.visits(code)) FROM old_links}), $old_visits + 2 * 300,
	'and its count went on: the clicks before the updates plus the two resolves since');
is(co(q{SELECT has_function_privilege('app',
	'shorturl.shorten(text, timestamptz, bigint, text, boolean, text, text, text[], text)', 'EXECUTE')}), 't',
	'the application role may still call shorten() (its new signature)');
is(co(q{SELECT has_function_privilege('app', 'shorturl.get_link(text, text, text)', 'EXECUTE')}), 'f',
	'a new management function is not granted to anyone');
my $old = co('SELECT code FROM old_links WHERE g = 7');
is(co(qq{SELECT status || '|' || visits || '|' || url FROM shorturl.get_link('$old')}),
	'active|' . co("SELECT shorturl.visits('$old')") . '|https://example.com/old/7',
	'an old link can be read with get_link()');

# a fresh install is the same: made by the same scripts (0.6, then the update)
my $fresh = ShortURL::Test::node('fresh');
$fresh->safe_psql('postgres', q{CREATE EXTENSION pg_shorturl_coordinator VERSION '0.7' CASCADE});
my $objects = q{SELECT string_agg(pg_describe_object(classid, objid, 0), E'\n' ORDER BY 1)
	FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl_coordinator')};
is(co($objects), $fresh->safe_psql('postgres', $objects), 'an updated coordinator has the objects of a fresh one');
$fresh->stop;

# the rest runs on the latest versions
on($_, 'ALTER EXTENSION pg_shorturl UPDATE') for sort keys %shard;
co('ALTER EXTENSION pg_shorturl_coordinator UPDATE');
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}),
	co(q{SELECT default_version FROM pg_available_extensions WHERE name = 'pg_shorturl_coordinator'}),
	'shards and coordinator updated to the latest version');

# the QR functions are a single server's, and PUBLIC
is(co(q{SELECT md5(shorturl.qr_svg('https://sho.rt/promo')) || md5(shorturl.qr_png('https://sho.rt/promo', 3))}),
	on('alpha', q{SELECT md5(shorturl.qr_svg('https://sho.rt/promo')) || md5(shorturl.qr_png('https://sho.rt/promo', 3))}),
	'qr_svg and qr_png on the coordinator draw what they draw on a shard');
is(co(q{SELECT has_function_privilege('app', 'shorturl.qr_png(text, integer)', 'EXECUTE')}), 't',
	'... and every role may call them');

# ---------------------------------------------------------------------
# 2. Domains
# ---------------------------------------------------------------------
co(q{INSERT INTO shorturl.domains (domain) VALUES ('go.acme.com'), ('acme.link')});
is(join(' ', map { on($_, q{SELECT string_agg(domain, ',' ORDER BY domain) FROM shorturl.domains}) } sort keys %shard),
	'acme.link,go.acme.com acme.link,go.acme.com acme.link,go.acme.com',
	'domains added on the coordinator are on every shard');
like(co_error(q{SELECT shorturl.shorten('https://example.com/x', domain => 'nope.example')}),
	qr/^22023: unknown domain "nope.example"/, 'an unknown domain is 22023');
like(co_error(q{INSERT INTO shorturl.domains VALUES ('Not A Host')}), qr/^23514: /,
	'a domain that is no lower-case host name is refused (23514)');

# ---------------------------------------------------------------------
# 3. Routing keys
# ---------------------------------------------------------------------
# where lists "code|domain" -> shard of every link on every shard
sub where
{
	my %w;
	for my $name (sort keys %shard)
	{
		push @{ $w{$_} }, $name for split /\n/, on($name, q{SELECT code || '|' || domain FROM shorturl.links});
	}
	return \%w;
}

co(q{CREATE TABLE made (code text COLLATE "C", domain text COLLATE "C", url text, owner text)});
co(q{INSERT INTO made SELECT 'promo' || g, d, 'https://example.com/' || coalesce(d, 'default') || '/promo' || g, NULL
	FROM generate_series(1, 100) g, unnest(ARRAY[NULL, 'go.acme.com', 'ACME.link']) d});
co(q{SELECT count(shorturl.shorten(url, alias => code, domain => domain)) FROM made});
co(q{INSERT INTO made SELECT shorturl.shorten(u, domain => 'go.acme.com'), 'go.acme.com', u, NULL
	FROM (SELECT 'https://example.com/gen/' || g AS u FROM generate_series(1, 100) g) s});
my $w = where();
# "code|domain" -> the shard its key routes to
my %route_of = map { my ($c, $d, $s) = split /\|/; ("$c|$d" => $s) } split /\n/,
  co(q{SELECT code || '|' || lower(coalesce(domain, '')) || '|' || shorturl.route(shorturl.link_key(code, domain)) FROM made});
my @misplaced = grep { join(',', @{ $w->{$_} // [] }) ne $route_of{$_} } sort keys %route_of;
is(scalar @misplaced, 0, scalar(keys %route_of) . ' links on three domains: each on exactly the shard of route(link_key(code, domain))')
  or diag "misplaced: @misplaced[0 .. 4]";
# the formula, written out: the code on the default domain, domain/code on another
is(co(q{SELECT shorturl.link_key('promo1', NULL) || ' ' || shorturl.link_key('promo1', '') || ' '
	|| shorturl.link_key('promo1', 'ACME.link')}), 'promo1 promo1 acme.link/promo1', 'link_key() is code, or lower(domain)/code');
my $split = co(q{SELECT count(*) FROM generate_series(1, 100) g
	WHERE shorturl.route('promo' || g) <> shorturl.route('go.acme.com/promo' || g)});
cmp_ok($split, '>', 30, "the same alias on two domains lives on different shards for $split of 100 codes");
is(co(q{SELECT count(*) FROM made WHERE shorturl.resolve(code, domain) = url}), 400,
	'each of the 400 links resolves to its own URL on its own domain');
is(co(q{SELECT count(*) FROM made WHERE domain IS NULL AND shorturl.resolve(code) = url}), 100,
	'resolve(code) is the default domain\'s');
is(co(q{SELECT shorturl.resolve('promo1', 'nope.example') IS NULL AND shorturl.link_status('promo1', 'nope.example') = 'unknown'}),
	't', 'on an unknown domain a code is unknown');
like(co_error(q{SELECT shorturl.shorten('https://example.com/again', alias => 'promo1', domain => 'go.acme.com')}),
	qr/^23505: alias "promo1" is already taken/, 'an alias is unique per domain (23505)');
like(co_error(q{DELETE FROM shorturl.domains WHERE domain = 'acme.link'}), qr/^23503: .*domain "acme.link" still has links/,
	'a domain with links cannot go (23503, from the shard that has them)');
is(join(' ', map { on($_, q{SELECT count(*) FROM shorturl.domains}) } sort keys %shard), '2 2 2',
	'... and every shard still has it');
like(co_error(q{TRUNCATE shorturl.domains}), qr/^0A000: /, 'TRUNCATE of the domains is refused (0A000)');
co(q{UPDATE shorturl.domains SET added_at = '2026-01-02 03:04:05+00' WHERE domain = 'acme.link'});
is(join(' ', map { on($_, q{SELECT added_at = '2026-01-02 03:04:05+00' FROM shorturl.domains WHERE domain = 'acme.link'}) } sort keys %shard),
	't t t', 'an UPDATE that keeps the name of a domain with links is made on every shard');

# ---------------------------------------------------------------------
# 4. Owners
# ---------------------------------------------------------------------
my $link = co(q{SELECT shorturl.shorten('https://example.com/alice/1', owner => 'alice', title => 'First',
	tags => ARRAY['b', 'a', 'b'])});
my $link_shard = co("SELECT shorturl.route('$link')");
is(on($link_shard, qq{SELECT owner || '|' || title || '|' || array_to_string(tags, ',') FROM shorturl.links WHERE code = '$link'}),
	'alice|First|b,a', 'shorten() stored owner, title and tags (each once) on the shard that owns the code');
like(co_error(q{SELECT shorturl.shorten('https://example.com/x', tags => ARRAY[''])}), qr/^22023: /,
	'a bad tag is refused by the shard with its own SQLSTATE (22023)');
# every function answers for another owner's link what it answers for no link
my %answers;
for my $code ($link, 'no-such-code')
{
	$answers{$code} = join ' ', map { co($_ =~ s/CODE/$code/gr) }
	  q{SELECT count(*) FROM shorturl.get_link('CODE', owner => 'bob')},
	  q{SELECT count(*) FROM shorturl.update_link('CODE', '{"url": "https://evil.example/"}', owner => 'bob')},
	  q{SELECT shorturl.disable_link('CODE', owner => 'bob')},
	  q{SELECT shorturl.enable_link('CODE', owner => 'bob')},
	  q{SELECT coalesce(shorturl.reset_visits('CODE', owner => 'bob')::text, 'null')},
	  q{SELECT shorturl.delete_link('CODE', owner => 'bob')},
	  q{SELECT count(*) FROM shorturl.list_links(owner => 'bob')};
}
is($answers{$link}, '0 0 f f null f 0', "another owner's link: no row, false, NULL, nothing listed");
is($answers{$link}, $answers{'no-such-code'}, '... exactly the answers for a code that does not exist');
is(co(qq{SELECT url || '|' || status FROM shorturl.get_link('$link', owner => 'alice')}), 'https://example.com/alice/1|active',
	'and nothing changed: the owner reads it as it was');

# ---------------------------------------------------------------------
# 5. Edit, disable, reset, delete
# ---------------------------------------------------------------------
co(qq{SELECT count(shorturl.resolve('$link')) FROM generate_series(1, 5)});
is(co(qq{SELECT url || '|' || title || '|' || coalesce(tags::text, 'null') || '|' || max_visits || '|' || status
	FROM shorturl.update_link('$link', '{"url": "https://example.com/alice/one", "tags": null, "max_visits": 3}', owner => 'alice')}),
	'https://example.com/alice/one|First|null|3|exhausted',
	'update_link: a PATCH changes the named fields, null clears, a max_visits below the count exhausts');
is(on($link_shard, qq{SELECT url FROM shorturl.links WHERE code = '$link'}), 'https://example.com/alice/one', '... on the shard');
like(co_error(qq{SELECT * FROM shorturl.update_link('$link', '{"url": "javascript:alert(1)"}')}), qr/^22023: /,
	'a bad URL in a patch is the shard\'s 22023');
co(qq{SELECT * FROM shorturl.update_link('$link', '{"max_visits": null}')});
# a time without an offset is read in the caller's time zone, not the shard's
is(co(qq{SET timezone = 'Asia/Tokyo'; SELECT expires_at AT TIME ZONE 'UTC'
	FROM shorturl.update_link('$link', '{"expires_at": "2030-01-01 00:00"}')}), '2029-12-31 15:00:00',
	'update_link reads expires_at in the caller\'s time zone');
co(qq{SELECT * FROM shorturl.update_link('$link', '{"expires_at": null}')});
# no change in a read-only transaction: it would commit on the shard at once
for my $call (qq{SELECT shorturl.disable_link('$link')}, qq{SELECT * FROM shorturl.update_link('$link', '{"title": "ro"}')},
	qq{SELECT shorturl.enable_link('$link')}, qq{SELECT shorturl.delete_link('$link')}, qq{SELECT shorturl.reset_visits('$link')})
{
	like(co_error("BEGIN READ ONLY; $call"), qr/^25006: cannot execute \w+\(\) in a read-only transaction/,
		"read-only: $call is refused (25006)");
}
is(co(qq{SELECT title || '|' || status FROM shorturl.get_link('$link')}), 'First|active', '... and the link is as it was');
ok(co(qq{SELECT shorturl.disable_link('$link', 'phishing report')}) eq 't'
	  && co(qq{SELECT coalesce(shorturl.resolve('$link'), 'null') || '|' || shorturl.link_status('$link')}) eq 'null|disabled',
	'disable_link: it resolves to NULL and link_status() says disabled');
is(co(qq{SELECT shorturl.enable_link('$link')::text || '|' || shorturl.resolve('$link')}), 'true|https://example.com/alice/one',
	'enable_link: it resolves again');
# clicks pending in the shard's shared memory (flushes are hourly here)
co(qq{SELECT count(shorturl.resolve('$link')) FROM generate_series(1, 7)});
my $pending = on($link_shard, 'SELECT pending_visits FROM shorturl.stats');
cmp_ok($pending, '>=', 7, "the shard holds $pending clicks unflushed");
is(co(qq{SELECT shorturl.reset_visits('$link', owner => 'alice')}), 5 + 1 + 7, 'reset_visits returns the count, pending clicks included');
is(co(qq{SELECT shorturl.visits('$link')}), 0, 'and the count is 0');
co(qq{SELECT count(shorturl.resolve('$link')) FROM generate_series(1, 2)});
on($link_shard, 'SELECT shorturl.flush()');
is(co(qq{SELECT shorturl.visits('$link')}) . '|' . on($link_shard, qq{SELECT visits FROM shorturl.visit_counts c
	JOIN shorturl.links l ON l.id = c.link_id WHERE code = '$link'}), '2|2', 'clicks after the reset count from 0, flushed exactly');
is(co(q{SELECT shorturl.delete_link('promo7', domain => 'go.acme.com')}), 't', 'delete_link on a domain');
is(co(q{SELECT shorturl.link_status('promo7', 'go.acme.com') || '|' || shorturl.link_status('promo7')}), 'unknown|active',
	'the link is gone from its domain only');
like(co_error(q{SELECT shorturl.shorten('https://example.com/new', alias => 'promo7', domain => 'go.acme.com')}),
	qr/^23505: alias "promo7" (?:is retired|was used before)/, 'its alias is never issued again (23505)');

# ---------------------------------------------------------------------
# 6. Listing across shards
# ---------------------------------------------------------------------
co(q{INSERT INTO made SELECT shorturl.shorten('https://example.com/carol/' || g, owner => 'carol',
	title => 'Item ' || g, tags => CASE WHEN g % 10 = 0 THEN ARRAY['ten'] END), NULL,
	'https://example.com/carol/' || g, 'carol' FROM generate_series(1, 250) g});
is(co(q{SELECT count(DISTINCT shorturl.route(code)) FROM made WHERE owner = 'carol'}), 3, "carol's links are on all three shards");
my (@seen, $after);
for my $page (1 .. 4)
{
	my $rows = ShortURL::Test::rows($coord, 'postgres', 'SELECT code FROM shorturl.list_links(owner => \'carol\', lim => 100'
		  . (defined $after ? ", after => '$after'" : '') . ')');
	push @seen, @$rows;
	last unless @$rows;
	$after = $rows->[-1];
}
my @want = @{ ShortURL::Test::rows($coord, 'postgres', q{SELECT code FROM made WHERE owner = 'carol' ORDER BY code COLLATE "C"}) };
is_deeply(\@seen, \@want, 'list_links pages through the 250 links of carol, 100 at a time, each once, in code order');
is(co(q{SELECT string_agg(code, ',' ORDER BY code COLLATE "C") FROM shorturl.list_links(owner => 'carol', tag => 'ten')}),
	co(q{SELECT string_agg(code, ',' ORDER BY code COLLATE "C") FROM made WHERE owner = 'carol' AND url ~ '0$'}),
	'a tag lists exactly the links that have it, from every shard');
is(co(q{SELECT string_agg(code, ',' ORDER BY code COLLATE "C") FROM shorturl.list_links(search => 'CAROL/12', lim => 1000)}),
	co(q{SELECT string_agg(code, ',' ORDER BY code COLLATE "C") FROM made WHERE url ILIKE '%carol/12%'}),
	'a search lists exactly the links that contain the text');
is(co(q{SELECT count(*) FROM shorturl.list_links(domain => 'go.acme.com', lim => 1000)}), 199,
	'a domain lists its own links only (200 made, 1 deleted)');
like(co_error(q{SELECT * FROM shorturl.list_links(lim => 0)}), qr/^22023: lim must be between 1 and 1000/, 'lim is checked (22023)');

# ---------------------------------------------------------------------
# 7. Import
# ---------------------------------------------------------------------
co(q{CREATE TABLE legacy AS
	SELECT 'old-' || g AS code, 'https://legacy.example/' || g AS url,
	       timestamptz '2020-01-01' + g * interval '1 hour' AS created_at, (g * 7) % 1000 AS visits,
	       CASE WHEN g % 3 = 0 THEN 'go.acme.com' END AS domain, 'dave' AS owner
	FROM generate_series(1, 2000) g});
co(q{INSERT INTO legacy VALUES ('bad-url', 'ftp://legacy.example/', now(), 1, NULL, 'dave'),
	('promo1', 'https://legacy.example/taken', now(), 1, NULL, 'dave'),
	('x-dom', 'https://legacy.example/dom', now(), 1, 'nope.example', 'dave')});
my $first = co(q{SELECT string_agg(outcome || ':' || n, ' ' ORDER BY outcome) FROM
	(SELECT outcome, count(*) AS n FROM shorturl.import_links('legacy') GROUP BY 1) s});
is($first, 'imported:2000 rejected:3', 'import_links: 2,000 rows imported, 3 rejected');
is(co(q{SELECT count(*) FROM legacy WHERE code LIKE 'old-%' AND shorturl.visits(code, domain) = visits}), 2000,
	'each imported link has its count');
is(co(q{SELECT count(*) FROM legacy WHERE code LIKE 'old-%' AND shorturl.resolve(code, domain) = url}), 2000,
	'and resolves on its domain to its URL');
$w = where();
my @astray = grep { my ($c, $d, $s) = split /\|/; join(',', @{ $w->{"$c|$d"} // [] }) ne $s } split /\n/,
  co(q{SELECT code || '|' || coalesce(domain, '') || '|' || shorturl.route(shorturl.link_key(code, domain))
	FROM legacy WHERE code LIKE 'old-%'});
is(scalar @astray, 0, 'each imported link is on the shard its key routes to, and on no other') or diag "@astray[0 .. 2]";
my %why = map { split /\t/ } split /\n/,
  co(q{SELECT code || E'\t' || detail FROM shorturl.import_links('legacy') WHERE outcome = 'rejected'});
like($why{'bad-url'} // '', qr/^URL must start with http:\/\/ or https:\/\//, 'a bad URL is rejected with the shard\'s reason');
is($why{promo1} // '', 'code "promo1" is taken by a link to another URL', 'a code taken by another link is rejected');
is($why{'x-dom'} // '', 'unknown domain "nope.example"', 'an unknown domain is rejected');
is(co(q{SELECT string_agg(outcome || ':' || n, ' ' ORDER BY outcome) FROM
	(SELECT outcome, count(*) AS n FROM shorturl.import_links('legacy') GROUP BY 1) s}),
	'rejected:3 unchanged:2000', 'a second run imports nothing: 2,000 unchanged');
my $gen = co(q{SELECT code FROM made WHERE domain = 'go.acme.com' AND url LIKE '%/gen/1'});
co(qq{SELECT shorturl.delete_link('$gen', domain => 'go.acme.com')});
co(qq{CREATE TABLE legacy2 AS SELECT '$gen'::text AS code, 'https://legacy.example/gen'::text AS url,
	now() AS created_at, 0 AS visits});
like(co(q{SELECT outcome || ': ' || detail FROM shorturl.import_links('legacy2')}),
	qr/^rejected: alias "\Q$gen\E" is already taken: it is a generated code that was handed out before/,
	'a generated code the cluster handed out is refused, even once its link is gone');

# ---------------------------------------------------------------------
# 8. Edits during a rebalance
# ---------------------------------------------------------------------
my $delta = ShortURL::Test::shard('delta', "shorturl.flush_interval = '200ms'");
$shard{delta} = $delta;
ShortURL::Test::add_shards($coord, 'postgres', [ 'delta', $delta, 2 ]);
# links of carol that will move to delta, and some that stay
my @movers = @{ ShortURL::Test::rows($coord, 'postgres', q{SELECT code FROM made
	WHERE owner = 'carol' AND shorturl.route(code) = 'delta' ORDER BY code LIMIT 20}) };
cmp_ok(scalar @movers, '==', 20, '20 links of carol are to move to delta');
my $movers = join ',', map { "'$_'" } @movers;
# while a rebalance is due and before it runs, an edit finds the link on its old shard
is(co(qq{SELECT title FROM shorturl.update_link('$movers[0]', '{"title": "before"}', owner => 'carol')}), 'before',
	'a link due to move is edited on the shard that still has it');
is(scalar(grep { on($_, qq{SELECT count(*) FROM shorturl.links WHERE code = '$movers[0]' AND title = 'before'}) } qw(alpha bravo charlie)),
	1, '... which is one of the three old shards');
# an alias retired on the shard it leaves cannot be imported onto its new owner
my $retired = co(q{SELECT 'promo' || g FROM generate_series(1, 100) g
	WHERE shorturl.route('promo' || g) = 'delta' AND g <> 7 ORDER BY g LIMIT 1});
is(co(qq{SELECT shorturl.delete_link('$retired')}), 't', "a rebalance due: $retired, which will move to delta, is deleted");
co(qq{CREATE TABLE legacy3 AS SELECT '$retired'::text AS code, 'https://legacy.example/back'::text AS url,
	now() AS created_at, 0 AS visits});
is(co(q{SELECT outcome || ': ' || detail FROM shorturl.import_links('legacy3')}), qq{rejected: alias "$retired" is retired},
	'... and importing its alias is refused while the rebalance is due');
my $run = ShortURL::Test::session($coord, 'postgres');
ShortURL::Test::send_sql($run, 'SET client_min_messages = warning; CALL shorturl.rebalance(1)');
my ($round, %last, @errors, @on_delta) = (0);
my $t0 = time;
while (1)
{
	$round++;
	# how many of them have arrived so far
	push @on_delta, $delta->safe_psql('postgres', qq{SELECT count(*) FROM shorturl.links WHERE code IN ($movers)});
	for my $c (@movers)
	{
		my $e = co_error(qq{SELECT count(*) FROM shorturl.update_link('$c', '{"title": "r$round"}', owner => 'carol')});
		push @errors, "$c: $e" if $e;
		$last{$c} = "r$round" unless $e;
	}
	my @answer = ShortURL::Test::answer($run, 0);
	if (@answer)
	{
		is($answer[1], '', "the rebalance finished without error after $round rounds of 20 edits");
		last;
	}
	last if time - $t0 > 120;
}
ShortURL::Test::end_session($run);
is(scalar @errors, 0, 'every edit during the rebalance succeeded') or diag "@errors[0 .. 2]";
note "movers on delta at the start of each round: @on_delta";
# proves the edits and the moves interleaved: a round began with some of
# the links moved and some not
ok((grep { $_ > 0 && $_ < 20 } @on_delta), 'edit rounds ran while the links moved (some on delta, some not)');
$w = where();
my %tags = map { split /\|/, $_, 2 } split /\n/,
  co(qq{SELECT code || '|' || CASE WHEN url ~ '0\$' THEN 'ten' ELSE '' END FROM made WHERE code IN ($movers)});
my @wrong;
for my $c (@movers)
{
	my $places = join ',', @{ $w->{"$c|"} // [] };
	my $got = $delta->safe_psql('postgres', qq{SELECT title || '|' || owner || '|' || coalesce(array_to_string(tags, ','), '')
		FROM shorturl.links WHERE code = '$c'});
	push @wrong, "$c on $places: $got" unless $places eq 'delta' && $got eq "$last{$c}|carol|$tags{$c}";
}
is(scalar @wrong, 0, 'every moved link is on delta only, with the last title written, its owner and its tags')
  or diag "@wrong[0 .. 2]";
is(co(q{SELECT pending FROM shorturl.rebalance_state}), 'f', 'no rebalance is due');

done_testing();
