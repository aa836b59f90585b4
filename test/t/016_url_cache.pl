# 016_url_cache.pl: the URL cache (src/urlcache.c) across what the SQL
# suites cannot do: restarts, crashes, DROP and CREATE EXTENSION, a standby
# and its promotion, and changes racing with fills under load.  Every
# server here has a cache whatever configuration the suite runs with
# (shorturl.url_cache_size is set last).
#
# - (a) the cache answers (fills, then hits), its shared memory is the size
#   stats reports, and it starts empty after a clean restart and after a
#   crash, answering right;
# - (b) DROP EXTENSION and CREATE EXTENSION, in two transactions and in
#   one, with the same codes on other URLs: the new URLs are served at once;
# - (c) changes under load: while pgbench clients resolve 20 links, a
#   session changes their URLs 1,500 times, each in its own transaction,
#   and after each commit resolves the changed link: never the old URL;
#   then every link resolves to its table URL; one UPDATE of 12,000 cached
#   links (past the 10,000 a transaction remembers one by one) is seen for
#   each of them;
# - (d) a streaming standby fills and hits its cache, and sees a change as
#   soon as it is replayed (rule 4: the changer logs the keys it changed,
#   and replay evicts them), though its primary now runs without a cache:
#   an update, a disable, a delete, an update whose old version was pruned,
#   and a transaction that clears the whole database's entries; promoted,
#   it serves what it replayed last, and a change made there is seen at
#   once;
# - (e) a primary with a cache of its own: a replayed change evicts exactly
#   its link's entry on the standby; a fill that read a link before a
#   change was replayed does not insert it (rule 3 there); restarted without the library, the
#   primary logs nothing of ours, and the standby, having replayed the
#   restart, clears its cache and stops using it, so a change made then is
#   seen; the primary, which logged nothing of ours, recovers from a
#   crash;
# - (f) a full cache (1 MB, 5,242 entries) under 20,000 links asked for
#   three times each and a hot one asked for 150 times: entries stay within
#   the slots, TinyLFU turns newcomers away (decided under the shared lock)
#   and CLOCK evicts, every answer is the table's, the hot link is a hit,
#   and a change to a cached link in a full cache is seen at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

my @conf = ("shorturl.url_cache_size = '8MB'", 'restart_after_crash = on');

my $node = ShortURL::Test::node('cache', { init => { allows_streaming => 1 } }, @conf);
$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
ok(ShortURL::Test::wait_served($node, 'postgres'), 'the worker serves postgres');

# figures returns the cache's figures from shorturl.stats as a hash
sub figures
{
	my ($n) = @_;
	my @cols = qw(url_cache_hits url_cache_fills url_cache_entries url_cache_size);
	my @v = split /\|/, ShortURL::Test::stats($n, 'postgres', join ', ', map { "coalesce($_, -1)" } @cols);
	my %f;
	@f{@cols} = @v;
	return \%f;
}

# resolve_all returns how many of the codes c1 .. cN resolve to the URL the
# table holds for them
sub resolve_all
{
	my ($n) = @_;
	return $n->safe_psql('postgres', qq{
		SELECT count(*) FROM shorturl.links l
		WHERE l.code ~ '^c[0-9]+\$' AND shorturl.resolve(l.code) = l.url});
}

# ---------------------------------------------------------------------
# (a) hits, size, restart, crash
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	SELECT count(shorturl.shorten('https://example.com/' || i, alias => 'c' || i))
	FROM generate_series(1, 1000) i});
my $before = figures($node);
is(resolve_all($node), 1000, '(a) 1,000 links resolve from the table');
is(resolve_all($node), 1000, '(a) and again');
my $after = figures($node);
is($after->{url_cache_fills} - $before->{url_cache_fills}, 1000, '(a) the first round filled 1,000 entries');
cmp_ok($after->{url_cache_hits} - $before->{url_cache_hits}, '>=', 1000, '(a) the second round hit them');
is($after->{url_cache_entries}, 1000, '(a) 1,000 entries');
is($node->safe_psql('postgres',
		"SELECT size = (SELECT url_cache_size FROM shorturl.stats) FROM pg_shmem_allocations WHERE name = 'pg_shorturl url cache'"),
	't', '(a) its shared memory is the size shorturl.stats reports');
cmp_ok($after->{url_cache_size}, '>=', 8 * 1024 * 1024, '(a) at least shorturl.url_cache_size');
cmp_ok($after->{url_cache_size}, '<', 9 * 1024 * 1024, '(a) and not much more');

