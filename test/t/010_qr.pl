# 010_qr.pl: shorturl.qr_png() and shorturl.qr_svg() draw QR codes that a
# real decoder reads back exactly, with the quiet zone and the size the
# README promises, and refuse what cannot be a QR code with the right
# SQLSTATE.
#
# - labels: IMMUTABLE, STRICT, PARALLEL SAFE, commented, and PUBLIC may
#   execute them (pure functions, like base62_encode);
# - bad inputs first: empty text (22023), text over a version 40 symbol's
#   capacity at level M (54000, at the exact byte and digit boundaries),
#   scale outside 1..32 (22023), NULL (NULL: the functions are STRICT);
# - each PNG: the PNG signature, a 1-bit grayscale IHDR, unfiltered rows,
#   a width and height of (modules + 8) * scale, a white quiet zone exactly
#   4 modules wide (the finder patterns start right after it), and
#   zbarimg (zbar-tools) decodes it to the input, byte for byte;
# - each SVG: an XML declaration, one path with a viewBox of modules + 8,
#   crispEdges, runs merged and kept 4 modules from the edge, and, drawn
#   by rsvg-convert (ImageMagick, which zbarimg reads through, has no SVG
#   reader in Debian's libmagickcore-6.q16-6), decoded to the input;
# - inputs: a typical short URL, a URL of 1,000 characters, one with
#   non-ASCII UTF-8 in its path, and one of Latin-1 letters in a LATIN1
#   database, whose code still holds UTF-8 (what readers expect).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Compress::Zlib qw(compress crc32 uncompress);
use Encode qw(encode);
use IPC::Run;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

for my $tool (qw(zbarimg rsvg-convert))
{
	system("command -v $tool >/dev/null") == 0
	  or die "$tool is needed (zbar-tools, librsvg2-bin: TEST_PACKAGES in scripts/lib.sh)";
}

# every psql of this test speaks UTF-8, whatever its database's encoding
$ENV{PGCLIENTENCODING} = 'UTF8';

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $node = ShortURL::Test::node('qr');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');

# QR version 2 (25 modules): the most a short URL of 15 to 26 bytes needs
my $short = 'https://sho.rt/Ab3xYz9';
my $long = 'https://example.com/landing?' . join('&', map { "utm_param$_=value$_" } 1 .. 60);
$long = substr($long, 0, 1000);
my $utf8 = encode('UTF-8', "https://example.org/caf\x{e9}/\x{65e5}\x{672c}\x{8a9e}?q=\x{fc}ber");

# quote makes a SQL literal of a byte string (dollar quoting: no escapes)
sub quote
{
	my ($s) = @_;
	die "input contains the quote tag" if $s =~ /\$qr\$/;
	return "\$qr\$$s\$qr\$";
}

# bytes returns a bytea query's value as a byte string
sub bytes
{
	my ($db, $sql) = @_;
	return pack 'H*', $node->safe_psql($db, "SELECT encode(($sql), 'hex')");
}

# run_tool runs a command; returns its standard output, or dies with its
# standard error
sub run_tool
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', '/dev/null', '>', \$out, '2>', \$err)
	  or return "($cmd[0] failed: $err)";
	return $out;
}

# decode writes bytes to a file and returns what zbarimg reads in it (its
# trailing newline removed); -Sbinary keeps zbar from converting the text
my $file_no = 0;

sub decode
{
	my ($bytes, $ext) = @_;
	my $file = "$tmp/qr" . ++$file_no . ".$ext";
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh $bytes;
	close $fh;
	if ($ext eq 'svg')
	{
		my $png = "$file.png";
		run_tool('rsvg-convert', '--zoom=8', '--format=png', '--output', $png, $file);
		$file = $png;
	}
	my $out = run_tool('zbarimg', '--raw', '-q', '-Sbinary', $file);
	$out =~ s/\n\z//;
	return $out;
}

# png_image parses a PNG: its signature, IHDR fields, chunk types and
# inflated rows
sub png_image
{
	my ($png) = @_;
	my %img = (signature => substr($png, 0, 8), chunks => []);
	my ($pos, $idat) = (8, '');

	while ($pos + 12 <= length $png)
	{
		my ($len, $type) = unpack 'N a4', substr($png, $pos, 8);
		my $data = substr($png, $pos + 8, $len);
		@img{qw(width height depth color filter_method interlace)} =
		  unpack 'N N C C x C C', $data
		  if $type eq 'IHDR';
		$idat .= $data if $type eq 'IDAT';
		push @{ $img{chunks} }, $type;
		$pos += 12 + $len;
	}
	$img{raw} = uncompress($idat) // '';
	return \%img;
}

# dark tells whether pixel (x, y) of a 1-bit grayscale image is black (0)
sub dark
{
	my ($img, $x, $y) = @_;
	my $stride = 1 + int(($img->{width} + 7) / 8);
	my $byte = ord substr($img->{raw}, $y * $stride + 1 + int($x / 8), 1);
	return !(($byte >> (7 - $x % 8)) & 1);
}

