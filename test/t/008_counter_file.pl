# 008_counter_file.pl: the file in which a clean shutdown leaves the
# unflushed clicks (pg_stat/pg_shorturl_counters.stat) is restored at most
# once in the history of the data, and only by the data directory that
# wrote it, as it was left.  Each case counts visits exactly.
#
# Every server runs with flush_interval = 1h, so clicks stay in shared
# memory until the server stops: what a restart carries is known exactly.
# (A worker flushes once as it starts, so restored clicks reach the tables
# right after a start.)
#
# - (a) once: clean stop, start: "restored N" and the worker's first flush
#   writes N; a second restart restores nothing (visits stay N, not 2N);
#   the file of an earlier shutdown put back is refused ("the data changed
#   after it was written"); restored clicks do not come back after an
#   immediate stop;
# - (b) standby: a cold copy of a cleanly stopped primary (save file
#   included) started as a streaming standby of the restarted primary does
#   not restore, and once promoted and flushed it reads the primary's
#   flushed count: 300, not 600 (the 0.5 defect); the old primary itself,
#   stopped with clicks pending and started as a standby, refuses its own
#   file ("the server starts in recovery");
# - (c) copy: a copy of the data directory started as an independent
#   server does not restore (its directory is another inode), while the
#   original does: the clicks count once across both;
# - (d) damaged or foreign: a save file from another cluster, truncated
#   (in its entries or its analytics' section or records), with a damaged
#   analytics record, a damaged magic
#   number or an impossible entry count is ignored with its reason logged,
#   removed, and the server starts with its own flushed count; a file of
#   the previous layout (version 4) and the same server's intact file are
#   restored.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(copy);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

# Offsets in the save file's header (struct dump_header in src/counters_file.c):
# magic, version, pg_major and record_size (uint32 each), then
# system_identifier, checkpoint, datadir_ino, count (uint64)
my $OFFSET_MAGIC   = 0;
my $OFFSET_VERSION = 4;
my $OFFSET_COUNT   = 40;
my $HEADER_SIZE    = 48;
# since version 5 the entries are followed by the analytics' section
# (struct saved_header in src/analytics.c: two uint32, two uint64; with
# no dimension value or visitor pending, nothing more)
my $ANALYTICS_HEADER_SIZE = 24;

my @conf = ("shorturl.flush_interval = '1h'", "shorturl.purge_interval = '1h'");

# server makes a started server with the extension and the given links
sub server
{
	my ($name, $init, @codes) = @_;
	my $node = ShortURL::Test::node($name, { init => $init }, @conf);

	$node->safe_psql('postgres', join ";\n", 'CREATE EXTENSION pg_shorturl',
		map { "SELECT shorturl.shorten('https://example.com/$_', alias => '$_')" } @codes);
	ok(ShortURL::Test::wait_served($node, 'postgres'), "$name: the worker serves postgres");
	return $node;
}

# visits is a link's visits() on a node
sub visits
{
	my ($node, $code) = @_;
	return $node->safe_psql('postgres', "SELECT shorturl.visits('$code')");
}

# start starts a node and returns the save-file lines it logged, joined
sub start
{
	my ($node) = @_;
	my $offset = ShortURL::Test::log_offset($node);
	$node->start;
	return join "\n", ShortURL::Test::restore_lines($node, $offset);
}

# stored_is waits until the tables hold $n visits of a link (written by
# the worker's flush); returns whether they did within 20 s
sub stored_is
{
	my ($node, $code, $n) = @_;
	return ShortURL::Test::wait_until($node, 'postgres',
		'SELECT ' . ShortURL::Test::stored_expr('l') . " = $n FROM shorturl.links l WHERE l.code = '$code'");
}

# restored and refused are the lines start() returns
sub restored { return "pg_shorturl: restored $_[0] unflushed visits saved at shutdown"; }

sub refused
{
	return 'pg_shorturl: not restoring unflushed visits from "pg_stat/pg_shorturl_counters.stat": '
	  . $_[0];
}

# patch overwrites bytes of a file at an offset
sub patch
{
	my ($path, $offset, $bytes) = @_;
	open my $fh, '+<:raw', $path or die "could not open $path: $!";
	seek $fh, $offset, 0 or die;
	print $fh $bytes or die;
	close $fh or die;
	return;
}

