# 002_routing_crosscheck.pl: the extension's routing functions agree exactly
# with the independent Python reference (test/route_reference.py, over
# python3-xxhash) on thousands of generated keys: hash64, shard_mod and
# jump_hash for several counts, route(key, names, weights) over several maps,
# and route(key) over the same maps loaded into shorturl.shards; and
# link_key(code, domain), a coordinator's key of a link, on a few codes.
#
# Keys: text (ASCII, 2-, 3- and 4-byte UTF-8, empty, long), bytea (NUL and
# high bytes, every length around XXH64's 32-byte stripe) and bigint
# (extremes, negatives, powers of two, pseudo-random).  A deterministic
# generator makes every run check the same keys.
use strict;
use warnings;
use utf8;
use Encode qw(encode);
use File::Basename qw(dirname);
use File::Spec;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $python = '/usr/bin/python3';
plan skip_all => "$python with the xxhash module is needed (Debian: apt-get install python3-xxhash)"
  unless system($python, '-c', 'import xxhash') == 0;

my $reference = File::Spec->rel2abs(dirname(__FILE__) . '/../route_reference.py');

# xorshift64: a small deterministic generator, so a failure reproduces
my $rng = 11400714819323198485;    # 0x9E3779B97F4A7C15

sub next_random
{
	$rng ^= ($rng << 13);
	$rng ^= ($rng >> 7);
	$rng ^= ($rng << 17);
	return $rng;
}

sub random_below { return next_random() % $_[0]; }

# as_signed shows a 64-bit unsigned value as the bigint of the same bits
sub as_signed
{
	my ($u) = @_;
	use integer;
	return sprintf('%d', $u);
}

# ---------------------------------------------------------------------
# Keys: [kind, bytes] for text and bytea (text as UTF-8), [kind, decimal] for bigint
# ---------------------------------------------------------------------
my @keys;

# text: URL-like ASCII, then strings drawn from 1- to 4-byte UTF-8 characters
push @keys, map { [ 'text', $_ ] } ('', 'a', 'abc', 'https://example.com/');
for my $i (1 .. 2000)
{
	push @keys, [ 'text', "https://example.com/item/$i?ref=" . random_below(1_000_000) ];
}
my @alphabet = (
	'a' .. 'z', 'A' .. 'Z', '0' .. '9', ' ', '/', '%',
	'é', 'ü', 'ß', 'ø', "\x{0301}",                # 2-byte, with a combining accent
	'€', '東', '京', '語', 'ア', "\x{FFFD}",         # 3-byte
	'🙂', '𝄞', "\x{1F1EB}", "\x{10FFFF}");         # 4-byte, up to the last code point
for my $i (1 .. 2000)
{
	my $len = $i <= 1900 ? 1 + random_below(40) : 1000 + random_below(4000);
	my $s = join '', map { $alphabet[ random_below(scalar @alphabet) ] } 1 .. $len;
	push @keys, [ 'text', encode('UTF-8', $s) ];
}

# bytea: every length from 0 to 100 (XXH64 reads 32-byte stripes, then 8, 4, 1),
# with NUL and high bytes, and a few long ones
for my $i (0 .. 2999)
{
	my $len = $i < 2800 ? $i % 101 : 100 + random_below(5000);
	my $b = join '', map { chr(random_below(256)) } 1 .. $len;
	$b = "\0" x $len if $i % 101 == 7;    # all-NUL keys of each length
	push @keys, [ 'bytea', $b ];
}

# bigint: the extremes, 0 and +-1, +-2^k and their neighbours, pseudo-random values
push @keys, map { [ 'bigint', $_ ] } ('-9223372036854775808', '-9223372036854775807',
	'-1', '0', '1', '9223372036854775806', '9223372036854775807');
for my $k (1 .. 62)
{
	for my $d (-1, 0, 1)
	{
		my $v = (1 << $k) + $d;
		push @keys, [ 'bigint', sprintf('%d', $v) ], [ 'bigint', sprintf('%d', -$v) ];
	}
}
for my $i (1 .. 3000)
{
	push @keys, [ 'bigint', as_signed(next_random()) ];
}
cmp_ok(scalar @keys, '>=', 10_000, 'at least 10,000 keys');