$node->restart;
is(figures($node)->{url_cache_entries}, 0, '(a) a clean restart starts the cache empty');
is(resolve_all($node), 1000, '(a) after the restart, every link resolves');
is(figures($node)->{url_cache_fills}, 1000, '(a) and fills the cache again');

# a crash: a backend killed, every process reinitialized
my $offset = ShortURL::Test::log_offset($node);
my $q = ShortURL::Test::start_query($node, 'postgres', 'SELECT pg_sleep(60)');
ok(ShortURL::Test::wait_until($node, 'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'"),
	'(a) a backend sleeps');
my $sleeper = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'");
kill 'KILL', $sleeper;
$q->{h}->finish;
ok(ShortURL::Test::wait_crash_recovered($node, 'postgres', $offset), '(a) the server reinitialized after the crash');
is(figures($node)->{url_cache_entries}, 0, '(a) after the crash the cache is empty');
is(resolve_all($node), 1000, '(a) and every link resolves');

# ---------------------------------------------------------------------
# (b) DROP and CREATE EXTENSION
# ---------------------------------------------------------------------
is($node->safe_psql('postgres', "SELECT shorturl.resolve('c1'), shorturl.resolve('c1')"),
	'https://example.com/1|https://example.com/1', '(b) c1 is cached');
$node->safe_psql('postgres', 'DROP EXTENSION pg_shorturl');
$node->safe_psql('postgres', q{CREATE EXTENSION pg_shorturl;
	SELECT shorturl.shorten('https://example.org/one', alias => 'c1')});
is($node->safe_psql('postgres', "SELECT shorturl.resolve('c1'), shorturl.resolve('c1')"),
	'https://example.org/one|https://example.org/one', '(b) after DROP and CREATE EXTENSION, the new URL');
$node->safe_psql('postgres', q{BEGIN;
	DROP EXTENSION pg_shorturl;
	CREATE EXTENSION pg_shorturl;
	SELECT shorturl.shorten('https://example.net/uno', alias => 'c1');
	COMMIT});
is($node->safe_psql('postgres', "SELECT shorturl.resolve('c1'), shorturl.resolve('c1')"),
	'https://example.net/uno|https://example.net/uno', '(b) the same in one transaction');

# ---------------------------------------------------------------------
# (c) changes under load
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	DROP EXTENSION pg_shorturl;
	CREATE EXTENSION pg_shorturl;
	SELECT count(shorturl.shorten('https://example.com/' || i || '/v0', alias => 'c' || i))
	FROM generate_series(1, 20) i});
$before = figures($node);
my $bench_out = '';
my $script = $node->basedir . '/resolve.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set k random(1, 20)\nSELECT shorturl.resolve('c' || :k);\n");
my $bench = IPC::Run::start(
	[
		$node->installed_command('pgbench'), '--no-vacuum', '--client=4', '--jobs=2',
		'--time=60', "--file=$script", $node->connstr('postgres')
	],
	'<', '/dev/null', '>', \$bench_out, '2>', \$bench_out);
ok(ShortURL::Test::wait_until($node, 'postgres',
		"SELECT count(*) >= 4 FROM pg_stat_activity WHERE query LIKE 'SELECT shorturl.resolve(''c'' ||%'"),
	'(c) pgbench resolves');
my $stale = $node->safe_psql('postgres', q{
	DO $$
	DECLARE
		stale int := 0;
		c text;
		want text;
	BEGIN
		FOR i IN 1 .. 1500 LOOP
			c := 'c' || (i % 20 + 1);
			want := 'https://example.com/' || (i % 20 + 1) || '/v' || i;
			UPDATE shorturl.links SET url = want WHERE code = c;
			COMMIT;
			IF shorturl.resolve(c) IS DISTINCT FROM want THEN
				stale := stale + 1;
			END IF;
			COMMIT;
		END LOOP;
		RAISE NOTICE 'stale %', stale;
		CREATE TEMP TABLE stale_count AS SELECT stale;
	END $$;
	SELECT stale FROM stale_count});
$bench->kill_kill;
is($stale, '0', '(c) after each of 1,500 commits, the changed link resolved to its new URL');
is(resolve_all($node), 20, '(c) every link resolves to its table URL');
$after = figures($node);
cmp_ok($after->{url_cache_hits} - $before->{url_cache_hits}, '>', 1000, '(c) pgbench was served by the cache');
cmp_ok($after->{url_cache_fills} - $before->{url_cache_fills}, '>', 100, '(c) and the changes made it fill again');

