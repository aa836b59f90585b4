# 020_standby_cache.pl: the URL cache of hot standbys (src/urlcache.c,
# rule 4) in the cases 016 leaves out.  A primary, a standby streaming from
# it and a cascaded standby streaming from the standby all have a cache.
#
# - (a) two-phase commit: a prepared UPDATE of cached links evicts them on
#   the standby at its PREPARE; while it is only prepared the standby (and
#   the primary) answer the old URL and fill nothing, not even a fill that
#   read the link before the PREPARE was replayed; once COMMIT PREPARED is
#   replayed, the new URL (no entry of the old one was left), then cached;
#   a ROLLBACK PREPARED leaves the old URL, which is cached again;
# - (b) one UPDATE of 12,000 links (past the 10,000 keys a transaction logs
#   one by one): its replay clears the standby's and the cascade's entries
#   once, and each of the 300 links they had cached, spread over the table,
#   resolves to its new URL;
# - (c) a TRUNCATE of shorturl.links that inserts the same codes again with
#   other URLs, in one transaction: its replay clears the standbys' caches,
#   and they serve the new URLs, and no URL for a code not inserted again;
# - (d) the cascaded standby fills and hits its own cache, and a change on
#   the primary is seen there as soon as it is replayed;
# - (e) restarts: a standby restarted cleanly starts with an empty cache,
#   and uses it again as soon as it has replayed a record of ours since its
#   start (the HELLO that follows the checkpoint it restarts from is
#   enough); a standby and a cascade restarted from a checkpoint that no
#   HELLO follows yet (the primary's launcher, paused, has not logged it)
#   do not use their caches at all (no hit, miss or fill) until the
#   launcher runs again and logs it: the cascade hears it through the
#   standby, and both fill and hit again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

# standbys ship no clicks: the primary stays quiet but for the test's own
# changes (the standbys inherit the settings with the base backups)
my @conf = ("shorturl.url_cache_size = '8MB'", 'max_prepared_transactions = 5',
	'shorturl.ship_interval = 0');

my $primary = ShortURL::Test::node('sc_primary', { init => { allows_streaming => 1 } }, @conf);
$primary->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
$primary->safe_psql('postgres', q{
	SELECT count(shorturl.shorten('https://example.com/' || i, alias => 'c' || i))
	FROM generate_series(1, 20) i;
	SELECT count(shorturl.shorten('https://example.com/bulk/' || i, alias => 'b' || i))
	FROM generate_series(1, 12000) i});