# ---------------------------------------------------------------------
# Counts and maps (names as Perl strings, weights as decimal strings that
# PostgreSQL and Python parse to the same double)
# ---------------------------------------------------------------------
my @counts = (1, 2, 3, 7, 10, 1000, 65536, 2147483647);
my @maps = (
	[ 'unequal weights', [qw(alpha bravo charlie delta)], [qw(1 2 3 4)] ],
	[ 'UTF-8 names', [ 'zürich', '東京', 'alpha', '🙂' ], [qw(1.5 1.5 0.25 0.75)] ],
	[ 'names that prefix each other', [qw(a ab abc b B)], [qw(1 1 1 1 1)] ],
	[
		'20 equal weights and 5 doubled',
		[ map { sprintf('s%02d', $_) } 1 .. 25 ],
		[ ('1') x 20, ('2') x 5 ]
	],
	[
		'100 shards, random weights',
		[ map { "shard-$_" } 1 .. 100 ],
		[ map { sprintf('%.3f', 0.1 + random_below(9900) / 1000) } 1 .. 100 ]
	],
	[ 'one shard', ['only'], ['0.001'] ],
	# Weights at the bounds of their range, [1e-9, 1e9] (shorturl.shards'
	# CHECK): equal weights at each bound (one run of route_pick's fast path),
	# adjacent doubles just inside the upper bound (one run each), the whole
	# range in one map, and the doubles just inside both bounds.
	[ 'equal weights 1e-9', [qw(x y z)], [ '1e-9', '1e-9', '1e-9' ] ],
	[ 'equal weights 1e9', [qw(x y z)], [ '1e9', '1e9', '1e9' ] ],
	[
		'adjacent weights below 1e9',
		[qw(x y z)], [ '1e9', '999999999.9999999', '999999999.9999998' ]
	],
	[ 'unequal weights near 1e-9', [qw(x y z)], [ '1e-9', '2e-9', '1.5e-9' ] ],
	[ 'weights 1e-9 to 1e9', [qw(lo mid hi)], [ '1e-9', '1', '1e9' ] ],
	[
		'weights just inside the bounds',
		[qw(lo hi)], [ '1.0000000000000003e-9', '999999999.9999999' ]
	],
);

# ---------------------------------------------------------------------
# The Python reference's answers
# ---------------------------------------------------------------------
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $spec_file = "$tmp/spec.json";
open my $fh, '>:raw', $spec_file or die "cannot write $spec_file: $!";
print $fh JSON::PP->new->utf8->canonical->encode(
	{
		mod => \@counts,
		jump => \@counts,
		maps => [ map { [ $_->[1], $_->[2] ] } @maps ]
	});
close $fh;

my $keys_file = "$tmp/keys.txt";
open $fh, '>:raw', $keys_file or die "cannot write $keys_file: $!";
for my $k (@keys)
{
	my ($kind, $v) = @$k;
	print $fh $kind eq 'bigint' ? "bigint $v\n" : "$kind " . unpack('H*', $v) . "\n";
}
close $fh;

my ($py_out, $py_err);
IPC::Run::run([ $python, $reference, $spec_file ], '<', $keys_file, '>', \$py_out, '2>', \$py_err)
  or die "route_reference.py failed: $py_err";
my @expected = split /\n/, $py_out;
is(scalar @expected, scalar @keys, 'the reference answered for every key');

# ---------------------------------------------------------------------
# The extension's answers, same columns, one row per key in key order
# ---------------------------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('crosscheck');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_shorturl'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');

# the keys, loaded through hex so no byte is at the mercy of quoting
my $load = "CREATE TABLE keys (id int PRIMARY KEY, kind text, t text, b bytea, i bigint);\n"
  . "INSERT INTO keys VALUES\n";