# a transaction that changes more links than it remembers one by one
# (10,000) clears the database's entries once, at its commit
$node->safe_psql('postgres', q{
	SELECT count(shorturl.shorten('https://example.com/bulk/' || i, alias => 'b' || i))
	FROM generate_series(1, 12000) i});
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE shorturl.resolve(code) = url)
	     + count(*) FILTER (WHERE shorturl.resolve(code) = url)
	FROM shorturl.links WHERE code ~ '^b[0-9]+$'}),
	'24000', '(c) 12,000 links resolve, and again (cached)');
$node->safe_psql('postgres', q{
	UPDATE shorturl.links SET url = url || '/edited' WHERE code ~ '^b[0-9]+$'});
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM shorturl.links
	WHERE code ~ '^b[0-9]+$' AND url LIKE '%/edited' AND shorturl.resolve(code) = url}),
	'12000', '(c) after one UPDATE of all 12,000, each resolves to its new URL');

# ---------------------------------------------------------------------
# (d) a standby, then promoted
# ---------------------------------------------------------------------
# the primary goes on without a cache: its changes are logged for the
# standby's all the same
$node->append_conf('postgresql.conf', 'shorturl.url_cache_size = 0');
$node->restart;
is(ShortURL::Test::stats($node, 'postgres', 'coalesce(url_cache_size, -1)'), '-1', '(d) the primary has no cache now');
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('cache_standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->append_conf('postgresql.conf', "shorturl.url_cache_size = '8MB'");
$standby->start;
$node->wait_for_catchup($standby);
# the standby fills its cache once it has replayed a record of ours: the
# HELLO the primary's launcher logs after the backup's checkpoint
ok(ShortURL::Test::wait_until($standby, 'postgres', q{
	SELECT (SELECT url_cache_entries FROM shorturl.stats) > 0
	FROM (SELECT shorturl.resolve('c20') OFFSET 0) r}),
	'(d) the standby hears that its primary logs for it, and fills its cache');
$before = figures($standby);
is(resolve_all($standby), 20, '(d) on the standby every link resolves');
is(resolve_all($standby), 20, '(d) again');
$after = figures($standby);
is($after->{url_cache_fills} - $before->{url_cache_fills}, 19, '(d) the standby filled its cache, once per link (c20 was)');
cmp_ok($after->{url_cache_hits} - $before->{url_cache_hits}, '>=', 20, '(d) and hit it');

# every change on the primary is seen on the standby once replayed, though
# the standby's entries are there and no trigger fired on it: an update, a
# disable, a delete; and an update whose old version VACUUM pruned (its
# line pointer now redirects to the new version)
my $old_c4 = $node->safe_psql('postgres', "SELECT ctid FROM shorturl.links WHERE code = 'c4'");
$node->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/replayed' WHERE code = 'c1'");
$node->safe_psql('postgres', "SELECT shorturl.disable_link('c2')");
$node->safe_psql('postgres', "SELECT shorturl.delete_link('c3')");
$node->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/pruned' WHERE code = 'c4'");
$node->safe_psql('postgres', 'VACUUM shorturl.links');
isnt($node->safe_psql('postgres', "SELECT ctid FROM shorturl.links WHERE code = 'c4'"), $old_c4,
	'(d) c4\'s new version is elsewhere than the one the standby cached');
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT concat_ws(' ', shorturl.resolve('c1'), coalesce(shorturl.resolve('c2'), 'NULL'),
		coalesce(shorturl.resolve('c3'), 'NULL'), shorturl.resolve('c4'))}),
	'https://example.com/replayed NULL NULL https://example.com/pruned',
	'(d) on the standby at once: c1\'s new URL, c2 disabled, c3 deleted, c4\'s new URL');
cmp_ok(ShortURL::Test::stats($standby, 'postgres', 'url_cache_invalidations'), '>=', 4,
	'(d) the four stale entries were dropped at replay (url_cache_invalidations)');
is(resolve_all($standby), 18, '(d) the 18 links left resolve to their table URLs');

# a transaction that changes c7 and clears the database's entries (what the
# extension's scripts do) logs "every link", not c7's key
$node->safe_psql('postgres', q{BEGIN;
	UPDATE shorturl.links SET url = 'https://example.com/cleared' WHERE code = 'c7';
	SELECT shorturl._url_cache_reset();
	COMMIT});
