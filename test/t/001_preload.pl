# 001_preload.pl: a server that preloads pg_shorturl starts, creates the
# extension, answers through it, and keeps working across a restart.  The
# seed of the restart and crash tests of later features.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_shorturl'");
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'pg_shorturl', 'library is preloaded');

$node->safe_psql('postgres', 'CREATE EXTENSION pg_shorturl');
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'pg_shorturl'"),
	$node->safe_psql('postgres',
		"SELECT default_version FROM pg_available_extensions WHERE name = 'pg_shorturl'"),
	'extension created at its default version');
is($node->safe_psql('postgres',
		"SELECT shorturl.base62_encode(9223372036854775807)"),
	'AzL8n0Y58m7', 'base62_encode answers in a preloaded server');

$node->restart;
is($node->safe_psql('postgres',
		"SELECT shorturl.base62_decode('AzL8n0Y58m7')"),
	'9223372036854775807', 'extension still answers after a restart');

$node->stop;
done_testing();