my @rows;
for my $n (0 .. $#keys)
{
	my ($kind, $v) = @{ $keys[$n] };
	my $hex = $kind eq 'bigint' ? '' : unpack('H*', $v);
	push @rows,
	    $kind eq 'text' ? "($n, 'text', convert_from('\\x$hex'::bytea, 'UTF8'), NULL, NULL)"
	  : $kind eq 'bytea' ? "($n, 'bytea', NULL, '\\x$hex'::bytea, NULL)"
	  :                    "($n, 'bigint', NULL, NULL, $v)";
}
$load .= join(",\n", @rows) . ";\n";
$node->safe_psql('postgres', $load);
is($node->safe_psql('postgres', 'SELECT count(*) FROM keys'), scalar @keys, 'every key loaded');

# by_kind applies an expression (with KEY for the key) to the row's key column
sub by_kind
{
	my ($expr) = @_;
	my %col = (text => 't', bytea => 'b', bigint => 'i');
	return 'CASE kind '
	  . join(' ', map { my $e = $expr =~ s/\bKEY\b/$col{$_}/gr; "WHEN '$_' THEN $e" } qw(text bytea bigint))
	  . ' END';
}

sub sql_text { my $h = unpack('H*', encode('UTF-8', $_[0])); return "convert_from('\\x$h'::bytea, 'UTF8')"; }
sub sql_array { return 'ARRAY[' . join(', ', @_) . ']'; }
sub name_hex { return "encode(convert_to($_[0], 'UTF8'), 'hex')"; }

my @columns = (by_kind('shorturl.hash64(KEY)'));
push @columns, map { by_kind("shorturl.shard_mod(KEY, $_)") } @counts;
push @columns, map { by_kind("shorturl.jump_hash(KEY, $_)") } @counts;
for my $m (@maps)
{
	my $names = sql_array(map { sql_text($_) } @{ $m->[1] });
	my $weights = sql_array(map { "'$_'::float8" } @{ $m->[2] });
	push @columns, name_hex(by_kind("shorturl.route(KEY, $names, $weights)"));
}
my @labels = ('hash64', (map { "shard_mod(key, $_)" } @counts),
	(map { "jump_hash(key, $_)" } @counts),
	(map { "route(key, names, weights), $_->[0]" } @maps));

my @got = map { [ split /\t/ ] } split /\n/, $node->safe_psql('postgres',
	'SELECT ' . join(" || E'\\t' || ", map { "($_)::text" } @columns) . ' FROM keys ORDER BY id');
is(scalar @got, scalar @keys, 'the extension answered for every key');
my @want = map { [ split /\t/ ] } @expected;

# compare checks one answer per key against the reference's, showing a few misses
sub compare
{
	my ($label, $have, $want) = @_;
	my @bad;
	for my $n (0 .. $#keys)
	{
		my ($h, $w) = ($have->[$n] // '(none)', $want->[$n] // '(none)');
		next if $h eq $w;
		my ($kind, $v) = @{ $keys[$n] };
		$v = unpack('H*', substr($v, 0, 16)) unless $kind eq 'bigint';
		push @bad, "key $n ($kind $v): extension $h, reference $w";
	}
	is(scalar @bad, 0, "$label agrees with the reference on all " . scalar(@keys) . ' keys');
	diag(join("\n", @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ])) if @bad;
}

for my $c (0 .. $#columns)
{
	compare($labels[$c], [ map { $_->[$c] } @got ], [ map { $_->[$c] } @want ]);
}

# route(key) over each map loaded into shorturl.shards agrees with the
# reference's route over that map.  The map changes within one session, so this
# also checks that the cached map follows each change.
my $route_col = 1 + 2 * scalar @counts;
for my $m (0 .. $#maps)
{
	my ($label, $names, $weights) = @{ $maps[$m] };
	my $sql = "TRUNCATE shorturl.shards;\n"
	  . 'INSERT INTO shorturl.shards (name, weight) VALUES '
	  . join(', ', map { '(' . sql_text($names->[$_]) . ", '$weights->[$_]')" } 0 .. $#$names)
	  . ";\nSELECT " . name_hex(by_kind('shorturl.route(KEY)')) . ' FROM keys ORDER BY id';
	compare("route(key) over shorturl.shards, $label",
		[ split /\n/, $node->safe_psql('postgres', $sql) ],
		[ map { $_->[ $route_col + $m ] } @want ]);
}

# link_key(code, domain), the key a coordinator routes a link by, agrees
# with the reference's, and route() of it with the reference's route
my @links = ([ 'promo', undef ], [ 'promo', '' ], [ 'promo', 'ACME.link' ], [ 'Ab3-x_9', 'go.acme.com' ],
	[ 'x', 'xn--bcher-kva.example' ]);
my $lk_py = join "\n", map {
	my ($c, $d) = @$_;
	my ($out, $err);
	IPC::Run::run([ $python, '-c', 'import sys; sys.path.insert(0, sys.argv[1]); import route_reference as r; '
		  . 'print(r.link_key(sys.argv[2], None if sys.argv[3] == "-" else sys.argv[3]))',
		dirname($reference), $c, $d // '-' ], '>', \$out, '2>', \$err)
	  or die "route_reference.py failed: $err";
	chomp $out;
	$out;
} @links;
my $lk_sql = $node->safe_psql('postgres', join "\n",
	map { my ($c, $d) = @$_; 'SELECT shorturl.link_key(' . sql_text($c) . ', ' . (defined $d ? sql_text($d) : 'NULL') . ');' } @links);
is($lk_sql, $lk_py, 'link_key() agrees with the reference (code, or lower(domain)/code)');

$node->stop;
done_testing();