# png_layout checks the rows and the quiet zone of an image at scale
# pixels per module; returns '' or what is wrong
sub png_layout
{
	my ($img, $scale) = @_;
	my ($w, $q) = ($img->{width}, 4 * $scale);
	my $stride = 1 + int(($w + 7) / 8);

	return "inflated to " . length($img->{raw}) . " bytes, not " . $stride * $w
	  if length $img->{raw} != $stride * $w;
	for my $y (0 .. $w - 1)
	{
		my $filter = ord substr($img->{raw}, $y * $stride, 1);
		return "row $y has filter $filter" if $filter != 0;
		for my $x (0 .. $w - 1)
		{
			my $in_zone = $x < $q || $y < $q || $x >= $w - $q || $y >= $w - $q;
			return "quiet zone pixel ($x, $y) is black" if $in_zone && dark($img, $x, $y);
		}
	}
	# the three finder patterns' outer corners lie right inside the zone
	for my $corner ([ $q, $q ], [ $w - $q - 1, $q ], [ $q, $w - $q - 1 ])
	{
		return "finder corner (@$corner) is white" unless dark($img, @$corner);
	}
	return '';
}

# enlarge returns a 1-bit grayscale image $k times as wide and high, as a
# PNG of its own (nearest neighbour: no pixel is invented)
sub enlarge
{
	my ($img, $k) = @_;
	my $w = $img->{width};
	my $raw = '';
	my $chunk = sub {
		my ($type, $data) = @_;
		return pack('N', length $data) . $type . $data . pack('N', crc32($type . $data));
	};

	for my $y (0 .. $w - 1)
	{
		my $bits = join '', map { (dark($img, $_, $y) ? '0' : '1') x $k } 0 .. $w - 1;
		$raw .= ("\0" . pack('B*', $bits)) x $k;
	}
	return "\x89PNG\r\n\x1a\n"
	  . $chunk->('IHDR', pack('N N C C C C C', $w * $k, $w * $k, 1, 0, 0, 0, 0))
	  . $chunk->('IDAT', compress($raw))
	  . $chunk->('IEND', '');
}

# svg_modules checks an SVG's shape; returns its modules per side (viewBox
# minus the quiet zone) or what is wrong
sub svg_modules
{
	my ($svg) = @_;

	return 'no XML declaration' unless $svg =~ /\A<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/;
	return 'not one path' unless (() = $svg =~ /<path /g) == 1;
	return 'no crispEdges' unless $svg =~ /shape-rendering="crispEdges"/;
	my ($side) = $svg =~ /viewBox="0 0 (\d+) \1"/ or return 'no square viewBox';
	my ($d) = $svg =~ / d="([^"]*)"/;
	my (%end, $min, $max);
	while ($d =~ /\GM(\d+) (\d+)h(\d+)v1h-\3z/gc)
	{
		my ($x, $y, $run) = ($1, $2, $3);
		return "run at ($x, $y) continues the previous one" if ($end{$y} // -1) == $x;
		$end{$y} = $x + $run;
		$min = $x if !defined $min || $x < $min;
		$min = $y if $y < $min;
		$max = $x + $run if !defined $max || $x + $run > $max;
		$max = $y + 1 if $y + 1 > $max;
	}
	return 'path data not all runs' if (pos($d) // 0) != length $d;
	return "dark modules span $min..$max of $side" if $min != 4 || $max != $side - 4;
	return $side - 8;
}

# ---------------------------------------------------------------------
# Labels and privileges
# ---------------------------------------------------------------------
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s %s %s %s %s %s', p.oid::regprocedure, p.provolatile,
	         p.proisstrict, p.proparallel, obj_description(p.oid, 'pg_proc') IS NOT NULL,
	         has_function_privilege('public', p.oid, 'EXECUTE')), E'\n' ORDER BY p.oid::regprocedure::text)
	FROM pg_proc p
	WHERE p.pronamespace = 'shorturl'::regnamespace AND p.proname LIKE 'qr%'}),
	"shorturl.qr_png(text,integer) i t s t t\nshorturl.qr_svg(text) i t s t t",
	'IMMUTABLE, STRICT, PARALLEL SAFE, commented, PUBLIC may execute');

# ---------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------
my %bad = (
	"SELECT shorturl.qr_svg('')" => '22023: cannot make a QR code of an empty string',
	"SELECT shorturl.qr_png('')" => '22023: cannot make a QR code of an empty string',
	"SELECT shorturl.qr_png('x', 0)" => '22023: scale must be between 1 and 32, not 0',
	"SELECT shorturl.qr_png('x', 33)" => '22023: scale must be between 1 and 32, not 33',
	"SELECT shorturl.qr_png('x', -2147483648)" => '22023: scale must be between 1 and 32, not -2147483648',
	"SELECT shorturl.qr_svg(repeat('x', 2332))" => '54000: text is too long for a QR code',
	"SELECT shorturl.qr_png(repeat('x', 2332))" => '54000: text is too long for a QR code',
	"SELECT shorturl.qr_svg(repeat('7', 5597))" => '54000: text is too long for a QR code',
	"SELECT shorturl.qr_svg(repeat('x', 10000000))" => '54000: text is too long for a QR code',
	# two bytes each in UTF-8: 1166 characters are 2332 bytes
	"SELECT shorturl.qr_svg(repeat('\x{c3}\x{a9}', 1166))" => '54000: text is too long for a QR code',);
