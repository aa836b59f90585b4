# 003_two_coordinators.pl: two coordinators in front of the same three
# shards, both making links and resolving them at the same time.
#
# The second coordinator takes its link ids (and the code key) from the
# first, with set_id_source() before it makes any link.  pgbench runs on
# both at once, each transaction making a link and clicking two links made
# before the run by either coordinator; every click is logged with whether
# it was served.  Afterwards: every code handed out is unique and lives on
# exactly one shard, the one route(code) names; every click was served and
# each link's visits are exactly the clicks served through both; both
# coordinators answer the same visits; and an alias equal to a code either
# coordinator handed out is refused by both (23505).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

# the links each coordinator makes before the run, clicked during it
my $n_premade = 50;

# pgbench on each coordinator: clients and transactions per client
my $clients = 4;
my $xacts = 150;

my %coord = (one => ShortURL::Test::coordinator('one'), two => ShortURL::Test::coordinator('two'));
my %shard = map { $_ => ShortURL::Test::shard($_) } qw(alpha bravo charlie);
my @map = map { [ $_, $shard{$_}, $_ eq 'charlie' ? 2 : 1 ] } sort keys %shard;

sub on { my ($c, $sql) = @_; return $coord{$c}->safe_psql('postgres', $sql); }

# the first coordinator owns the sequence and makes the key with its
# first link; the second takes both from it before it makes any link
ShortURL::Test::add_shards($coord{one}, 'postgres', @map);
on('one', 'SET client_min_messages = warning; CALL shorturl.rebalance()');
on('one', q{CREATE TABLE premade (i integer PRIMARY KEY, code text COLLATE "C" NOT NULL)});
on('one', qq{INSERT INTO premade SELECT g, shorturl.shorten('https://example.com/one/' || g)
	FROM generate_series(1, $n_premade) g});
on('two', "SELECT shorturl.set_id_source('" . ShortURL::Test::conninfo($coord{one}) . "')");
ShortURL::Test::add_shards($coord{two}, 'postgres', @map);
on('two', 'SET client_min_messages = warning; CALL shorturl.rebalance()');
# set_id_source copied the key
is(on('two', q{SELECT encode(key, 'hex') FROM shorturl.code_key}),
	on('one', q{SELECT encode(key, 'hex') FROM shorturl.code_key}),
	'the second coordinator has the first one\'s code key');
on('two', q{CREATE TABLE premade (i integer PRIMARY KEY, code text COLLATE "C" NOT NULL)});
on('two', qq{INSERT INTO premade SELECT $n_premade + g, shorturl.shorten('https://example.com/two/' || g)
	FROM generate_series(1, $n_premade) g});
# and the second coordinator's ids come from the first one's sequence
is(on('two', 'SELECT shorturl.last_link_id()'), 2 * $n_premade - 1,
	'the second coordinator\'s links took the next ids of the first one\'s sequence');