$node->wait_for_catchup($standby);
is(figures($standby)->{url_cache_entries}, '0', '(d) the replayed clear emptied the standby\'s cache');
is($standby->safe_psql('postgres', "SELECT shorturl.resolve('c7')"), 'https://example.com/cleared',
	'(d) on the standby, c7\'s new URL after a clear');
is(resolve_all($standby), 18, '(d) and the 18 links resolve to their table URLs');

# a change replayed but never looked up before the promotion
$node->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/before-promotion' WHERE code = 'c5'");
$node->wait_for_catchup($standby);
$standby->promote;
ok(ShortURL::Test::wait_until($standby, 'postgres', 'SELECT NOT pg_is_in_recovery()'), '(d) promoted');
is($standby->safe_psql('postgres', "SELECT shorturl.resolve('c5')"), 'https://example.com/before-promotion',
	'(d) promoted, c5 resolves to the URL replayed before the promotion');
$before = figures($standby);
is(resolve_all($standby), 18, '(d) promoted, every link resolves');
$standby->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/promoted' WHERE code = 'c6'");
is($standby->safe_psql('postgres', "SELECT shorturl.resolve('c6')"), 'https://example.com/promoted',
	'(d) a change made on the promoted server is seen at once');
$after = figures($standby);
cmp_ok($after->{url_cache_hits} - $before->{url_cache_hits}, '>=', 17, '(d) and the promoted server hits its cache');

$standby->stop;
$node->stop;

# ---------------------------------------------------------------------
# (e) a primary with a cache of its own, then restarted without the library
# ---------------------------------------------------------------------
my $p2 = ShortURL::Test::node('cache_p2', { init => { allows_streaming => 1 } },
	"shorturl.url_cache_size = '8MB'");
$p2->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
$p2->safe_psql('postgres', q{
	SELECT count(shorturl.shorten('https://example.com/' || i, alias => 'c' || i))
	FROM generate_series(1, 5) i});
# a standby fills only from a row version whose insert it knows committed
# by its hint bit, which recovery sets only once a restartpoint has passed
# the commit: frozen rows have it from the primary
$p2->safe_psql('postgres', 'VACUUM (FREEZE) shorturl.links');
$p2->backup('b2');
my $s2 = PostgreSQL::Test::Cluster->new('cache_s2');
$s2->init_from_backup($p2, 'b2', has_streaming => 1);
$s2->start;
$p2->wait_for_catchup($s2);
ok(ShortURL::Test::wait_until($s2, 'postgres', q{
	SELECT (SELECT url_cache_entries FROM shorturl.stats) = 5
	FROM (SELECT count(shorturl.resolve('c' || i)) FROM generate_series(1, 5) i OFFSET 0) r}),
	'(e) the standby hears from its primary, and fills its cache with the five links');
is(resolve_all($s2), 5, '(e) every link resolves on the standby');
my $inval = ShortURL::Test::stats($s2, 'postgres', 'url_cache_invalidations');
# one link changed on a primary with its own cache: exactly its entry goes
$p2->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/one' WHERE code = 'c2'");
$p2->wait_for_catchup($s2);
is(figures($s2)->{url_cache_entries}, '4', '(e) the replayed change evicted one entry, not more');
is(ShortURL::Test::stats($s2, 'postgres', 'url_cache_invalidations') - $inval, 1,
	'(e) and counted one invalidation');
is($s2->safe_psql('postgres', "SELECT shorturl.resolve('c2')"), 'https://example.com/one',
	'(e) c2\'s new URL on the standby');
is(resolve_all($s2), 5, '(e) the five links resolve to their table URLs');

# rule 3 on a standby: a fill that read c4 before a change was replayed does
# not insert what it read (session holder holds the lock the fill waits on)
$p2->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/v1' WHERE code = 'c4'");
$p2->safe_psql('postgres', 'VACUUM (FREEZE) shorturl.links');
$p2->wait_for_catchup($s2);
my $holder = ShortURL::Test::session($s2, 'postgres');
ShortURL::Test::ask($holder, 'SELECT pg_advisory_lock(4242)');
my $filler = ShortURL::Test::session($s2, 'postgres');
ShortURL::Test::ask($filler, 'SET shorturl.url_cache_fill_wait = 4242');
ShortURL::Test::send_sql($filler, "SELECT shorturl.resolve('c4')");
ok(ShortURL::Test::wait_until($s2, 'postgres',
		"SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"),
	'(e) a fill on the standby read c4 and waits');