for my $sql (sort keys %bad)
{
	is(ShortURL::Test::sql_error($node, 'postgres', $sql), $bad{$sql}, "refused: $sql");
}
my (undef, undef, $detail) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT shorturl.qr_svg(repeat('x', 2332))");
like($detail,
	qr/DETAIL:  The text is 2332 bytes long in UTF-8; a QR code at error correction level M holds 2331 bytes of any text, and up to 5596 when it is all digits\./,
	'too long: the detail gives the length and the capacity');
is($node->safe_psql('postgres',
		'SELECT shorturl.qr_svg(NULL) IS NULL AND shorturl.qr_png(NULL) IS NULL AND shorturl.qr_png($$x$$, NULL) IS NULL'),
	't', 'NULL in, NULL out (STRICT)');

# the capacity of a version 40 symbol at level M, exactly: 2331 bytes, 5596 digits
for my $sql ("shorturl.qr_svg(repeat('x', 2331))", "shorturl.qr_svg(repeat('7', 5596))")
{
	is(svg_modules($node->safe_psql('postgres', "SELECT $sql")), 177,
		"fits a version 40 symbol: $sql");
}

# ---------------------------------------------------------------------
# PNG and SVG decode to the input
# ---------------------------------------------------------------------
my @cases = (
	[ 'short URL', 'postgres', $short, 4 ],
	[ 'short URL at scale 1', 'postgres', $short, 1 ],
	[ 'short URL at scale 10', 'postgres', $short, 10 ],
	[ 'short URL at scale 32', 'postgres', $short, 32 ],
	[ 'URL of 1,000 characters', 'postgres', $long, 4 ],
	[ 'URL of 1,000 characters at scale 1', 'postgres', $long, 1 ],
	[ 'non-ASCII URL', 'postgres', $utf8, 4 ],
	[ 'non-ASCII URL at scale 10', 'postgres', $utf8, 10 ],);

$node->safe_psql('postgres',
	"CREATE DATABASE latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql('latin1', 'CREATE EXTENSION pg_shorturl');
# the client sends UTF-8 (PGCLIENTENCODING); the server holds LATIN1
push @cases, [ 'non-ASCII URL in a LATIN1 database', 'latin1', encode('UTF-8', "https://example.org/caf\x{e9}?q=\x{fc}ber"), 4 ];

is(length $long, 1000, 'the long URL is 1,000 characters');
for my $case (@cases)
{
	my ($name, $db, $input, $scale) = @$case;
	my $lit = quote($input);
	my $call = $scale == 4 ? "shorturl.qr_png($lit)" : "shorturl.qr_png($lit, scale => $scale)";
	my $png = bytes($db, "SELECT $call");
	my $img = png_image($png);
	my $svg = $node->safe_psql($db, "SELECT shorturl.qr_svg($lit)");
	my $modules = svg_modules($svg);

	is($img->{signature}, "\x89PNG\r\n\x1a\n", "$name: PNG signature");
	is("@{$img->{chunks}}[0, -1]", 'IHDR IEND', "$name: IHDR first, IEND last");
	is(join(',', @$img{qw(depth color interlace)}), '1,0,0', "$name: 1-bit grayscale, not interlaced");
	like($modules, qr/^\d+$/, "$name: SVG is one path of runs in a quiet zone");
	ok($modules =~ /^\d+$/ && $modules >= 21 && $modules <= 177 && ($modules - 17) % 4 == 0, "$name: $modules modules is a QR version");
	is("$img->{width}x$img->{height}", ($modules + 8) * $scale . 'x' . ($modules + 8) * $scale,
		"$name: PNG is (modules + 8) * scale pixels square");
	is(png_layout($img, $scale), '', "$name: unfiltered rows, 4-module white quiet zone");
	# zbar reads no code at 1 pixel a module (pyzbar issue 74): at scale 1,
	# it reads the same pixels enlarged
	is(decode($scale == 1 ? enlarge($img, 4) : $png, 'png'), $input,
		"$name: zbarimg reads the PNG" . ($scale == 1 ? ' (enlarged 4 times)' : ''));
	is(decode($svg, 'svg'), $input, "$name: zbarimg reads the SVG");
}
is(svg_modules($node->safe_psql('postgres', 'SELECT shorturl.qr_svg(' . quote($short) . ')')), 25,
	'a short URL takes version 2 (25 modules)');
is($node->safe_psql('postgres',
		'SELECT shorturl.qr_png(' . quote($short) . ') = shorturl.qr_png(' . quote($short) . ', 4)'),
	't', 'scale defaults to 4');

$node->stop;
done_testing();
