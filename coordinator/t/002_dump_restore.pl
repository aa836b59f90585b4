# 002_dump_restore.pl: a coordinator survives pg_dump and pg_restore.
#
# A coordinator holds no links, only the cluster's definition: the shard
# map, the code key, the id sequence, the id source, the rebalance state,
# and the runtime objects add_shard() made (foreign servers, user
# mappings, foreign tables, the PL/Proxy cluster), which are not members
# of the extension so that pg_dump keeps them.  Three shard servers, one
# coordinator; then:
#
#   A. pg_dump -Fc of the coordinator, pg_restore into a new database of
#      the same server;
#   B. pg_dump -Fc of A, pg_restore into a new database of a second
#      server where plproxy and postgres_fdw are already installed.
#
# Each restore reports no error, and the restored database works as a
# coordinator: the map, key and sequence are the dumped ones (old codes
# decode to the same ids); every existing code resolves to its URL, its
# click counted on its shard; new shorten() codes continue the sequence
# and collide with no existing code; rebalance_plan() equals the pure
# routing's prediction after a weight change, and a rebalance through the
# restored coordinator moves exactly those links, counts intact.  Only the
# latest restore makes links, as a restored coordinator replaces the one
# it was dumped from.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../../test/perl";
use ShortURL::Test;

my $tempdir = PostgreSQL::Test::Utils::tempdir;

# links the first coordinator makes, and each restored one
my $n_first = 3_000;
my $n_after = 300;

my $coord = ShortURL::Test::coordinator('coord');
my $coord2 = ShortURL::Test::node('coord2');
my %shard = map { $_ => ShortURL::Test::shard($_) } qw(alpha bravo charlie);
my %weight = (alpha => 1, bravo => 1, charlie => 2);
ShortURL::Test::add_shards($coord, 'postgres', map { [ $_, $shard{$_}, $weight{$_} ] } sort keys %weight);
$coord->safe_psql('postgres', 'SET client_min_messages = warning; CALL shorturl.rebalance()');

# What the test made: code -> URL, and code -> clicks served
my (%url, %clicks);

# make has a coordinator make $n links (and, the first time, aliases and
# limited links); returns the new codes
sub make
{
	my ($node, $db, $n, $tag) = @_;
	my @rows = split /\n/, $node->safe_psql($db, qq{
		SELECT shorturl.shorten(u), u FROM (SELECT 'https://example.com/$tag/' || g AS u
		FROM generate_series(1, $n) g) s});
	my @codes;
	for (@rows)
	{
		my ($code, $u) = split /\|/;
		$url{$code} = $u;
		$clicks{$code} = 0;
		push @codes, $code;
	}
	return @codes;
}

# click resolves codes through a coordinator, $times each; returns how
# many were served the URL they were made for
sub click
{
	my ($node, $db, $times, @codes) = @_;
	my $list = join ',', map { "'$_'" } @codes;
	my $ok = 0;
	for (split /\n/, $node->safe_psql($db,
		"SELECT c, shorturl.resolve(c) FROM unnest(ARRAY[$list]) c, generate_series(1, $times)"))
	{
		my ($code, $got) = split /\|/, $_, 2;
		next unless defined $got && $got ne '';
		$clicks{$code}++;
		$ok++ if $got eq $url{$code};
	}
	return $ok;
}