# ---------------------------------------------------------------------
# (a) Restored once: the file goes as it is read
# ---------------------------------------------------------------------
my $once = server('once', {}, 'a1');
my $n = ShortURL::Test::clicks($once, 'postgres', 2, 100, 'a1');
is(ShortURL::Test::stored($once, 'postgres', 'a1'), 'a1=0', 'once: no click reached the tables (flush_interval = 1h)');
$once->stop;
my $file = ShortURL::Test::save_file($once);
ok(-e $file, 'once: a clean stop left the save file');
my $stale = $once->basedir . '/stale_counters.stat';
copy($file, $stale) or die "could not copy $file: $!";

# proves the first start restores exactly the N clicks, and removes the file
is(start($once), restored($n), "once: the first start restores $n visits");
ok(!-e $file, 'once: the save file is gone after the start');
is(visits($once, 'a1'), $n, "once: visits is exactly $n");
# proves the worker's first flush writes the restored clicks to the tables
ok(stored_is($once, 'a1', $n), "once: the worker's first flush writes the $n restored visits");

# proves the second restart restores nothing: the file went with the first
$once->stop;
ok(!-e $file, 'once: nothing pending, so the second clean stop leaves no save file');
is(start($once), '', 'once: the second start restores nothing and logs nothing about it');
is(visits($once, 'a1'), $n, "once: visits is exactly $n after the second restart, not " . 2 * $n);

# proves the file of an earlier shutdown, put back, is refused
$once->stop;
copy($stale, $file) or die "could not copy $stale: $!";
is(start($once), refused('the data changed after it was written'),
	'once: the save file of an earlier shutdown is refused: the data changed');
ok(!-e $file, 'once: the refused file is removed');
is(visits($once, 'a1'), $n, "once: visits is exactly $n, not " . 2 * $n);

# proves restored and flushed clicks do not come back after a crash
my $more = ShortURL::Test::clicks($once, 'postgres', 1, 30, 'a1');
$once->stop;
is(start($once), restored($more), "once: $more new clicks saved and restored");
ok(stored_is($once, 'a1', $n + $more), 'once: the worker writes them: the tables hold ' . ($n + $more));
$once->stop('immediate');
is(start($once), '', 'once: after an immediate stop nothing is restored, nor refused: no file was left');
is(visits($once, 'a1'), $n + $more, 'once: visits is exactly ' . ($n + $more) . ', each click once');
$once->stop;

# ---------------------------------------------------------------------
# (b) A cold copy started as a standby, then promoted
# ---------------------------------------------------------------------
my $primary = server('primary', { allows_streaming => 1 }, 'b1');
$n = ShortURL::Test::clicks($primary, 'postgres', 3, 100, 'b1');
$primary->stop;
ok(-e ShortURL::Test::save_file($primary), 'standby: the primary left a save file at its clean stop');
$primary->backup_fs_cold('cold');
ok(-e $primary->backup_dir . '/cold/pg_stat/pg_shorturl_counters.stat',
	'standby: the cold copy carries the save file');

is(start($primary), restored($n), "standby: the restarted primary restores its $n visits");
is(visits($primary, 'b1'), $n, "standby: the primary reads $n visits");

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'cold', has_streaming => 1);
# proves the hazard is real: the copy to be started holds the primary's file
ok(-e ShortURL::Test::save_file($standby) && -e $standby->data_dir . '/standby.signal',
	'standby: its data directory holds the save file and standby.signal');
my $said = start($standby);
# proves the standby refuses the file, for a reason it logs
like($said, qr/^\Q${\ refused('')}\E(the data directory is a copy|the server starts in recovery)$/,
	'standby: it does not restore the copied file, and says why');
note "standby: $said";
ok(!-e ShortURL::Test::save_file($standby), 'standby: the refused file is removed');
is($standby->safe_psql('postgres', 'SELECT mode FROM shorturl.stats'), 'standby', 'standby: it counts nothing (stats.mode standby)');

