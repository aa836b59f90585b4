# 008_copy_commit.pl: a rebalance terminated while the new shard commits a
# batch's copy loses no click.
#
# postgres_fdw commits the new shard's part of a transaction before the
# coordinator's own; step 2 of a rebalance writes the copies there and the
# count each carried here (shorturl.rebalance_moves).  A rebalance
# terminated between the two commits leaves copies with no journal row.
# Until 0.10 the run after it journaled the old shard's count at its own
# time, and the clicks the old shard flushed in between were lost.  Now
# the copy writes its counts on the new shard (shorturl.copied_links, in
# the same transaction) and the journal takes them from there.
#
# 1. update: shards at pg_shorturl 0.10 and a coordinator at 0.9, with
#    links and clicks.  The coordinator's update refuses while the shards
#    run 0.10 (55000); once they run 0.11, each shard has its copies'
#    foreign table, not a member of the extension, the coordinator has the
#    objects of a fresh one (updated on to the latest version, with the
#    same routines), and every link resolves; add_shard() refuses a
#    database whose pg_shorturl is 0.10;
# 2. a third shard added, the rebalance is terminated while the new
#    shard's commit of the first batch waits (a deferred trigger sleeps
#    there): the copies and their copied_links rows are there, the journal
#    has nothing, and a link of the batch is clicked on its old shard
#    meanwhile, as a client routed there would.  The run after it finishes
#    the move: every link on exactly one shard, with exactly the clicks
#    made, each link's series adding up to its count, and nothing left
#    behind.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

my $n_links = 300;
my @conf = ("shorturl.flush_interval = '200ms'", "shorturl.purge_interval = '1h'");

# ---------------------------------------------------------------------
# 1. A 0.9 coordinator over 0.10 shards, updated
# ---------------------------------------------------------------------
my %shard = map { $_ => ShortURL::Test::shard_at($_, '0.10', @conf) } qw(alpha bravo);
my $coord = ShortURL::Test::coordinator_at('coord', '0.9');

sub co { return $coord->safe_psql('postgres', $_[0]); }
sub co_error { return ShortURL::Test::sql_error($coord, 'postgres', $_[0]); }
sub on { return $shard{ $_[0] }->safe_psql('postgres', $_[1]); }

ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_} ] } sort keys %shard);
co('SET client_min_messages = warning; CALL shorturl.rebalance()');
co(qq{CREATE TABLE made AS SELECT g, shorturl.shorten('https://example.com/m/' || g) AS code
	FROM generate_series(1, $n_links) g});
# every link clicked once, through the coordinator (clicks logs them)
co(q{CREATE TABLE clicks (code text COLLATE "C" NOT NULL)});
co(q{INSERT INTO clicks SELECT code FROM made WHERE shorturl.resolve(code, NULL) IS NOT NULL});
is(co('SELECT count(*) FROM clicks'), $n_links, "0.9 over 0.10: $n_links links made and clicked");

like(co_error(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.10'}),
	qr/^55000: shard "alpha" runs pg_shorturl 0\.10, and this update needs 0\.11/,
	'the coordinator\'s update refuses while the shards run 0.10 (55000)');
on($_, q{ALTER EXTENSION pg_shorturl UPDATE TO '0.11'}) for sort keys %shard;
co(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE TO '0.10'});
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}), '0.10',
	'with the shards at 0.11 the coordinator updates to 0.10');
is(co(q{SELECT string_agg(c.relname || '=' || (d.objid IS NOT NULL), ' ' ORDER BY c.relname) FROM pg_class c
	LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
	WHERE c.relnamespace = 'shorturl_remote'::regnamespace AND c.relname LIKE '%copied_links'}),
	'alpha_copied_links=false bravo_copied_links=false',
	'each shard has its copies\' foreign table, not a member of the extension');