$p2->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/v2' WHERE code = 'c4'");
$p2->wait_for_catchup($s2);
ShortURL::Test::ask($holder, 'SELECT pg_advisory_unlock(4242)');
my ($read) = ShortURL::Test::answer($filler);
is($read, 'https://example.com/v1', '(e) the fill\'s statement answers with what it read');
is($s2->safe_psql('postgres', "SELECT shorturl.resolve('c4')"), 'https://example.com/v2',
	'(e) and did not cache it: the next resolve has the replayed URL');
ShortURL::Test::end_session($_) for ($holder, $filler);

# the primary restarted without the library logs nothing of ours: the
# standby, having replayed that restart, clears its cache and stops using
# it, so c1's change made then is seen though no record evicted c1
$p2->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$p2->restart;
$p2->safe_psql('postgres', "UPDATE shorturl.links SET url = 'https://example.com/bare' WHERE code = 'c1'");
$p2->wait_for_catchup($s2);
is($s2->safe_psql('postgres', "SELECT shorturl.resolve('c1')"), 'https://example.com/bare',
	'(e) on the standby, c1\'s URL changed by the primary without the library');
$before = figures($s2);
is(resolve_all($s2), 5, '(e) the five links resolve to their table URLs');
$after = figures($s2);
is($after->{url_cache_entries} . ' ' . ($after->{url_cache_fills} - $before->{url_cache_fills}), '0 0',
	'(e) from the table: no entry, no fill');
$p2->stop('immediate');
$p2->start;
is($p2->safe_psql('postgres', "SELECT url FROM shorturl.links WHERE code = 'c1'"), 'https://example.com/bare',
	'(e) the primary without the library recovers from a crash past its change to c1');
$s2->stop;
$p2->stop;

# ---------------------------------------------------------------------
# (f) a full cache
# ---------------------------------------------------------------------
my $small = ShortURL::Test::node('small_cache', {}, "shorturl.url_cache_size = '1MB'");
$small->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
$small->safe_psql('postgres', q{
	SELECT count(shorturl.shorten('https://example.com/full/' || i, alias => 'f' || i))
	FROM generate_series(1, 20000) i});
# f_figures returns the cache's counters that a full cache moves
sub f_figures
{
	my @cols = qw(url_cache_hits url_cache_fills url_cache_rejected url_cache_evictions url_cache_entries);
	my @v = split /\|/, ShortURL::Test::stats($small, 'postgres', join ', ', @cols);
	my %f;
	@f{@cols} = @v;
	return \%f;
}
my $f0 = f_figures();
my $right = 0;
for my $round (1 .. 3)
{
	$right += $small->safe_psql('postgres', q{
		SELECT count(*) FROM shorturl.links
		WHERE code ~ '^f[0-9]+$' AND shorturl.resolve(code) = url});
	$small->safe_psql('postgres', q{
		SELECT count(shorturl.resolve('f1')) FROM generate_series(1, 50)});
}
my $f1 = f_figures();
is($right, 60000, '(f) 60,000 answers from a full cache, each the table\'s URL');
# 16 partitions of 65,536 bytes: 327 slots each (200 bytes planned a link)
cmp_ok($f1->{url_cache_entries}, '<=', 16 * 327, '(f) the entries stay within the slots');
cmp_ok($f1->{url_cache_entries}, '>', 16 * 300, '(f) and fill them');
cmp_ok($f1->{url_cache_rejected} - $f0->{url_cache_rejected}, '>', 10000,
	'(f) TinyLFU turned most newcomers away');
cmp_ok($f1->{url_cache_evictions} - $f0->{url_cache_evictions}, '>', 0, '(f) and CLOCK evicted some');
$small->safe_psql('postgres', q{SELECT count(shorturl.resolve('f1')) FROM generate_series(1, 100)});
my $f2 = f_figures();
is($f2->{url_cache_hits} - $f1->{url_cache_hits}, 100, '(f) the hot link is a hit every time');
$small->safe_psql('postgres', q{UPDATE shorturl.links SET url = 'https://example.com/full/new' WHERE code = 'f1'});
is($small->safe_psql('postgres', q{SELECT shorturl.resolve('f1')}), 'https://example.com/full/new',
	'(f) a change to a cached link in a full cache is seen at once');
$small->stop;
done_testing();