# check_shards reads the shards directly: every code made on exactly one
# shard, the one route(code) names on coordinator $node, with its URL and
# its clicks
sub check_shards
{
	my ($label, $node, $db) = @_;
	my $c = ShortURL::Test::census(%shard);
	my $list = join ',', map { "'$_'" } sort keys %url;
	my %route = map { split /\|/ } split /\n/,
	  $node->safe_psql($db, "SELECT c, shorturl.route(c) FROM unnest(ARRAY[$list]) c");
	my @bad = grep {
		($c->{where}{$_} // '') ne $route{$_}
		  || ($c->{url}{$_} // '') ne $url{$_}
		  || ($c->{visits}{$_} // -1) != $clicks{$_}
	} sort keys %url;

	# nothing lost, nothing on two shards
	is(scalar @{ $c->{dups} } . '|' . scalar(keys %{ $c->{where} }), '0|' . scalar(keys %url),
		"$label: the shards hold each link made exactly once");
	# each where the coordinator routes it, unchanged, its clicks counted
	is(scalar @bad, 0, "$label: each on the shard route(code) names, with its URL and its clicks")
	  or note(join '; ', map {
			"$_ on " . ($c->{where}{$_} // 'none') . " (route $route{$_}), visits "
			  . ($c->{visits}{$_} // 'none') . " (want $clicks{$_})"
	  } @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ]);
}

# state is what a coordinator's definition looks like, as text: the map,
# the key and widths, the last id, the id source, the rebalance state, and
# the runtime objects add_shard() made
sub state
{
	my ($node, $db) = @_;
	return $node->safe_psql($db, q{
		SELECT 'shards: ' || string_agg(name || ':' || weight || ':' || retiring, ',' ORDER BY name)
		FROM shorturl.shards
		UNION ALL SELECT 'key: ' || encode(key, 'hex') || ' ' || width_from::text || ' ' || widths::text
		FROM shorturl.code_key
		UNION ALL SELECT 'last id: ' || coalesce(shorturl.last_link_id()::text, 'none')
		UNION ALL SELECT 'id source: ' || count(*) FROM shorturl.id_source
		UNION ALL SELECT 'rebalance: ' || pending || ' ' || planned || ' ' || moved
		FROM shorturl.rebalance_state
		UNION ALL SELECT 'servers: ' || string_agg(s.srvname || '/' || w.fdwname, ',' ORDER BY s.srvname)
		FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
		UNION ALL SELECT 'user mappings: ' || count(*) FROM pg_user_mappings
		UNION ALL SELECT 'foreign tables: ' || string_agg(c.relname, ',' ORDER BY c.relname)
		FROM pg_foreign_table t JOIN pg_class c ON c.oid = t.ftrelid});
}

# dump_restore dumps a database with pg_dump -Fc and restores it into a
# new database of another (or the same) server; both must report nothing
sub dump_restore
{
	my ($label, $from, $from_db, $to, $to_db, $prepare) = @_;
	my $file = "$tempdir/$label.dump";

	$from->command_checks_all(
		[ 'pg_dump', '-Fc', '-f', $file, '-d', $from->connstr($from_db) ],
		0, [qr/^$/], [qr/^$/], "$label: pg_dump -Fc of the coordinator reports nothing");
	$to->safe_psql('postgres', "CREATE DATABASE $to_db");
	$to->safe_psql($to_db, $prepare) if $prepare;
	$to->command_checks_all(
		[ 'pg_restore', '-d', $to->connstr($to_db), $file ],
		0, [qr/^$/], [qr/^$/], "$label: pg_restore into a new database reports no error");
}

# check_restored checks that a restored coordinator works like the one it
# was dumped from, and makes links; returns its new codes
sub check_restored
{
	my ($label, $node, $db, $dumped_state, $tag) = @_;
	my @old = sort keys %url;
	my $list = join ',', map { "'$_'" } @old;

	# the cluster's definition came back whole
	is(state($node, $db), $dumped_state,
		"$label: the map, key, last id, id source, rebalance state, servers, mappings and foreign tables are the dumped ones");
	# the restore made no store of it
	is($node->safe_psql($db, q{SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension}),
		'pg_shorturl_coordinator,plpgsql,plproxy,postgres_fdw', "$label: a coordinator, not a store");
	# the same key: every old code decodes to the id it had
	is($node->safe_psql($db, "SELECT md5(string_agg(c || ':' || coalesce(shorturl.decode_id(c)::text, '-'), ',' ORDER BY c))"
			  . " FROM unnest(ARRAY[$list]) c"),
		$coord->safe_psql('postgres', "SELECT md5(string_agg(c || ':' || coalesce(shorturl.decode_id(c)::text, '-'), ',' ORDER BY c))"
			  . " FROM unnest(ARRAY[$list]) c"),
		"$label: every existing code decodes to the same id as on the first coordinator");

	# every existing code resolves to its URL, counted on its shard
	is(click($node, $db, 1, @old), scalar @old,
		"$label: all " . scalar(@old) . ' existing codes resolve to their URLs');
	my $sample = join ',', map { "'$_'" } @old[ 0 .. 49 ];
	# and its visits() read the shards' counts
	is($node->safe_psql($db, "SELECT string_agg(c || '=' || shorturl.visits(c), ' ' ORDER BY c) FROM unnest(ARRAY[$sample]) c"),
		join(' ', map { "$_=$clicks{$_}" } sort @old[ 0 .. 49 ]),
		"$label: visits() through it are the clicks served, for 50 codes");

	# new links continue the sequence
	my $last = $node->safe_psql($db, 'SELECT shorturl.last_link_id()');
	my %before = map { $_ => 1 } @old;
	my @new = make($node, $db, $n_after, $tag);
	# no collision with what the cluster handed out before the dump
	is(scalar(grep { $before{$_} } @new), 0, "$label: none of $n_after new codes equals an existing one");
	my $new_list = join ',', map { "'$_'" } @new;
	# because the restored sequence continues where the dumped one was
	is($node->safe_psql($db, "SELECT min(shorturl.decode_id(c)) > $last FROM unnest(ARRAY[$new_list]) c"), 't',
		"$label: the new codes' ids come after the last dumped id ($last)");
	check_shards("$label, new links made", $node, $db);

	# the plan after a weight change is the pure routing's prediction
	# rebalance_plan() reads the shards through the restored foreign tables
	is($node->safe_psql($db, 'SELECT count(*) FROM shorturl.rebalance_plan()'), 0,
		"$label: rebalance_plan() finds nothing to move");
	my $new_weight = $weight{alpha} + 1;
	$node->safe_psql($db, "SELECT shorturl.set_shard_weight('alpha', $new_weight)");
	$weight{alpha} = $new_weight;
	my $all = join ',', map { "'$_'" } sort keys %url;
	my $c = ShortURL::Test::census(%shard);
	my %want;
	for (split /\n/, $node->safe_psql($db,
		"SELECT c, shorturl.route(c, m.names, m.weights) FROM unnest(ARRAY[$all]) c, shorturl._active_map() m"))
	{
		my ($code, $to) = split /\|/;
		$want{"$c->{where}{$code}>$to"}++ if $to ne $c->{where}{$code};
	}
	my %plan = map { my ($s, $t, $n) = split /\|/; ("$s>$t" => $n) }
	  split /\n/, $node->safe_psql($db, 'SELECT source, target, links FROM shorturl.rebalance_plan()');
	is_deeply(\%plan, \%want, "$label: after set_shard_weight, rebalance_plan() equals the prediction");
	cmp_ok(scalar(keys %plan), '>', 0, "$label: ... which moves links");
	$node->safe_psql($db, 'SET client_min_messages = warning; CALL shorturl.rebalance(200)');
	# and a rebalance through the restored servers moves them, counts intact
	is($node->safe_psql($db, 'SELECT pending FROM shorturl.rebalance_state'), 'f',
		"$label: a rebalance through it completes");
	check_shards("$label, rebalanced", $node, $db);
	return @new;
}

# ---------------------------------------------------------------------
# The first coordinator: links, aliases, clicks
# ---------------------------------------------------------------------
my @first = make($coord, 'postgres', $n_first, 'first');
for (1 .. 20)
{
	my $code = $coord->safe_psql('postgres',
		"SELECT shorturl.shorten('https://example.com/alias/$_', alias => 'promo-$_')");
	$url{$code} = "https://example.com/alias/$_";
	$clicks{$code} = 0;
}
# the first coordinator works before it is dumped
is(click($coord, 'postgres', 2, (sort keys %url)[ 0 .. 99 ]), 200, 'the first coordinator serves clicks');
check_shards('first coordinator', $coord, 'postgres');
my $dumped = state($coord, 'postgres');
like($dumped, qr/^shards: alpha:1:false,bravo:1:false,charlie:2:false\nkey: [0-9a-f]{32} /,
	'the first coordinator has its map and its key');

# ---------------------------------------------------------------------
# A. Restore into a new database of the same server
# ---------------------------------------------------------------------
dump_restore('A', $coord, 'postgres', $coord, 'restored');
check_restored('A (same server)', $coord, 'restored', $dumped, 'a');

# ---------------------------------------------------------------------
# B. Restore A into a new database of another server
# ---------------------------------------------------------------------
$dumped = state($coord, 'restored');
dump_restore('B', $coord, 'restored', $coord2, 'coordinator',
	'CREATE EXTENSION plproxy; CREATE EXTENSION postgres_fdw');
check_restored('B (another server)', $coord2, 'coordinator', $dumped, 'b');

done_testing();