ok(stored_is($primary, 'b1', $n), "standby: the primary's worker flushes its $n restored visits");
$primary->wait_for_catchup($standby);
is(ShortURL::Test::stored($standby, 'postgres', 'b1'), "b1=$n", "standby: the flushed $n visits reach the standby by WAL");

$standby->promote;
ok(ShortURL::Test::wait_until($standby, 'postgres', 'SELECT NOT pg_is_in_recovery()'), 'standby: promoted');
ok(ShortURL::Test::wait_served($standby, 'postgres'), 'standby: after promotion a worker serves it');
is($standby->safe_psql('postgres', 'SELECT shorturl.flush()'), 0, 'standby: after promotion a flush has nothing to write');
# proves the defect of 0.5 is gone: the clicks counted once, 300 not 600
is(visits($standby, 'b1'), $n, "standby: after promotion and a flush visits is exactly $n, not " . 2 * $n);
is(ShortURL::Test::stored($standby, 'postgres', 'b1'), "b1=$n", "standby: the tables hold exactly $n");
$standby->stop;

# proves the original directory, restarted as a standby (an old primary
# rejoining after a failover), refuses its own file too
my $unflushed = ShortURL::Test::clicks($primary, 'postgres', 1, 50, 'b1');
$primary->stop;
ok(-e ShortURL::Test::save_file($primary), "standby: the primary saved its $unflushed unflushed clicks");
$primary->set_standby_mode;
is(start($primary), refused('the server starts in recovery'),
	'standby: the old primary started as a standby does not restore: the server starts in recovery');
ok(!-e ShortURL::Test::save_file($primary), 'standby: the refused file is removed');
is(ShortURL::Test::stored($primary, 'postgres', 'b1'), "b1=$n",
	"standby: the old primary's tables still hold exactly $n");
$primary->stop;

# ---------------------------------------------------------------------
# (c) A copy started as an independent server
# ---------------------------------------------------------------------
my $original = server('original', {}, 'c1');
$n = ShortURL::Test::clicks($original, 'postgres', 2, 100, 'c1');
$original->stop;
$original->backup_fs_cold('copy');
my $copy = PostgreSQL::Test::Cluster->new('copy');
$copy->init_from_backup($original, 'copy');
ok(-e ShortURL::Test::save_file($copy) && !-e $copy->data_dir . '/standby.signal',
	'copy: it holds the save file, and no standby.signal');
# proves a copy of the directory, even a clean primary, does not restore
is(start($copy), refused('the data directory is a copy'), 'copy: it does not restore: the data directory is a copy');
ok(!-e ShortURL::Test::save_file($copy), 'copy: the refused file is removed');
is(visits($copy, 'c1'), 0, 'copy: visits is 0 there');
# proves the original, the directory that wrote the file, does restore
is(start($original), restored($n), "copy: the original restores its $n visits");
is(visits($original, 'c1'), $n, "copy: the original reads exactly $n");
ok(stored_is($original, 'c1', $n), "copy: the original's worker writes the $n restored visits");
is($copy->safe_psql('postgres', 'SELECT shorturl.flush()'), 0, 'copy: a flush on the copy has nothing to write');
is(ShortURL::Test::stored($copy, 'postgres', 'c1') . ' ' . ShortURL::Test::stored($original, 'postgres', 'c1'),
	"c1=0 c1=$n", "copy: the tables hold 0 on the copy and $n on the original: the clicks count once");
$copy->stop;
$original->stop;

# ---------------------------------------------------------------------
# (d) A save file from another cluster, or damaged
# ---------------------------------------------------------------------
my $foreign = server('foreign', {}, 'd1');
my $foreign_n = ShortURL::Test::clicks($foreign, 'postgres', 2, 50, 'd1');
my $y = server('damaged', {}, 'd1');
my $key = q{SELECT 'shorturl.links'::regclass::oid || '/' || id FROM shorturl.links WHERE code = 'd1'};
# proves a wrongly restored foreign file would land on this server's d1
is($y->safe_psql('postgres', $key), $foreign->safe_psql('postgres', $key),
	'damaged: d1 has the same table OID and link id on both servers');
