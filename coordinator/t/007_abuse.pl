# 007_abuse.pl: abuse protection through a coordinator in front of two
# shards, each a server of its own, then a third and a fourth.  The shards
# block a client after 5 unknown codes (shorturl.scan_limit = 5 a minute,
# for the 10 minutes of shorturl.scan_cooldown).
#
# 1. update: a 0.8 cluster (shards and coordinator at 0.8) with links, and
#    grants on the coordinator's resolve() and link_status(), one made by a
#    role other than the owner.  The coordinator's update refuses while the
#    shards run 0.8 (55000); the shards are updated (a 0.8 coordinator
#    keeps resolving through them); then the grants are on the new
#    resolve() and link_status() with their grantors and grant options,
#    recorded as the DBA's (pg_dump keeps them), each shard has its
#    blocklist foreign table, not a member of the extension, and the
#    coordinator has the objects of a fresh 0.9 one;
# 2. the scan guard through the coordinator: resolve() and link_status()
#    pass the client; each unknown code is one miss on the shard its key
#    routes to, so the guard is each shard's: a scanner makes 5 misses on
#    each shard unblocked, its 6th on a shard blocks it there (NULL and
#    unknown for that shard's codes, with or without the code existing)
#    while the other shard still answers it, until it passes the limit
#    there too; other clients and calls without a client are served; an
#    application role granted resolve() before the update passes a client;
# 3. during a rebalance (a third shard added, not yet rebalanced): a
#    client resolving links not moved yet counts no miss on their keys'
#    new owner, an unknown code counts exactly one, and a client blocked on
#    the new owner is still blocked there once the links have moved;
# 4. blocked hosts from the coordinator: block_host() changes every
#    shard's blocklist in one transaction, and from the next statement the
#    links to the host (and its subdomains) on every shard resolve to NULL
#    and read blocked, for a session that had resolved them before too;
#    shorten() (generated code or alias) and update_link() refuse the host
#    (22023), as they refuse a short domain; blocked_hosts() lists the
#    union with the shards that have each pattern; a shard added later
#    gets the union, and one that runs pg_shorturl 0.8 is refused (55000);
#    a shard that cannot be reached fails the call and changes nothing
#    (08006); bad patterns (22023) and read-only transactions (25006) are
#    refused; unblock_host() lets the links resolve again; the functions
#    are the owner's until granted;
# 5. quotas through the coordinator, with shorturl.shorten_quota = '2/hour'
#    on the shards: an owner makes 2 links (on two shards), the 3rd is
#    refused (53400, retry_after in the DETAIL, naming the shard its key
#    'owner:' || owner routes to, whose bucket it is) and makes nothing (no
#    link, no id, the alias free); another owner whose key is on the same
#    shard has its own bucket; reuse => true of an existing link takes
#    nothing, even past the quota; calls the shards refuse (a bad URL, a
#    blocked host, an empty tag) take nothing; no owner, no quota.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

my $t_start = time;

# the shards' scan guard: 5 misses a minute (a miss comes back every 12 s,
# far more than the test takes between the misses it counts)
my $scan_limit = 5;
my @shard_conf = ("shorturl.flush_interval = '200ms'", "shorturl.scan_limit = $scan_limit",
	"shorturl.scan_cooldown = '10min'");

# ---------------------------------------------------------------------
# 1. A 0.8 cluster, updated
# ---------------------------------------------------------------------
my %shard = map { $_ => ShortURL::Test::shard_at($_, '0.8', @shard_conf) } qw(alpha bravo);
my $coord = ShortURL::Test::coordinator_at('coord', '0.8');

sub co { return $coord->safe_psql('postgres', $_[0]); }
sub co_error { return ShortURL::Test::sql_error($coord, 'postgres', $_[0]); }
sub on { return $shard{ $_[0] }->safe_psql('postgres', $_[1]); }