# both know every premade link; each logs what it makes and every click
my $n_pre = 2 * $n_premade;
my $all_premade = join ',', map { "($_)" } split /\n/,
  on('one', q{SELECT i || ', ''' || code || '''' FROM premade})
  . "\n" . on('two', q{SELECT i || ', ''' || code || '''' FROM premade});
for my $c (qw(one two))
{
	on($c, "TRUNCATE premade; INSERT INTO premade VALUES $all_premade");
	on($c, q{CREATE TABLE made (code text COLLATE "C" NOT NULL, at timestamptz DEFAULT clock_timestamp())});
	on($c, q{CREATE TABLE clicks (code text COLLATE "C" NOT NULL, served boolean NOT NULL)});
}
# the links clicked during the run are known to both
is(on('one', 'SELECT count(DISTINCT code) FROM premade') . '|' . on('two', 'SELECT count(DISTINCT code) FROM premade'),
	"$n_pre|$n_pre", "the $n_pre links made before the run have distinct codes, known to both");

# ---------------------------------------------------------------------
# pgbench on both coordinators at once
# ---------------------------------------------------------------------
my %bench;
for my $c (qw(one two))
{
	$bench{$c} = ShortURL::Test::start_pgbench($coord{$c}, 'postgres',
		"--client=$clients --jobs=2 --transactions=$xacts", qq{
\\set i random(1, $n_pre)
INSERT INTO clicks SELECT code, shorturl.resolve(code) IS NOT NULL FROM premade WHERE i = :i;
INSERT INTO made (code) VALUES (shorturl.shorten('https://example.com/$c/' || :client_id || '/' || random()));
\\set j random(1, $n_pre)
INSERT INTO clicks SELECT code, shorturl.resolve(code) IS NOT NULL FROM premade WHERE i = :j;
});
}
my $n = $clients * $xacts;
for my $c (qw(one two))
{
	my ($rc, $out, $err) = ShortURL::Test::finish_pgbench($bench{$c});
	# every transaction ran: no shorten or resolve failed
	ok($rc == 0 && $out =~ m{actually processed: $n/$n}, "pgbench on coordinator $c: $n transactions ran")
	  or diag("$out$err");
}
# the two runs overlapped: each made links while the other did
my %span = map { $_ => [ split /\|/, on($_, q{SELECT extract(epoch FROM min(at)), extract(epoch FROM max(at)) FROM made}) ] } qw(one two);
my $overlap = ($span{one}[1] < $span{two}[1] ? $span{one}[1] : $span{two}[1])
  - ($span{one}[0] > $span{two}[0] ? $span{one}[0] : $span{two}[0]);
cmp_ok($overlap, '>', 0, sprintf('the two coordinators made links at the same time for %.1f s', $overlap));

# ---------------------------------------------------------------------
# Codes: unique, each on its owner only
# ---------------------------------------------------------------------
my @codes = map { split /\n/, on($_, 'SELECT code FROM made') } qw(one two);
push @codes, split /\n/, on('one', 'SELECT code FROM premade');
my %seen;
$seen{$_}++ for @codes;
my $n_codes = 2 * $n + $n_pre;
# every shorten returned a code, and no code came out twice
is(scalar @codes, $n_codes, "$n_codes codes were handed out (each shorten returned one)");
is(scalar(grep { $seen{$_} > 1 } keys %seen), 0, 'no code was handed out twice');

my $census = ShortURL::Test::census(%shard);
# the shards, read directly, hold each of them once, on its owner
is(scalar @{ $census->{dups} }, 0, 'no code is on two shards');
is(scalar keys %{ $census->{where} }, $n_codes, 'the shards hold exactly the links handed out');
my $list = join ',', map { "'$_'" } sort keys %seen;
my %route = map { split /\|/ } split /\n/, on('two', "SELECT c, shorturl.route(c) FROM unnest(ARRAY[$list]) c");
is(scalar(grep { ($census->{where}{$_} // '') ne $route{$_} } keys %route), 0,
	'every link is on the shard route(code) names');
# the ids are the cluster's: one sequence, no id twice
is(on('one', "SELECT count(DISTINCT shorturl.decode_id(c)) || '|' || max(shorturl.decode_id(c)) FROM unnest(ARRAY[$list]) c"),
	"$n_codes|" . ($n_codes - 1), "the $n_codes links have the ids 0 to " . ($n_codes - 1) . ', each once');

# ---------------------------------------------------------------------
# Counts: the clicks served through both, exactly
# ---------------------------------------------------------------------
my %served;
my $refused = 0;
for my $c (qw(one two))
{
	for (split /\n/, on($c, 'SELECT code, served, count(*) FROM clicks GROUP BY 1, 2'))
	{
		my ($code, $ok, $k) = split /\|/;
		$served{$code} += $k if $ok eq 't';
		$refused += $k if $ok ne 't';
	}
}
my $n_clicks = 0;
$n_clicks += $_ for values %served;
# every click found its link, and every served click was counted once
is($refused, 0, "every one of the $n_clicks clicks was served");
my @pre = split /\n/, on('one', 'SELECT code FROM premade ORDER BY code');
my @bad = grep { ($census->{visits}{$_} // -1) != ($served{$_} // 0) } @pre;
is(scalar @bad, 0, "each clicked link's visits on its shard are the clicks served through both coordinators")
  or note(join '; ', map { "$_: visits $census->{visits}{$_}, served " . ($served{$_} // 0) } @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ]);
my $pre_list = join ',', map { "'$_'" } @pre;
my $visits_sql = "SELECT string_agg(c || '=' || shorturl.visits(c), ' ' ORDER BY c) FROM unnest(ARRAY[$pre_list]) c";
# either coordinator reads the same counts
is(on('one', $visits_sql), on('two', $visits_sql), 'both coordinators answer the same visits()');
is(on('one', $visits_sql), join(' ', map { "$_=" . ($served{$_} // 0) } @pre), '... the clicks served');

# ---------------------------------------------------------------------
# An alias equal to a code handed out is refused by both
# ---------------------------------------------------------------------
my %by = (one => on('one', 'SELECT code FROM made LIMIT 1'), two => on('two', 'SELECT code FROM made LIMIT 1'));
for my $maker (qw(one two))
{
	for my $c (qw(one two))
	{
		like(ShortURL::Test::sql_error($coord{$c}, 'postgres',
				"SELECT shorturl.shorten('https://evil.example.net/', alias => '$by{$maker}')"),
			qr/^23505: /, "coordinator $c refuses alias $by{$maker}, a code coordinator $maker handed out (23505)");
	}
}
# the refused aliases changed nothing: the link keeps its URL
is(ShortURL::Test::census(%shard)->{url}{ $by{one} }, $census->{url}{ $by{one} },
	'the code keeps its URL');

done_testing();