$n = ShortURL::Test::clicks($y, 'postgres', 2, 25, 'd1');
is($y->safe_psql('postgres', 'SELECT shorturl.flush()'), $n, "damaged: $n visits flushed");
$foreign->stop;
my $foreign_file = $foreign->basedir . '/foreign_counters.stat';
copy(ShortURL::Test::save_file($foreign), $foreign_file) or die "could not copy: $!";
$file = ShortURL::Test::save_file($y);

# damage runs 20 clicks, stops the server, breaks its save file with
# $break, starts it, and checks the start refused the file for $why
sub damage
{
	my ($what, $why, $break) = @_;

	ShortURL::Test::clicks($y, 'postgres', 1, 20, 'd1');
	$y->stop;
	ok(-e $file, "damaged, $what: a clean stop left the save file");
	$break->();
	is(start($y), refused($why), "damaged, $what: the server starts and refuses the file: $why");
	ok(!-e $file, "damaged, $what: the refused file is removed");
	is(visits($y, 'd1'), $n, "damaged, $what: visits is exactly the $n flushed");
	return;
}

# proves a file of another system identifier is refused
damage('foreign', 'it belongs to another database system',
	sub { copy($foreign_file, $file) or die "could not copy: $!"; });
# proves a file cut inside its entries restores none of them, not some
damage('truncated entries', 'it is truncated',
	sub { truncate $file, (-s $file) - $ANALYTICS_HEADER_SIZE - 10 or die; });
# proves a file cut inside its analytics' section restores nothing either
damage('truncated analytics', 'it is truncated', sub { truncate $file, (-s $file) - 10 or die; });

# analytics_record_at is the offset of the first dimension value's record
# in the save file: after the header, the counter records and the
# analytics' header
sub analytics_record_at
{
	open my $fh, '<:raw', $file or die "could not open $file: $!";
	read($fh, my $header, $HEADER_SIZE) == $HEADER_SIZE or die 'short header';
	close $fh;
	my $record_size = unpack('L<', substr($header, 12, 4));
	my $count = unpack('Q<', substr($header, $OFFSET_COUNT, 8));
	return $HEADER_SIZE + $count * $record_size + $ANALYTICS_HEADER_SIZE;
}

# a click with a referrer leaves three dimension values in the section
sub referrer_click
{
	$y->safe_psql('postgres', q{SELECT shorturl.resolve('d1', NULL, 'https://x.example/')});
	return;
}
# proves a file cut inside its analytics' records restores nothing
referrer_click();
damage('truncated analytics records', 'it is truncated', sub { truncate $file, (-s $file) - 10 or die; });
# proves a dimension record with an impossible dimension (offset 20 in
# struct dim_key) is refused, not used as an index
referrer_click();
damage('analytics record', 'it is damaged', sub { patch($file, analytics_record_at() + 20, pack('l<', 7)); });
# proves a file shorter than its header is refused
damage('truncated header', 'it is truncated', sub { truncate $file, $HEADER_SIZE - 10 or die; });
# proves a damaged magic number is refused
damage('magic', 'it was written by another version of pg_shorturl',
	sub { patch($file, $OFFSET_MAGIC, 'XXXX'); });
# proves an entry count larger than the table is refused
damage('count', 'it holds more entries than the table',
	sub { patch($file, $OFFSET_COUNT, pack('Q<', 1 << 40)); });

# proves a file of the previous layout (version 4, written by 0.12's
# library: no analytics' section) is still restored after an upgrade
ShortURL::Test::clicks($y, 'postgres', 1, 20, 'd1');
$y->stop;
patch($file, $OFFSET_VERSION, pack('L<', 4));
truncate $file, (-s $file) - $ANALYTICS_HEADER_SIZE or die;
is(start($y), restored(20), 'version 4: a file without the analytics\' section restores its 20 visits');
$n += 20;
is(visits($y, 'd1'), $n, "version 4: visits is exactly $n");

# proves the refusals above are the file's fault: the intact file restores
ShortURL::Test::clicks($y, 'postgres', 1, 20, 'd1');
$y->stop;
is(start($y), restored(20), 'damaged: the same server restores its own intact file: 20 visits');
is(visits($y, 'd1'), $n + 20, 'damaged: visits is exactly ' . ($n + 20));
$y->stop;

done_testing();