# a standby fills only from a row version whose insert it knows committed
# by its hint bit, which recovery sets only once a restartpoint has passed
# the commit: frozen rows have it from the primary (see 016)
$primary->safe_psql('postgres', 'VACUUM (FREEZE) shorturl.links');
$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('sc_standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
$standby->backup('b2');
my $cascade = PostgreSQL::Test::Cluster->new('sc_cascade');
$cascade->init_from_backup($standby, 'b2', has_streaming => 1);
$cascade->start;

my @standbys = ($standby, $cascade);
my $moved;

# replayed waits until both standbys have replayed what the primary wrote
sub replayed
{
	my $lsn = $primary->lsn('write');
	$primary->wait_for_catchup($standby, 'replay', $lsn);
	$standby->wait_for_catchup($cascade, 'replay', $lsn);
}

# freeze freezes the links on the primary (see above) and waits for replay
sub freeze
{
	$primary->safe_psql('postgres', 'VACUUM (FREEZE) shorturl.links');
	replayed();
}

# figures returns the cache's figures from shorturl.stats as a hash
my @cols = qw(url_cache_hits url_cache_misses url_cache_fills url_cache_entries url_cache_invalidations);

sub figures
{
	my ($n) = @_;
	my @v = split /\|/, ShortURL::Test::stats($n, 'postgres', join ', ', map { "coalesce($_, -1)" } @cols);
	my %f;
	@f{@cols} = @v;
	return \%f;
}

# since returns how each figure moved from $before to now, as
# "hits H misses M fills F" (entries: their number now)
sub since
{
	my ($n, $before) = @_;
	my $now = figures($n);
	return join ' ',
	  (map { ($_ =~ s/^url_cache_//r) . ' ' . ($now->{$_} - $before->{$_}) } @cols[0 .. 2]),
	  'entries', $now->{url_cache_entries};
}

# resolve resolves codes one after the other in one statement, and returns
# their URLs (NULL for none), separated by spaces
sub resolve
{
	my ($n, @codes) = @_;
	my $list = join ',', map { "'$_'" } @codes;
	return $n->safe_psql('postgres', qq{
		SELECT string_agg(coalesce(shorturl.resolve(c), 'NULL'), ' ' ORDER BY o)
		FROM unnest(ARRAY[$list]) WITH ORDINALITY u(c, o)});
}

# resolve_all returns how many of the codes c1 .. cN resolve to the URL the
# table holds for them (and resolves no other code: OFFSET 0 keeps the
# planner from calling resolve() before the code is matched)
sub resolve_all
{
	my ($n) = @_;
	return $n->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT code, url FROM shorturl.links WHERE code ~ '^c[0-9]+$' OFFSET 0) l
		WHERE shorturl.resolve(l.code) = l.url});
}

# trusted waits until a standby uses its cache: resolving $code (not
# cached) fills an entry; returns whether it did within 20 s
sub trusted
{
	my ($n, $code) = @_;
	my $fills = figures($n)->{url_cache_fills};
	return ShortURL::Test::wait_until($n, 'postgres', qq{
		SELECT (SELECT url_cache_fills FROM shorturl.stats) > $fills
		FROM (SELECT shorturl.resolve('$code') OFFSET 0) r});
}

replayed();
ok(trusted($_, 'c20'), '(setup) ' . $_->name . ' hears that its primary logs for it, and fills its cache')
  for @standbys;

# ---------------------------------------------------------------------
# (a) two-phase commit
# ---------------------------------------------------------------------
my $before = figures($standby);
is(resolve($standby, qw(c1 c2 c1 c2)),
	'https://example.com/1 https://example.com/2 https://example.com/1 https://example.com/2',
	'(a) the standby resolves c1 and c2');
is(since($standby, $before), 'hits 2 misses 2 fills 2 entries 3', '(a) and caches them');
is(resolve($primary, qw(c1 c1)), 'https://example.com/1 https://example.com/1', '(a) the primary caches c1 too');

# a fill on the standby that read c5 before the PREPARE is replayed waits
# (holder holds the lock it waits on) until after it
$before = figures($standby);
my $holder = ShortURL::Test::session($standby, 'postgres');
ShortURL::Test::ask($holder, 'SELECT pg_advisory_lock(4242)');
my $filler = ShortURL::Test::session($standby, 'postgres');
ShortURL::Test::ask($filler, 'SET shorturl.url_cache_fill_wait = 4242');
ShortURL::Test::send_sql($filler, "SELECT shorturl.resolve('c5')");
ok(ShortURL::Test::wait_until($standby, 'postgres',
		"SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"),
	'(a) a fill on the standby read c5 and waits');
$primary->safe_psql('postgres', q{BEGIN;
	UPDATE shorturl.links SET url = url || '/committed' WHERE code IN ('c1', 'c5');
	PREPARE TRANSACTION 'p1'});
replayed();
ShortURL::Test::ask($holder, 'SELECT pg_advisory_unlock(4242)');
my ($read, $err) = ShortURL::Test::answer($filler);
is("$read$err", 'https://example.com/5', '(a) the waiting fill\'s statement answers with the URL it read');
ShortURL::Test::end_session($_) for ($holder, $filler);
# the old versions are still the visible ones, but their xmax is set: they
# are not the newest, and are not filled (rule 2), or c1 would keep its old
# URL past the COMMIT PREPARED, which logs nothing of ours
is(resolve($standby, qw(c1 c5 c1 c5)),
	'https://example.com/1 https://example.com/5 https://example.com/1 https://example.com/5',
	'(a) prepared: the standby answers c1\'s and c5\'s old URLs');
is(since($standby, $before), 'hits 0 misses 5 fills 0 entries 2',
	'(a) from the table: c1 was evicted at the PREPARE\'s replay, and nothing was filled, not even the waiting fill');
is(resolve($primary, qw(c1 c1)), 'https://example.com/1 https://example.com/1',
	'(a) prepared: the primary answers c1\'s old URL');

$primary->safe_psql('postgres', "COMMIT PREPARED 'p1'");
replayed();
# (the new versions may be filled only once their commit is known by a hint
# bit: see freeze)
$before = figures($standby);
is(resolve($standby, qw(c1 c5 c1 c5)),
	'https://example.com/1/committed https://example.com/5/committed https://example.com/1/committed https://example.com/5/committed',
	'(a) COMMIT PREPARED replayed: the standby answers the new URLs');
is(resolve($primary, qw(c1 c1)), 'https://example.com/1/committed https://example.com/1/committed',
	'(a) and so does the primary');
freeze();
is(resolve($standby, qw(c1 c5 c1 c5)),
	'https://example.com/1/committed https://example.com/5/committed https://example.com/1/committed https://example.com/5/committed',
	'(a) the new versions frozen: the standby answers the new URLs');
$moved = since($standby, $before);
like($moved, qr/^hits [2-6] misses [2-6] fills 2 entries 4$/, '(a) and caches them, once each')
  or diag $moved;

# a ROLLBACK PREPARED: c2 (cached) keeps its URL
$primary->safe_psql('postgres', q{BEGIN;
	UPDATE shorturl.links SET url = 'https://example.com/rolled-back' WHERE code = 'c2';
	PREPARE TRANSACTION 'p2'});
replayed();
$before = figures($standby);
is(resolve($standby, qw(c2 c2)), 'https://example.com/2 https://example.com/2',
	'(a) prepared: the standby answers c2\'s old URL');
is(since($standby, $before), 'hits 0 misses 2 fills 0 entries 3', '(a) from the table, filling nothing');
$primary->safe_psql('postgres', "ROLLBACK PREPARED 'p2'");
replayed();
$before = figures($standby);
is(resolve($standby, qw(c2 c2 c2)), 'https://example.com/2 https://example.com/2 https://example.com/2',
	'(a) ROLLBACK PREPARED replayed: the standby answers c2\'s URL');
$moved = since($standby, $before);
like($moved, qr/^hits [12] misses [12] fills 1 entries 4$/, '(a) and caches it again')
  or diag $moved;
is($primary->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0', '(a) no transaction is left prepared');

# ---------------------------------------------------------------------
# (b) more changed links than a transaction logs one by one
# ---------------------------------------------------------------------
# every fortieth of b1 .. b12000: some of the links updated after the
# 10,000th, which a record of keys would not have named
my $bulk = q{SELECT 'b' || i AS code FROM generate_series(40, 12000, 40) i};
my %inval;
for my $n (@standbys)
{
	$before = figures($n);
	is($n->safe_psql('postgres', qq{SELECT count(shorturl.resolve(code)) FROM ($bulk) b}), '300',
		'(b) ' . $n->name . ' resolves 300 of the 12,000 b links');
	is(figures($n)->{url_cache_fills} - $before->{url_cache_fills}, 300, '(b) and caches them');
	$inval{ $n->name } = figures($n)->{url_cache_invalidations};
}
$primary->safe_psql('postgres', q{
	UPDATE shorturl.links SET url = url || '/edited' WHERE code ~ '^b[0-9]+$'});
replayed();
for my $n (@standbys)
{
	my $f = figures($n);
	is($f->{url_cache_entries}, '0', '(b) the replayed UPDATE of 12,000 links emptied ' . $n->name . '\'s cache');
	is($f->{url_cache_invalidations} - $inval{ $n->name }, 1, '(b) with one clear of the database');
	is($n->safe_psql('postgres', qq{
		SELECT count(*) FROM (SELECT code, url FROM shorturl.links JOIN ($bulk) b USING (code) OFFSET 0) l
		WHERE l.url LIKE '%/edited' AND shorturl.resolve(l.code) = l.url}),
		'300', '(b) on ' . $n->name . ', each of the 300 links it had cached resolves to its new URL');
}

# ---------------------------------------------------------------------
# (c) TRUNCATE
# ---------------------------------------------------------------------
for my $n (@standbys)
{
	$before = figures($n);
	is(resolve_all($n), 20, '(c) on ' . $n->name . ', the 20 c links resolve to their table URLs');
	is(resolve_all($n), 20, '(c) again');
	cmp_ok(figures($n)->{url_cache_hits} - $before->{url_cache_hits}, '>=', 20, '(c) from ' . $n->name . '\'s cache');
	$inval{ $n->name } = figures($n)->{url_cache_invalidations};
}
# the same codes but c20 again, on other URLs (a TRUNCATE retires the
# aliases it removes, as a DELETE does: an administrator takes them back)
$primary->safe_psql('postgres', q{BEGIN;
	TRUNCATE shorturl.links;
	DELETE FROM shorturl.retired_codes WHERE code ~ '^c[0-9]+$';
	SELECT count(shorturl.shorten('https://example.org/t/' || i, alias => 'c' || i))
	FROM generate_series(1, 19) i;
	COMMIT});
replayed();
my $want = join ' ', (map { "https://example.org/t/$_" } 1 .. 19), 'NULL';
for my $n (@standbys)
{
	my $f = figures($n);
	is($f->{url_cache_entries} . ' ' . ($f->{url_cache_invalidations} - $inval{ $n->name }), '0 1',
		'(c) the replayed TRUNCATE cleared ' . $n->name . '\'s cache, once');
	is(resolve($n, map { "c$_" } 1 .. 20), $want,
		'(c) on ' . $n->name . ', c1 .. c19 resolve to their new URLs, c20 to none');
}

# ---------------------------------------------------------------------
# (d) the cascaded standby
# ---------------------------------------------------------------------
freeze();
# (some of the new links may have been filled already, if their commit got
# its hint bit on the cascade before the freeze)
$before = figures($cascade);
is(resolve_all($cascade), 19, '(d) on the cascade, the 19 links resolve to their table URLs');
is(resolve_all($cascade), 19, '(d) again');
$moved = since($cascade, $before);
my $fills = 19 - $before->{url_cache_entries};
like($moved, qr/^hits (?:19|[2-3]\d) misses $fills fills $fills entries 19$/,
	'(d) the cascade filled its cache once per link, and hit it')
  or diag $moved;
$inval{cascade} = figures($cascade)->{url_cache_invalidations};
$primary->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.org/cascade' WHERE code = 'c3'");
replayed();
my $f = figures($cascade);
is($f->{url_cache_entries} . ' ' . ($f->{url_cache_invalidations} - $inval{cascade}), '18 1',
	'(d) its replay evicted exactly c3\'s entry on the cascade');
is(resolve($cascade, qw(c3 c3)), 'https://example.org/cascade https://example.org/cascade',
	'(d) c3\'s new URL on the cascade at once');
is(resolve_all($cascade), 19, '(d) the 19 links resolve to their table URLs');

# ---------------------------------------------------------------------
# (e) restarts
# ---------------------------------------------------------------------
# the primary's launcher, which logs the HELLOs, is paused (SIGSTOP) in its
# nap between rounds, where it holds nothing: no HELLO is logged meanwhile
my $launcher = ShortURL::Test::launcher_pid($primary);
like($launcher, qr/^\d+$/, '(e) the primary\'s launcher runs');
my $paused = 0;
for (1 .. 100)
{
	kill 'STOP', $launcher;
	$paused = $primary->safe_psql('postgres',
		"SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $launcher") eq 't';
	last if $paused;
	kill 'CONT', $launcher;
	usleep(20_000);
}
ok($paused, '(e) the primary\'s launcher is paused in its nap');

# (c3's new version frozen: every link can be filled again)
freeze();
$standby->restart;
is(since($standby, { map { $_ => 0 } @cols }), 'hits 0 misses 0 fills 0 entries 0',
	'(e) a standby restarted cleanly starts with an empty cache');
# it restarts from the checkpoint of the primary's base backup, which the
# HELLO that made it trust its cache follows: replayed again, it is enough
replayed();
ok(trusted($standby, 'c1'), '(e) after the restart, the standby uses its cache again, with no new HELLO');
$before = figures($standby);
is(resolve_all($standby), 19, '(e) the 19 links resolve to their table URLs');
is(resolve_all($standby), 19, '(e) again');
$moved = since($standby, $before);
like($moved, qr/^hits (?:19|[2-3]\d) misses 18 fills 18 entries 19$/,
	'(e) the standby filled its cache (c1 was) and hit it')
  or diag $moved;

# a checkpoint that no HELLO follows yet
$primary->safe_psql('postgres', 'CHECKPOINT');
my $redo = $primary->safe_psql('postgres', 'SELECT redo_lsn FROM pg_control_checkpoint()');
replayed();
# each makes a restartpoint at that checkpoint as it stops, and replays from
# there when it starts: it meets no record of ours
$cascade->stop;
$standby->restart;
$cascade->start;
replayed();
for my $n (@standbys)
{
	is($n->safe_psql('postgres', 'SELECT redo_lsn FROM pg_control_checkpoint()'), $redo,
		'(e) ' . $n->name . ' restarted from the primary\'s last checkpoint');
	$before = figures($n);
	is(resolve_all($n), 19, '(e) on ' . $n->name . ', the 19 links resolve to their table URLs');
	is(resolve_all($n), 19, '(e) again');
	is(since($n, $before), 'hits 0 misses 0 fills 0 entries 0',
		'(e) without using the cache: no word from the primary since it started');
}
kill 'CONT', $launcher;
$paused = 0;
# the launcher, running again, logs a HELLO for that checkpoint; the
# cascade replays it as the standby does
for my $n (@standbys)
{
	ok(trusted($n, 'c1'), '(e) once the primary\'s launcher runs, ' . $n->name . ' uses its cache again');
	$before = figures($n);
	is(resolve_all($n), 19, '(e) on ' . $n->name . ', the 19 links resolve to their table URLs');
	is(resolve_all($n), 19, '(e) again');
	like(since($n, $before), qr/^hits (?:19|[2-9]\d) misses 18 fills 18 entries 19$/,
		'(e) ' . $n->name . ' filled its cache and hit it');
}

# a change seen at once on both, through the caches they filled again
$primary->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.org/last' WHERE code = 'c4'");
replayed();
is(resolve($_, qw(c4 c4)), 'https://example.org/last https://example.org/last',
	'(e) ' . $_->name . ' answers c4\'s new URL at once')
  for @standbys;

$cascade->stop;
$standby->stop;
$primary->stop;
done_testing();

# a test that died with the launcher paused lets it go on, to stop
END
{
	kill 'CONT', $launcher if $paused;
}