# and on to the latest (0.11: the fixes of bugs A and B of 009)
co(q{ALTER EXTENSION pg_shorturl_coordinator UPDATE});
is(co(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl_coordinator'}),
	co(q{SELECT default_version FROM pg_available_extensions WHERE name = 'pg_shorturl_coordinator'}),
	'... and on to the latest version');
co('CREATE DATABASE fresh');
$coord->safe_psql('fresh', 'CREATE EXTENSION pg_shorturl_coordinator CASCADE');
my $objects = q{SELECT string_agg(pg_describe_object(classid, objid, 0), E'\n' ORDER BY 1)
	FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl_coordinator')};
is(co($objects), $coord->safe_psql('fresh', $objects), 'an updated coordinator has the objects of a fresh one');
my $routines = q{SELECT string_agg(p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))
	                  || ' ' || coalesce(p.proacl::text, '-'), E'\n' ORDER BY 1)
	FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shorturl_coordinator')};
is(co($routines), $coord->safe_psql('fresh', $routines), '... and the same routines, bodies and privileges');
is(co(q{SELECT count(*) FROM made WHERE shorturl.resolve(code, NULL) = 'https://example.com/m/' || g}), $n_links,
	'after the update every link resolves to its URL');
co(q{INSERT INTO clicks SELECT code FROM made});

# a shard whose pg_shorturl is older cannot join
my $charlie = ShortURL::Test::node('charlie', @conf);
$charlie->safe_psql('postgres', q{CREATE DATABASE old});
$charlie->safe_psql('old', q{CREATE EXTENSION pg_shorturl VERSION '0.10'});
like(co_error(q{SELECT shorturl.add_shard('old', '} . ShortURL::Test::conninfo($charlie, 'old') . q{')}),
	qr/^55000: shard "old" runs pg_shorturl 0\.10, and this coordinator needs 0\.11/,
	'add_shard() refuses a database whose pg_shorturl is 0.10 (55000)');

# ---------------------------------------------------------------------
# 2. Terminated while the new shard commits the copy
# ---------------------------------------------------------------------
$charlie->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
ShortURL::Test::wait_served($charlie, 'postgres') or die 'no worker serves shard charlie';
$shard{charlie} = $charlie;
ShortURL::Test::add_shards($coord, 'postgres', [ 'charlie', $charlie ]);

# The commit of the first copy into charlie sleeps (a deferred trigger,
# once per transaction), long enough to click and terminate meanwhile.
on('charlie', q{CREATE FUNCTION public.slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF current_setting('test.slept', true) IS DISTINCT FROM 'on' THEN
			PERFORM set_config('test.slept', 'on', true);
			PERFORM pg_sleep(3);
		END IF;
		RETURN NULL;
	END$$;
	CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON shorturl.links
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.slow_commit()});
my $run = ShortURL::Test::session($coord, 'postgres');
my ($pid) = ShortURL::Test::ask($run, 'SET client_min_messages = warning; SELECT pg_backend_pid()');
ShortURL::Test::send_sql($run, 'CALL shorturl.rebalance(1000)');
ok(ShortURL::Test::wait_until($charlie, 'postgres',
	q{SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep'}, 60),
	'the copy into charlie is committing');

# a link of that batch (alpha -> charlie, the first pair), clicked on
# alpha meanwhile, as a client routed there would: the copy read its count
# before this click, and alpha's worker flushes it
my $from = 'alpha';
my $moving = co(q{SELECT m.code FROM made m WHERE shorturl.route(m.code) = 'charlie'
	AND EXISTS (SELECT FROM shorturl_remote.alpha_links l WHERE l.code = m.code) ORDER BY m.g LIMIT 1});
is(on($from, "SELECT shorturl.resolve('$moving') IS NOT NULL"), 't', "a moving link clicked on $from, its old shard");
co(qq{INSERT INTO clicks VALUES ('$moving')});
co("SELECT pg_terminate_backend($pid)");
my (undef, $error) = ShortURL::Test::answer($run, 30);
like($error, qr/^57P01: |^session ended/, 'the rebalance was terminated');
ShortURL::Test::end_session($run);
# the sleeping commit ends, and commits
ok(ShortURL::Test::wait_until($charlie, 'postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep'}, 30), 'charlie\'s commit is over');
on('charlie', 'DROP FUNCTION public.slow_commit() CASCADE');
my $copies = on('charlie', 'SELECT count(*) FROM shorturl.links');
cmp_ok($copies, '>', 0, "charlie has the batch's copies ($copies)");
is(on('charlie', 'SELECT count(*) FROM shorturl.copied_links'), $copies, '... and what each carried, in copied_links');
is(co('SELECT count(*) FROM shorturl.rebalance_moves'), 0, 'the coordinator journaled none of them');
ok(ShortURL::Test::wait_until($shard{$from}, 'postgres',
	qq{SELECT c.visits = 3 FROM shorturl.visit_counts c JOIN shorturl.links l ON l.id = c.link_id
	   WHERE l.code = '$moving'}), "$from flushed the click made meanwhile");

co('SET client_min_messages = warning; CALL shorturl.rebalance(1000)');
my $census = ShortURL::Test::census(%shard);
my %want = map { split /\|/ } split /\n/, co('SELECT m.code, count(c.code) FROM made m LEFT JOIN clicks c USING (code) GROUP BY m.code');
my @bad = grep { ($census->{visits}{$_} // -1) != $want{$_} } sort keys %want;
is(scalar @bad, 0, 'the run after it: every link has exactly the clicks made');
diag("$_ wants $want{$_}, has " . ($census->{visits}{$_} // '(none)')) for @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ];
is($census->{visits}{$moving}, 3, "the link clicked on $from meanwhile has its 3 clicks");
is(scalar @{ $census->{dups} }, 0, 'no link is on two shards');
is(scalar(grep { $census->{where}{$_} ne co("SELECT shorturl.route('$_')") } ($moving, (sort keys %want)[ 0 .. 19 ])), 0,
	'the links are on their owners');
is(on('charlie', q{SELECT count(*) FROM shorturl.links l
	WHERE (SELECT coalesce(sum(s.visits), 0) FROM shorturl.visit_series(l.code, now() - interval '2 days',
		now() + interval '1 day', 'day') s) <> shorturl.visits(l.code)}), 0,
	'on charlie, each link\'s series adds up to its count');
is(co('SELECT count(*) FROM shorturl.rebalance_moves') . ' '
	. join(' ', map { on($_, q{SELECT (SELECT count(*) FROM shorturl.moved_links) || '/'
		|| (SELECT count(*) FROM shorturl.arrived_links) || '/' || (SELECT count(*) FROM shorturl.copied_links)}) }
		sort keys %shard),
	'0 0/0/0 0/0/0 0/0/0', 'no journal, moved, arrived or copied row is left');

done_testing();