# the grants on a function besides its owner's: grantor>grantee, * for a grant option
sub grants_on
{
	my ($f) = @_;
	return co(qq{SELECT string_agg(a.grantor::regrole || '>' || a.grantee::regrole || CASE WHEN a.is_grantable THEN '*' ELSE '' END,
		' ' ORDER BY a.grantee::regrole::text, a.grantor::regrole::text) FROM pg_proc p, aclexplode(p.proacl) a
		WHERE p.oid = '$f'::regprocedure AND a.grantee <> p.proowner});
}

ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_} ] } sort keys %shard);
co('SET client_min_messages = warning; CALL shorturl.rebalance()');
co(q{CREATE TABLE links AS SELECT g, shorturl.shorten('https://example.com/l/' || g) AS code
	FROM generate_series(1, 60) g});
co(q{CREATE ROLE app_admin; CREATE ROLE app});
my $old_resolve = 'shorturl.resolve(text, text, text, text, text, text)';
my $old_status = 'shorturl.link_status(text, text)';
for my $f ($old_resolve, $old_status)
{
	co(qq{GRANT EXECUTE ON FUNCTION $f TO app_admin WITH GRANT OPTION});
	co(qq{GRANT EXECUTE ON FUNCTION $f TO app});
	co(qq{SET ROLE app_admin; GRANT EXECUTE ON FUNCTION $f TO app});
}
my $su = co('SELECT current_user');
my $grants = "app_admin>app $su>app $su>app_admin*";
is(grants_on($old_resolve) . ' / ' . grants_on($old_status), "$grants / $grants",
	'0.8: resolve() and link_status() are granted to app_admin with grant option, and to app by the owner and by app_admin');

like(co_error(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.9'}),
	qr/^55000: shard "alpha" runs pg_shorturl 0\.8, and this update needs 0\.9/,
	'the coordinator\'s update refuses while the shards run 0.8 (55000)');
on($_, q{ALTER EXTENSION pg_shorturl UPDATE TO '0.9'}) for sort keys %shard;
is(co(q{SELECT count(*) FROM links WHERE shorturl.resolve(code, NULL) = 'https://example.com/l/' || g
	AND shorturl.link_status(code, NULL) = 'active'}), 60,
	'shards at 0.9, coordinator at 0.8: every link resolves and is active');

co(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.9'});
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}), '0.9', 'the coordinator is at 0.9');
my $resolve = 'shorturl.resolve(text, text, text, text, text, text, text)';
my $status = 'shorturl.link_status(text, text, text)';
is(co(qq{SELECT to_regprocedure('$old_resolve') IS NULL AND to_regprocedure('$old_status') IS NULL}), 't',
	'resolve() without a client and link_status(code, domain) are gone');
is(grants_on($resolve) . ' / ' . grants_on($status), "$grants / $grants",
	'the new resolve() and link_status() have the same grants, grantors and grant options');
is(co(qq{SELECT count(*) FROM pg_init_privs i, aclexplode(i.initprivs) a
	WHERE i.objoid IN ('$resolve'::regprocedure, '$status'::regprocedure)
	  AND a.grantee IN ('app'::regrole, 'app_admin'::regrole)}), 0,
	'... recorded as the DBA\'s, not the extension\'s');
my ($dump) = run_command([ $coord->installed_command('pg_dump'), '-s', '-d', $coord->connstr('postgres') ]);
is(scalar(grep { /^GRANT ALL ON FUNCTION shorturl\.resolve\(code text, domain text, referrer text.*client text\)/ } split /\n/, $dump)
	. ' ' . scalar(grep { /^GRANT ALL ON FUNCTION shorturl\.link_status\(code text, domain text, client text\)/ } split /\n/, $dump),
	'3 3', 'pg_dump keeps the three grants of each');
is(co(q{SELECT string_agg(c.relname || '=' || (d.objid IS NOT NULL), ' ' ORDER BY c.relname) FROM pg_class c
	LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
	WHERE c.relnamespace = 'shorturl_remote'::regnamespace AND c.relname LIKE '%blocked_hosts'}),
	'alpha_blocked_hosts=false bravo_blocked_hosts=false',
	'each shard has its blocklist foreign table, not a member of the extension');

co('CREATE DATABASE fresh');
$coord->safe_psql('fresh', q{CREATE EXTENSION pg_shorturl_coordinator VERSION '0.9' CASCADE});
my $objects = q{SELECT string_agg(pg_describe_object(classid, objid, 0), E'\n' ORDER BY 1)
	FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl_coordinator')};
is(co($objects), $coord->safe_psql('fresh', $objects), 'an updated coordinator has the objects of a fresh one');
is(co(q{SELECT count(*) FROM links WHERE shorturl.resolve(code, NULL) = 'https://example.com/l/' || g}), 60,
	'after the update every link resolves to its URL');

# ---------------------------------------------------------------------
# 2. The scan guard, per shard
# ---------------------------------------------------------------------
# codes that name no link, $n of them routed to a shard (a key of the
# default domain is its code), and a link of each shard
sub unknown_codes
{
	my ($prefix, $shard, $n) = @_;
	return @{ ShortURL::Test::rows($coord, 'postgres', qq{SELECT '$prefix-' || g FROM generate_series(1, 10000) g
		WHERE shorturl.route('$prefix-' || g) = '$shard' ORDER BY g LIMIT $n}) };
}
my %real = map { $_ => co(qq{SELECT code FROM links WHERE shorturl.route(code) = '$_' ORDER BY g LIMIT 1}) } sort keys %shard;
my %url = map { $_ => co(qq{SELECT 'https://example.com/l/' || g FROM links WHERE code = '$real{$_}'}) } sort keys %shard;

# what a client gets for each shard's link: its URL (or NULL) and status
sub answers
{
	my ($client) = @_;
	my $c = defined $client ? "'$client'" : 'NULL';
	return join ' ', map { co(qq{SELECT coalesce(shorturl.resolve('$real{$_}', NULL, client => $c), 'NULL') || '|'
		|| shorturl.link_status('$real{$_}', NULL, $c)}) } sort keys %shard;
}
my $served = join ' ', map { "$url{$_}|active" } sort keys %shard;
# how many unknown codes a client looked up: it gets NULL for each
sub miss
{
	my ($client, @codes) = @_;
	return co('SELECT count(shorturl.resolve(c, NULL, client => ' . "'$client'" . ')) FROM unnest(ARRAY['
		  . join(',', map { "'$_'" } @codes) . ']) c');
}
sub blocked_counts { return join ' ', map { on($_, 'SELECT scan_clients_blocked FROM shorturl.stats') } sort keys %shard; }

my @on_alpha = unknown_codes('nope', 'alpha', $scan_limit + 1);
my @on_bravo = unknown_codes('nope', 'bravo', $scan_limit + 1);
is(miss('198.51.100.1', @on_alpha[0 .. $scan_limit - 1], @on_bravo[0 .. $scan_limit - 1]), 0,
	"a scanner looks up $scan_limit unknown codes of each shard: NULL for each");
is(answers('198.51.100.1'), $served, '... and is blocked nowhere: with two shards, twice the limit of one');
is(blocked_counts(), '0 0', '... no shard has blocked a client');
miss('198.51.100.1', $on_alpha[$scan_limit]);
is(answers('198.51.100.1'), "NULL|unknown $url{bravo}|active",
	'one more on alpha: alpha answers it NULL and unknown for its real link, bravo still serves it');
is(blocked_counts(), '1 0', '... alpha counted one client blocked, bravo none');
is(answers('198.51.100.2') . ' / ' . answers(undef), "$served / $served",
	'another client, and a call without a client, are served by both');
miss('198.51.100.1', $on_bravo[$scan_limit]);
is(answers('198.51.100.1'), 'NULL|unknown NULL|unknown', 'one more on bravo: blocked on both shards now');
is(on('alpha', 'SELECT scan_lookups_blocked > 0 FROM shorturl.stats'), 't', 'alpha counted the lookups it refused');

# link_status() with a client counts misses too
is(co(q{SELECT count(*) FILTER (WHERE shorturl.link_status(c, NULL, '198.51.100.3') = 'unknown') FROM unnest(ARRAY['}
	. join("','", unknown_codes('probe', 'bravo', $scan_limit + 1)) . q{']) c}), $scan_limit + 1,
	'a prober asks link_status() for 6 unknown codes of bravo');
is(answers('198.51.100.3'), "$url{alpha}|active NULL|unknown", '... and is blocked on bravo alone');

# the application role, granted resolve() before the update, passes a client
is(co(qq{SET ROLE app; SELECT shorturl.resolve('$real{alpha}', NULL, client => '198.51.100.9')
	|| ' ' || shorturl.link_status('$real{bravo}', NULL, '198.51.100.9')}), "$url{alpha} active",
	'the application role resolves and asks for a status with a client');

# ---------------------------------------------------------------------
# 3. A client's misses during a rebalance
# ---------------------------------------------------------------------
my $charlie = ShortURL::Test::shard('charlie', @shard_conf);
$shard{charlie} = $charlie;
ShortURL::Test::add_shards($coord, 'postgres', [ 'charlie', $charlie, 2 ]);
is(co('SELECT pending FROM shorturl.rebalance_state'), 't', 'charlie added: a rebalance is due');
co(q{CREATE TABLE unmoved AS SELECT g, code FROM links WHERE shorturl.route(code) = 'charlie'});
my $n_unmoved = co('SELECT count(*) FROM unmoved');
cmp_ok($n_unmoved, '>', 2 * $scan_limit, "$n_unmoved links are to move to charlie, still on alpha and bravo");
is(co(q{SELECT count(*) FROM unmoved WHERE shorturl.resolve(code, NULL, client => '203.0.113.1') = 'https://example.com/l/' || g
	AND shorturl.link_status(code, NULL, '203.0.113.1') = 'active'}), $n_unmoved,
	'a client resolves each of them, and asks for each status, through the coordinator');
is(blocked_counts(), '1 2 0', '... and no shard counted them as its misses: charlie blocked no one');
my @on_charlie = unknown_codes('gone', 'charlie', $scan_limit + 1);
miss('203.0.113.2', @on_charlie[0 .. $scan_limit - 1]);
is(blocked_counts(), '1 2 0', "a scanner looks up $scan_limit unknown codes of charlie: not blocked yet (one miss each)");
miss('203.0.113.2', $on_charlie[$scan_limit]);
is(blocked_counts(), '1 2 1', '... the 6th blocks it on charlie');
my $mover = co('SELECT code FROM unmoved ORDER BY g LIMIT 1');
my $mover_url = co("SELECT 'https://example.com/l/' || g FROM unmoved WHERE code = '$mover'");
is(co(qq{SELECT shorturl.resolve('$mover', NULL, client => '203.0.113.2')}), $mover_url,
	'a link not moved yet is served to it by the shard that still has it (the guard is each shard\'s)');
co('SET client_min_messages = warning; CALL shorturl.rebalance()');
is(co('SELECT pending FROM shorturl.rebalance_state') . ' ' . $charlie->safe_psql('postgres', "SELECT count(*) FROM shorturl.links WHERE code = '$mover'"),
	'f 1', "rebalanced: $mover is on charlie");
is(co(qq{SELECT coalesce(shorturl.resolve('$mover', NULL, client => '203.0.113.2'), 'NULL') || ' '
	|| shorturl.resolve('$mover', NULL, client => '203.0.113.1')}), "NULL $mover_url",
	'there the scanner is blocked, and the client that resolved it during the rebalance is not');

# ---------------------------------------------------------------------
# 4. Blocked hosts
# ---------------------------------------------------------------------
co(q{CREATE TABLE evil AS SELECT g, shorturl.shorten(CASE WHEN g % 2 = 0 THEN 'https://evil.example/' ELSE 'https://WWW.Evil.Example/' END || g) AS code
	FROM generate_series(1, 40) g});
is(co(q{SELECT count(DISTINCT shorturl.route(code)) FROM evil}), 3, 'links to evil.example and www.evil.example are on all three shards');
# a session that has resolved them keeps its connections to the shards
my $s = ShortURL::Test::session($coord, 'postgres');
my @before = ShortURL::Test::ask($s, q{SELECT count(shorturl.resolve(code, NULL)) FROM evil});
is("@before[0, 1]", '40 ', 'a session resolves all 40');

is(co(q{SELECT shorturl.block_host('Evil.EXAMPLE.', 'phishing')}), 3, 'block_host() changes the three shards');
is(join(' ', map { on($_, q{SELECT string_agg(pattern || ':' || reason, ',') FROM shorturl.blocked_hosts}) } sort keys %shard),
	'evil.example:phishing evil.example:phishing evil.example:phishing', '... each has the pattern, normalized, and its reason');
my %times = map { on($_, q{SELECT created_at FROM shorturl.blocked_hosts}) => 1 } sort keys %shard;
is(scalar keys %times, 1, '... and the same time, the transaction\'s');
my @after = ShortURL::Test::ask($s, q{SELECT count(shorturl.resolve(code, NULL)) || ' '
	|| count(*) FILTER (WHERE shorturl.link_status(code, NULL) = 'blocked') FROM evil});
is("@after[0, 1]", '0 40 ', 'the session\'s next statement: none resolves, all 40 are blocked');
ShortURL::Test::end_session($s);
is(co(q{SELECT string_agg(DISTINCT s.status, ',') FROM evil e, shorturl.get_link(e.code) s}), 'blocked', 'get_link() says blocked too');
is(co(q{SELECT count(*) FROM links WHERE shorturl.resolve(code, NULL) IS NOT NULL}), 60, 'links to other hosts resolve');

# what the shards refuse now, through the coordinator
like(co_error(q{SELECT shorturl.shorten('https://evil.example/new')}),
	qr/^22023: links to host "evil\.example" are blocked/, 'shorten() refuses the host (22023)');
like(co_error(q{SELECT shorturl.shorten('https://login.EVIL.example/x', alias => 'evil-alias')}),
	qr/^22023: links to host "login\.evil\.example" are blocked/, '... a subdomain, with an alias too');
like(co_error(qq{SELECT * FROM shorturl.update_link('$real{alpha}', '{"url": "https://evil.example/moved"}')}),
	qr/^22023: links to host "evil\.example" are blocked/, 'update_link() refuses it');
is(co(q{SELECT shorturl.resolve('evil-alias', NULL) IS NULL}), 't', '... and made nothing');
co(q{INSERT INTO shorturl.domains (domain) VALUES ('go.example')});
like(co_error(q{SELECT shorturl.shorten('https://go.example/x')}),
	qr/^22023: a link may not point at the short domain "go\.example"/, 'a short domain of the coordinator is refused as a target');
like(co_error(q{SELECT shorturl.shorten('https://evil.example/2', reuse => true)}),
	qr/^22023: links to host "evil\.example" are blocked/, 'shorten(reuse => true) of a blocked URL that has a link refuses it');

# blocking again, reasons, and the union
is(co(q{SELECT shorturl.block_host('evil.example', 'phishing')}), 0, 'the same block again changes nothing');
is(co(q{SELECT shorturl.block_host('evil.example', 'malware')}), 3, 'a new reason changes every shard');
on('bravo', q{INSERT INTO shorturl.blocked_hosts (pattern, reason) VALUES ('only-bravo.example', 'added on bravo')});
is(co(q{SELECT string_agg(pattern || ':' || coalesce(reason, '-') || ':' || array_to_string(shards, ','), ' ' ORDER BY pattern)
	FROM shorturl.blocked_hosts()}),
	'evil.example:malware:alpha,bravo,charlie only-bravo.example:added on bravo:bravo',
	'blocked_hosts() lists every shard\'s patterns, with the shards that have each');
is(co(q{SELECT shorturl.block_host('192.0.2.1')}), 3, 'an IP address, without a reason');

# bad patterns and read-only transactions change nothing
like(co_error(q{SELECT shorturl.block_host('https://bad.example/path')}), qr/^22023: invalid host pattern/,
	'a URL is no pattern (22023)');
like(co_error(q{SELECT shorturl.block_host(NULL)}), qr/^22004: /, 'a NULL pattern is refused (22004)');
like(co_error(q{BEGIN READ ONLY; SELECT shorturl.block_host('ro.example')}),
	qr/^25006: cannot execute block_host\(\) in a read-only transaction/, 'read-only: block_host() is refused (25006)');
like(co_error(q{BEGIN READ ONLY; SELECT shorturl.unblock_host('evil.example')}),
	qr/^25006: /, '... and unblock_host()');
is(co(q{BEGIN; SELECT shorturl.block_host('rolled-back.example'); ROLLBACK;
	SELECT count(*) FROM shorturl.blocked_hosts() WHERE pattern = 'rolled-back.example'}), "3\n0",
	'a block in a transaction rolled back is on no shard');

# a shard that cannot be reached: the call fails, and no shard has the change
$shard{bravo}->stop;
like(co_error(q{SELECT shorturl.block_host('down.example')}), qr/^08006: shard "bravo" is unavailable/,
	'with bravo down, block_host() fails (08006), naming bravo');
$shard{bravo}->start;
ShortURL::Test::wait_served($shard{bravo}, 'postgres') or die 'no worker serves bravo';
is(join(' ', map { on($_, q{SELECT count(*) FROM shorturl.blocked_hosts WHERE pattern = 'down.example'}) } sort keys %shard),
	'0 0 0', '... and no shard has the pattern');

# a shard added later gets the union of the others' lists
$shard{alpha}->safe_psql('postgres', 'CREATE DATABASE delta');
$shard{alpha}->safe_psql('delta', 'CREATE EXTENSION pg_shorturl');
co(q{SELECT shorturl.add_shard('delta', '} . ShortURL::Test::conninfo($shard{alpha}, 'delta') . q{')});
is($shard{alpha}->safe_psql('delta', q{SELECT string_agg(pattern || ':' || coalesce(reason, '-'), ' ' ORDER BY pattern) FROM shorturl.blocked_hosts}),
	'192.0.2.1:- evil.example:malware only-bravo.example:added on bravo',
	'add_shard() gave the new shard every pattern of the others');
my $delta_alias = co(q{SELECT 'to-delta-' || g FROM generate_series(1, 1000) g
	WHERE shorturl.route('to-delta-' || g) = 'delta' ORDER BY g LIMIT 1});
my (undef, undef, $delta_err) = $coord->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT shorturl.shorten('https://evil.example/on-delta', alias => '$delta_alias')");
like($delta_err, qr/ERROR:  22023: links to host "evil\.example" are blocked\nDETAIL:  [^\n]*\(shard "delta"\)/,
	'so delta refuses a link to the host (22023, its own error)');
co('SET client_min_messages = warning; CALL shorturl.rebalance()');
my $on_delta = co(q{SELECT count(*) FROM evil WHERE shorturl.route(code) = 'delta'});
cmp_ok($on_delta, '>', 0, "rebalanced: $on_delta links to the host moved to delta");
is(co(q{SELECT count(*) FROM evil WHERE shorturl.resolve(code, NULL) IS NULL AND shorturl.link_status(code, NULL) = 'blocked'}), 40,
	'... and all 40 are blocked where they are now');

# a shard at 0.8 is refused
$shard{bravo}->safe_psql('postgres', 'CREATE DATABASE old');
$shard{bravo}->safe_psql('old', q{CREATE EXTENSION pg_shorturl VERSION '0.8'});
like(co_error(q{SELECT shorturl.add_shard('old', '} . ShortURL::Test::conninfo($shard{bravo}, 'old') . q{')}),
	qr/^55000: shard "old" runs pg_shorturl 0\.8, and this coordinator needs 0\.9/, 'add_shard() refuses a shard at 0.8 (55000)');
is(co(q{SELECT count(*) FROM shorturl.shards WHERE name = 'old'}) . ' '
	. co(q{SELECT count(*) FROM pg_foreign_server WHERE srvname = 'shorturl_shard_old'}), '0 0', '... and made nothing');

# unblocking
is(co(q{SELECT shorturl.unblock_host('EVIL.example')}), 4, 'unblock_host() removes the pattern from the four shards');
is(co(q{SELECT count(*) FROM evil WHERE shorturl.resolve(code, NULL) IS NOT NULL}), 40, '... and every link resolves again');
is(co(q{SELECT shorturl.unblock_host('evil.example') || ' ' || shorturl.unblock_host('only-bravo.example')}), '0 2',
	'a pattern no shard has: 0; one bravo had, and delta got from it: 2');
like(co_error(q{SELECT shorturl.unblock_host('not a host')}), qr/^22023: /, 'a bad pattern is 22023');

# privileges: the owner's until granted; granted, they use the owner's mappings
is(co(q{SELECT string_agg(p.proname || '=' || has_function_privilege('app', p.oid, 'EXECUTE'), ' ' ORDER BY p.proname)
	FROM pg_proc p WHERE p.pronamespace = 'shorturl'::regnamespace
	AND p.proname IN ('block_host', 'unblock_host', 'blocked_hosts', '_host_pattern')}),
	'_host_pattern=false block_host=false blocked_hosts=false unblock_host=false',
	'the blocklist functions are the owner\'s until granted');
like(co_error(q{SET ROLE app; SELECT shorturl.block_host('app.example')}), qr/^42501: /, 'app may not call block_host() (42501)');
co(q{CREATE ROLE abuse_desk; GRANT EXECUTE ON FUNCTION shorturl.block_host(text, text), shorturl.blocked_hosts() TO abuse_desk});
is(co(q{SET ROLE abuse_desk; SELECT shorturl.block_host('spam.example', 'reported');
	SELECT array_to_string(shards, ',') FROM shorturl.blocked_hosts() WHERE pattern = 'spam.example'}),
	"4\nalpha,bravo,charlie,delta", 'a role granted block_host() blocks a host on every shard');

# ---------------------------------------------------------------------
# 5. Quotas
# ---------------------------------------------------------------------
# the shards' quota (delta, a database of alpha's server, has alpha's)
ShortURL::Test::reconfigure($shard{$_}, shorten_quota => '2/hour') for qw(alpha bravo charlie);
my %db = ((map { $_ => [ $shard{$_}, 'postgres' ] } qw(alpha bravo charlie)), delta => [ $shard{alpha}, 'delta' ]);
# an owner's links on every shard, read there: "shard:code" sorted
sub owned
{
	my ($owner) = @_;
	return join ' ', sort map {
		my $sh = $_;
		map { "$sh:$_" } @{ ShortURL::Test::rows($db{$sh}[0], $db{$sh}[1],
			qq{SELECT code FROM shorturl.links WHERE owner = '$owner' ORDER BY code}) }
	} sort keys %db;
}
# the error of a call through the coordinator: "SQLSTATE: message | detail"
sub co_error_detail
{
	my ($rc, $out, $err) = $coord->psql('postgres', "\\set VERBOSITY verbose\n$_[0]");
	return $err =~ /ERROR:\s+([0-9A-Z]{5}): ([^\n]*)\n(?:DETAIL:\s+([^\n]*))?/ ? "$1: $2 | " . ($3 // '') : '';
}
# an alias of $prefix routed to a shard not in @not
sub alias_away
{
	my ($prefix, @not) = @_;
	return co(qq{SELECT '$prefix-' || g FROM generate_series(1, 1000) g
		WHERE shorturl.route('$prefix-' || g) <> ALL (ARRAY['} . join("','", @not) . q{']) ORDER BY g LIMIT 1});
}

# two owners whose keys route to the same shard
my $ann = 'tenant-1';
my $qshard = co(qq{SELECT shorturl.route('owner:$ann')});
my $bob = co(qq{SELECT 'tenant-' || g FROM generate_series(2, 1000) g
	WHERE shorturl.route('owner:tenant-' || g) = '$qshard' ORDER BY g LIMIT 1});
note "owners $ann and $bob: their quota is on $qshard";

my $a1 = co(qq{SELECT shorturl.shorten('https://quota.example/a1', owner => '$ann')});
my $a1_shard = co(qq{SELECT shorturl.route('$a1')});
my $a2 = co(q{SELECT shorturl.shorten('https://quota.example/a2', owner => '} . $ann . q{', alias => '}
	. alias_away('ann', $a1_shard) . q{')});
is(owned($ann), join(' ', sort "$a1_shard:$a1", co(qq{SELECT shorturl.route('$a2')}) . ":$a2"),
	"with shorturl.shorten_quota = '2/hour' on the shards, $ann makes 2 links, on two shards");
my $last_id = co('SELECT shorturl.last_link_id()');
like(co_error_detail(qq{SELECT shorturl.shorten('https://quota.example/a3', owner => '$ann')}),
	qr/^53400: owner "$ann" has made its 2 links per hour \| retry_after: \d+ minutes\. The quota is shorturl\.shorten_quota = '2\/hour'\. \(shard "$qshard"\)$/,
	'the 3rd is refused: 53400, retry_after in the DETAIL, naming the shard of the owner\'s key');
my $a3_alias = alias_away('ann3', $qshard);
like(co_error(qq{SELECT shorturl.shorten('https://quota.example/a3', owner => '$ann', alias => '$a3_alias')}),
	qr/^53400: owner "$ann" has made its 2 links per hour/, '... with an alias on another shard too');
is(owned($ann) . ' / ' . co('SELECT shorturl.last_link_id()') . ' / ' . co(qq{SELECT shorturl.link_status('$a3_alias', NULL)}),
	join(' ', sort "$a1_shard:$a1", co(qq{SELECT shorturl.route('$a2')}) . ":$a2") . " / $last_id / unknown",
	'... and they made nothing: no link, no id drawn, the alias free');
like(co_error(qq{SELECT shorturl.shorten('https://quota.example/a9', owner => '$ann', reuse => true)}),
	qr/^53400: /, 'reuse => true of a URL that has no link of the owner\'s: a new link, refused');
is(co(qq{SELECT shorturl.shorten('https://quota.example/a1', owner => '$ann', reuse => true)}), $a1,
	'reuse => true of an existing link returns it, quota or not');

# the bucket is on the shard of the owner's key, and the quota is that shard's
my ($qnode, $qdb) = @{ $db{$qshard} };
like(ShortURL::Test::sql_error($qnode, $qdb, qq{SELECT shorturl._check_quota('$ann')}), qr/^53400: /,
	"$qshard has $ann\'s bucket, empty");
my $other = (grep { $_ ne $qshard && $db{$_}[0] != $qnode } sort keys %db)[0];
is(ShortURL::Test::sql_error($db{$other}[0], $db{$other}[1], qq{SELECT shorturl._check_quota('$ann')}), '',
	"$other has none of $ann\'s links counted");

# another owner, on the same shard: its own bucket; reusing takes nothing
my $b1 = co(qq{SELECT shorturl.shorten('https://quota.example/b1', owner => '$bob')});
is(co(join '; ', map { qq{SELECT shorturl.shorten('https://quota.example/b1', owner => '$bob', reuse => true)} } 1 .. 3),
	join("\n", ($b1) x 3), "$bob makes a link, and reuses it three times");
my $b2 = co(qq{SELECT shorturl.shorten('https://quota.example/b2', owner => '$bob')});
like(co_error(qq{SELECT shorturl.shorten('https://quota.example/b3', owner => '$bob')}),
	qr/^53400: owner "$bob" has made its 2 links per hour/, '... makes a second new one, and the third is refused');
is(scalar(split / /, owned($bob)), 2, "... $bob has 2 links: reuse took nothing, and $ann\'s quota is not $bob\'s");

# calls the shards refuse take nothing
my $cy = 'tenant-cy';
like(co_error(qq{SELECT shorturl.shorten('not a url', owner => '$cy')}), qr/^22023: /, 'a bad URL with an owner: 22023');
like(co_error(qq{SELECT shorturl.shorten('https://spam.example/x', owner => '$cy')}),
	qr/^22023: links to host "spam\.example" are blocked/, 'a blocked host with an owner: 22023');
like(co_error(qq{SELECT shorturl.shorten('https://quota.example/c', owner => '$cy', tags => ARRAY['']::text[])}),
	qr/^22023: /, 'an empty tag: 22023');
co(qq{SELECT shorturl.shorten('https://quota.example/c' || g, owner => '$cy') FROM generate_series(1, 2) g});
like(co_error(qq{SELECT shorturl.shorten('https://quota.example/c3', owner => '$cy')}), qr/^53400: /,
	'... and took nothing from the quota: 2 links, then 53400');

# no owner, no quota
is(co(q{SELECT count(shorturl.shorten('https://quota.example/anon/' || g)) FROM generate_series(1, 5) g}), 5,
	'without an owner, no quota: 5 links');

note sprintf 'ran in %.1f s', time - $t_start;
done_testing();
