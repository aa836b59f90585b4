# 011_import_formats.pl: the README's recipes for moving links out of
# YOURLS, Shlink and Kutt (under shorturl.import_links) work as written,
# against each project's own tables rebuilt in PostgreSQL.
#
# 1. the recipes are read out of README.md, so what runs here is what a
#    reader copies: for each shortener an export block and a load block;
# 2. YOURLS: yourls_url as includes/functions-install.php creates it
#    (MySQL types translated, see below), in a database of its own, with
#    the export's query run and printed as `mysql --batch` prints it
#    (emulated: a header line, tabs, NULL as NULL, \0 \t \n \\ escaped),
#    then the README's \copy FROM: every good row imported with its code,
#    URL, created_at (YOURLS's UTC), clicks and title exact, a backslash
#    kept, an empty title and the word NULL read as none (as the README
#    warns), a tab or a newline decoded (so refused as a control
#    character), a reserved word, a code too long, an ftp:// URL rejected
#    with their reasons;
# 3. YOURLS: a carriage return in a title stops that \copy, as the README
#    warns;
# 4. Shlink: short_urls, domains, tags, short_urls_in_tags and visits as
#    its Doctrine mapping creates them, visits counted per short URL
#    (orphan visits not), the same code on two domains, an expired link
#    kept expired, tags in order, a title longer than pg_shorturl's 500,
#    'admin', a multi-segment slug, a dot and an unknown domain rejected;
# 5. Kutt: links and domains as its knex models create them, visit_count
#    and expire_in carried over, microseconds kept, banned and
#    password-protected links left out, 'blog' and a dot rejected;
# 6. each: a second import answers unchanged for every imported row and
#    the same reason for every rejected one.
#
# Every session runs in Asia/Kathmandu (+05:45), so a recipe that leaned
# on the session's time zone would be caught.
use strict;
use warnings;
use utf8;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Cwd qw(getcwd);
use Encode qw(encode);
use JSON::PP;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ShortURL::Test;

$ENV{PGCLIENTENCODING} = 'UTF8';
$ENV{PGTZ} = 'Asia/Kathmandu';

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $node = ShortURL::Test::node('import_formats');
my $json = JSON::PP->new->utf8;

# sql runs SQL (a character string) in a database and returns its output
sub sql
{
	my ($db, $text) = @_;
	return $node->safe_psql($db, encode('UTF-8', $text));
}

# lit makes a SQL literal of a character string, or NULL of undef
sub lit
{
	my ($s) = @_;
	return 'NULL' unless defined $s;
	die "literal contains the quote tag" if $s =~ /\$q\$/;
	return "\$q\$$s\$q\$";
}

# script runs a psql script in a database with the working directory in
# $tmp (the recipes name their files relative to it); returns the exit
# code, standard output and standard error
sub script
{
	my ($db, $text) = @_;
	my ($out, $err) = ('', '');
	my $cwd = getcwd();
	chdir $tmp or die "$tmp: $!";
	my $rc = $node->psql($db, encode('UTF-8', $text),
		stdout => \$out, stderr => \$err, on_error_stop => 1);
	chdir $cwd or die "$cwd: $!";
	return ($rc, $out, $err);
}

# ---------------------------------------------------------------------
# The recipes, from README.md
# ---------------------------------------------------------------------

my $readme = slurp_file("$FindBin::Bin/../../README.md");
utf8::decode($readme);
my ($section) = $readme =~ /^#### shorturl\.import_links\(.*?\n(.*?)^#{2,4} /ms
  or die "README.md has no import_links section";
my %recipe;
for my $name (qw(YOURLS Shlink Kutt))
{
	my ($item) = $section =~ /^- \*\*\Q$name\E\*\*(.*?)(?=^- \*\*|\z)/ms
	  or die "README.md has no $name recipe";
	my @blocks;
	while ($item =~ /((?:^ {6}\S.*\n)+)/mg)
	{
		(my $block = $1) =~ s/^ {6}//mg;
		push @blocks, $block;
	}
	is(scalar @blocks, 2, "$name recipe: an export block and a load block");
	$recipe{$name} = \@blocks;
}

$node->safe_psql('postgres', "CREATE DATABASE $_") for qw(yourls shlink kutt shorturl);
sql('shorturl', q{
	CREATE EXTENSION pg_shorturl;
	-- as the README asks: the other shorteners' domains first
	INSERT INTO shorturl.domains (domain) VALUES ('go.example.com'), ('kt.example.com');
});

# import returns import_links()'s answer for import_src as sorted lines
sub import
{
	return [ sort split /\n/, sql('shorturl', q{
		SELECT code || ' ' || outcome || coalesce(': ' || detail, '')
		FROM shorturl.import_links('import_src')}) ];
}

# links returns what pg_shorturl holds for these codes, one array per
# link: code, domain, url, created_at and expires_at in UTC, visits,
# title, tags; sorted by code and domain
sub links
{
	my (@codes) = @_;
	my $rows = sql('shorturl', 'SELECT json_agg(json_build_array(l.code, nullif(l.domain, \'\'), l.url,'
		  . " to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),"
		  . " to_char(l.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),"
		  . ' shorturl.visits(l.code, l.domain), l.title, l.tags) ORDER BY l.code, l.domain)'
		  . ' FROM shorturl.links l WHERE l.code = ANY (ARRAY['
		  . join(', ', map { lit($_) } @codes) . '])');
	return $json->decode($rows || '[]');
}

# check_import loads the export with the recipe's load block, imports it
# twice and compares with the rows' expected outcomes and fields
sub check_import
{
	my ($name, $rows) = @_;
	my ($rc, $out, $err) = script('shorturl', "DROP TABLE IF EXISTS import_src;\n$recipe{$name}[1]");
	is($rc, 0, "$name: the README's load block runs") or diag $err;

	my @answer = sort map { "$_->{code} $_->{outcome}" . (defined $_->{detail} ? ": $_->{detail}" : '') } @$rows;
	is_deeply(import(), \@answer, "$name: each row imported or rejected with its reason");

	my @good = grep { $_->{outcome} eq 'imported' } @$rows;
	my @want = map {
		[   $_->{code}, $_->{domain}, $_->{url}, $_->{created_at}, $_->{expires_at},
			$_->{visits}, $_->{title}, $_->{tags} ]
	} sort { $a->{code} cmp $b->{code} || ($a->{domain} // '') cmp ($b->{domain} // '') } @good;
	is_deeply(links(map { $_->{code} } @good), \@want,
		"$name: code, domain, URL, created_at, expires_at, visits, title and tags as in the source");

	s/ imported$/ unchanged/ for @answer;
	is_deeply(import(), \@answer, "$name: a second import changes nothing");
}

# ---------------------------------------------------------------------
# YOURLS
# ---------------------------------------------------------------------

# yourls_url as YOURLS 1.10.4 (commit b8c7882) creates it in MySQL, in
# PostgreSQL: keyword varchar(100) and url text, utf8mb4_bin, compare
# bytes, so COLLATE "C"; title text (utf8mb4_unicode_ci: only its
# comparisons differ); timestamp is a MySQL TIMESTAMP (whole seconds,
# stored in UTC and shown in the session's time zone), into which YOURLS
# writes PHP's date('Y-m-d H:i:s') under date_default_timezone_set('UTC'),
# so the mysql client shows the UTC wall-clock time: timestamp(0) without
# time zone holding that; clicks int(10) unsigned goes up to 4294967295,
# beyond integer: bigint with the range checked.  The secondary keys (ip,
# timestamp, url(30)) change nothing here and are left out.
sql('yourls', q{
	CREATE TABLE yourls_url (
		keyword varchar(100) COLLATE "C" NOT NULL DEFAULT '' PRIMARY KEY,
		url text COLLATE "C" NOT NULL,
		title text DEFAULT NULL,
		"timestamp" timestamp(0) NOT NULL DEFAULT current_timestamp,
		ip varchar(41) NOT NULL,
		clicks bigint NOT NULL CHECK (clicks BETWEEN 0 AND 4294967295)
	)});

my @yourls = (
	# a query string and a title with a comma and quotes
	{ code => 'ab1', url => 'https://example.com/search?q=a%20b&lang=fr#top',
	  title => q{Sale, "50%" off, it's back}, created_at => '2019-03-31 01:30:00', visits => 42 },
	# the same letters in another case; non-ASCII title; no clicks
	{ code => 'Ab1', url => 'https://example.org/caf%C3%A9',
	  title => 'Café crème, 日本語', created_at => '2020-02-29 23:59:59', visits => 0 },
	# backslashes, one before an n; the most clicks int(10) unsigned holds
	{ code => 'bs', url => 'https://example.net/path', title => q{C:\new\temp},
	  created_at => '2021-06-01 12:00:00', visits => 4294967295 },
	{ code => 'notitle', url => 'https://example.net/n', title => undef,
	  created_at => '2021-06-02 00:00:00', visits => 1 },
	# the README's two losses: an empty title and the word NULL become none
	{ code => 'empty', url => 'https://example.net/e', title => '', want_title => undef,
	  created_at => '2021-06-03 00:00:00', visits => 2 },
	{ code => 'word', url => 'https://example.net/w', title => 'NULL', want_title => undef,
	  created_at => '2021-06-04 00:00:00', visits => 3 },
	# \t and \n decoded, so refused
	{ code => 'tab', url => 'https://example.net/t', title => "Tab\there",
	  created_at => '2021-06-05 00:00:00', visits => 5,
	  outcome => 'rejected', detail => 'invalid character "\x09" at position 4 of title' },
	{ code => 'nl', url => 'https://example.net/l', title => "Line\nbreak",
	  created_at => '2021-06-06 00:00:00', visits => 6,
	  outcome => 'rejected', detail => 'invalid character "\x0A" at position 5 of title' },
	{ code => 'help', url => 'https://example.net/h', title => 'Help',
	  created_at => '2021-06-07 00:00:00', visits => 7,
	  outcome => 'rejected', detail => 'alias "help" is reserved' },
	# YOURLS takes keywords of up to 100 characters, pg_shorturl 64
	{ code => 'k' x 65, url => 'https://example.net/k', title => 'Long',
	  created_at => '2021-06-08 00:00:00', visits => 8,
	  outcome => 'rejected', detail => 'alias is too long: 65 characters, the maximum is 64' },
	{ code => 'ftp1', url => 'ftp://example.com/file.zip', title => 'FTP',
	  created_at => '2021-06-09 00:00:00', visits => 9,
	  outcome => 'rejected', detail => 'URL must start with http:// or https://' });

for my $r (@yourls)
{
	$r->{outcome} //= 'imported';
	sql('yourls', sprintf(
		'INSERT INTO yourls_url (keyword, url, title, "timestamp", ip, clicks) VALUES (%s, %s, %s, %s, %s, %s)',
		lit($r->{code}), lit($r->{url}), lit($r->{title}), lit($r->{created_at}),
		lit('203.0.113.7'), $r->{visits}));
	$r->{title} = $r->{want_title} if exists $r->{want_title};
	$r->{created_at} .= '.000000';
}

# mysql_batch writes what `mysql --batch -e "$query" $db > $file` writes,
# the query run here instead of in MySQL: the column names, tab-separated,
# then each row, NULL as NULL and every other value with NUL, tab, newline
# and backslash escaped as \0 \t \n \\ (safe_put_field() in MySQL's
# client/mysql.cc; a carriage return goes out as it is)
sub mysql_batch
{
	my ($db, $query, $file) = @_;
	my %escape = ("\0" => '\0', "\t" => '\t', "\n" => '\n', '\\' => '\\\\');

	sql($db, "CREATE VIEW mysql_out AS $query");
	my @cols = split /\n/, sql($db, q{
		SELECT attname FROM pg_attribute
		WHERE attrelid = 'mysql_out'::regclass AND attnum > 0 ORDER BY attnum});
	my $rows = $json->decode(sql($db,
			'SELECT coalesce(json_agg(json_build_array('
		  . join(', ', map { qq{"$_"::text} } @cols)
		  . ")), '[]') FROM mysql_out"));
	sql($db, 'DROP VIEW mysql_out');

	my $text = join("\t", @cols) . "\n";
	for my $row (@$rows)
	{
		$text .= join("\t", map { defined $_ ? s/([\0\t\n\\])/$escape{$1}/gr : 'NULL' } @$row) . "\n";
	}
	open my $fh, '>:raw', "$tmp/$file" or die "$tmp/$file: $!";
	print $fh encode('UTF-8', $text);
	close $fh;
}

my ($query, $mysql_db, $tsv) =
  $recipe{YOURLS}[0] =~ /\Amysql --batch -e "([^"]*)" (\w+) > (\S+)\n\z/
  or die "the YOURLS export is not one mysql --batch command: $recipe{YOURLS}[0]";
mysql_batch('yourls', $query, $tsv);
check_import('YOURLS', \@yourls);

# a carriage return, which mysql leaves as it is, stops the load
sql('yourls', q{INSERT INTO yourls_url VALUES ('cr', 'https://example.net/r', E'a\rb', '2021-07-01', '203.0.113.7', 1)});
mysql_batch('yourls', $query, $tsv);
my ($rc, $out, $err) = script('shorturl', "DROP TABLE import_src;\n$recipe{YOURLS}[1]");
isnt($rc, 0, 'YOURLS: a carriage return in a title stops the \copy');
like($err, qr/literal carriage return found in data/, 'YOURLS: ... with PostgreSQL\'s message');

# ---------------------------------------------------------------------
# Shlink
# ---------------------------------------------------------------------

# The tables as Shlink 5.0.2 (commit 59c62a2) maps them on PostgreSQL
# (module/Core/config/entities-mappings, through Doctrine DBAL): BIGINT
# IDENTITY keys; chronos_datetime is DBAL's datetime_immutable, that is
# timestamp(0) without time zone, a wall-clock time in Shlink's TIMEZONE
# (UTC here); TEXT original_url; long_url_hash BINARY(32) is bytea;
# title VARCHAR(512); the short code is unique per domain.  Columns the
# recipe does not read (visit_location_id, author_api_key_id) keep their
# types without the tables they refer to.
sql('shlink', q{
	CREATE TABLE domains (
		id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		authority varchar(255) NOT NULL UNIQUE,
		base_url_redirect text,
		regular_not_found_redirect text,
		invalid_short_url_redirect text);
	CREATE TABLE short_urls (
		id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		original_url text NOT NULL,
		long_url_hash bytea NOT NULL,
		short_code varchar(255) NOT NULL,
		date_created timestamp(0) without time zone NOT NULL,
		valid_since timestamp(0) without time zone,
		valid_until timestamp(0) without time zone,
		max_visits integer,
		import_source varchar(255),
		import_original_short_code varchar(255),
		domain_id bigint REFERENCES domains (id) ON DELETE RESTRICT,
		author_api_key_id bigint,
		title varchar(512),
		title_was_auto_resolved boolean NOT NULL DEFAULT false,
		crawlable boolean NOT NULL DEFAULT false,
		forward_query boolean NOT NULL DEFAULT true,
		CONSTRAINT unique_short_code_plus_domain UNIQUE (short_code, domain_id));
	CREATE TABLE tags (
		id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		name varchar(255) NOT NULL UNIQUE);
	CREATE TABLE short_urls_in_tags (
		short_url_id bigint NOT NULL REFERENCES short_urls (id) ON DELETE CASCADE,
		tag_id bigint NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
		PRIMARY KEY (short_url_id, tag_id));
	CREATE TABLE visits (
		id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		referer varchar(1024),
		date timestamp(0) without time zone NOT NULL,
		remote_addr varchar(256),
		user_agent varchar(512),
		short_url_id bigint REFERENCES short_urls (id) ON DELETE CASCADE,
		visit_location_id bigint,
		visited_url varchar(2048),
		type varchar(255) NOT NULL,
		potential_bot boolean NOT NULL DEFAULT false,
		redirect_url varchar(2048));
	INSERT INTO domains (authority) VALUES ('go.example.com'), ('other.example.com');
	INSERT INTO tags (name) VALUES ('sale, summer'), ('news');
	-- an orphan visit, which belongs to no short URL
	INSERT INTO visits (date, type) VALUES ('2022-01-01', 'invalid_short_url');
});

my @shlink = (
	{ code => 'promo', url => 'https://shop.example.com/sale?utm_source=sl&x=1',
	  title => 'Sale, "50%" off', tags => [ 'news', 'sale, summer' ],
	  created_at => '2022-01-10 08:00:00', visits => 3 },
	# the same code on another domain, non-ASCII title, no visits
	{ code => 'promo', domain => 'go.example.com', url => 'https://go.example.org/landing',
	  title => 'Ünïcödé — 日本', created_at => '2022-01-11 09:00:00',
	  expires_at => '2031-06-01 12:00:00', visits => 0 },
	# expired in Shlink: imported expired
	{ code => 'old', url => 'https://example.com/old', created_at => '2020-01-01 00:00:00',
	  expires_at => '2021-01-01 00:00:00', visits => 1, tags => ['news'] },
	# Shlink's titles go to 512 characters
	{ code => 'long', url => 'https://example.com/long', title => 'é' x 512,
	  created_at => '2022-02-01 00:00:00', visits => 2,
	  outcome => 'rejected', detail => 'title is too long: 512 characters, the maximum is 500' },
	{ code => 'admin', url => 'https://example.com/admin', created_at => '2022-02-02 00:00:00',
	  visits => 0, outcome => 'rejected', detail => 'alias "admin" is reserved' },
	# a multi-segment slug; a slug with a dot
	{ code => 'docs/setup', url => 'https://example.com/docs', created_at => '2022-02-03 00:00:00',
	  visits => 0, outcome => 'rejected', detail => 'invalid character "/" at position 5 of alias' },
	{ code => 'v1.2', url => 'https://example.com/v12', created_at => '2022-02-04 00:00:00',
	  visits => 0, outcome => 'rejected', detail => 'invalid character "." at position 3 of alias' },
	# a domain nobody added to shorturl.domains
	{ code => 'elsewhere', domain => 'other.example.com', url => 'https://example.com/else',
	  created_at => '2022-02-05 00:00:00', visits => 4,
	  outcome => 'rejected', detail => 'unknown domain "other.example.com"' });

for my $r (@shlink)
{
	$r->{outcome} //= 'imported';
	my $id = sql('shlink', sprintf(
		q{INSERT INTO short_urls (original_url, long_url_hash, short_code, date_created, valid_until, domain_id, title)
		  VALUES (%s, sha256(convert_to(%s, 'UTF8')), %s, %s, %s, (SELECT id FROM domains WHERE authority = %s), %s)
		  RETURNING id},
		lit($r->{url}), lit($r->{url}), lit($r->{code}), lit($r->{created_at}), lit($r->{expires_at}),
		lit($r->{domain}), lit($r->{title})));
	sql('shlink', sprintf(
		q{INSERT INTO short_urls_in_tags SELECT %d, id FROM tags WHERE name = %s}, $id, lit($_)))
	  for @{ $r->{tags} // [] };
	sql('shlink', sprintf(
		q{INSERT INTO visits (date, short_url_id, type, potential_bot)
		  SELECT now(), %d, 'valid_short_url', i = 1 FROM generate_series(1, %d) i}, $id, $r->{visits}));
	$r->{$_} .= '.000000' for grep { defined $r->{$_} } qw(created_at expires_at);
	$r->{tags} = undef if $r->{tags} && !@{ $r->{tags} };
}

($rc, $out, $err) = script('shlink', $recipe{Shlink}[0]);
is($rc, 0, "Shlink: the README's export runs on Shlink's tables") or diag $err;
check_import('Shlink', \@shlink);

# ---------------------------------------------------------------------
# Kutt
# ---------------------------------------------------------------------

# links and domains as Kutt 3.2.3 (commit fc832d7) creates them on
# PostgreSQL (server/models, through knex): increments() is serial,
# string() varchar(255), dateTime() and timestamps() timestamptz,
# uuid() uuid.  The users table they refer to is left out.
sql('kutt', q{
	CREATE TABLE domains (
		id serial PRIMARY KEY,
		banned boolean NOT NULL DEFAULT false,
		banned_by_id integer,
		address varchar(255) NOT NULL UNIQUE,
		homepage varchar(255),
		user_id integer,
		uuid uuid NOT NULL DEFAULT gen_random_uuid(),
		created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
		updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP);
	CREATE TABLE links (
		id serial PRIMARY KEY,
		address varchar(255) NOT NULL,
		description varchar(255),
		banned boolean NOT NULL DEFAULT false,
		banned_by_id integer,
		domain_id integer REFERENCES domains (id),
		password varchar(255),
		expire_in timestamptz,
		target varchar(2040) NOT NULL,
		user_id integer,
		visit_count integer NOT NULL DEFAULT 0,
		uuid uuid NOT NULL DEFAULT gen_random_uuid(),
		created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
		updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP);
	INSERT INTO domains (address) VALUES ('kt.example.com');
});

my @kutt = (
	{ code => 'kutt1', url => 'https://example.com/a?b=c&d=e', title => 'Hello, "world"',
	  created_at => '2023-05-06 07:08:09.123456', visits => 7 },
	{ code => 'kutt1', domain => 'kt.example.com', url => 'https://example.com/other',
	  title => 'Straße № 5', created_at => '2023-05-07 00:00:00.500000',
	  expires_at => '2030-01-01 00:00:00.000000', visits => 0 },
	# an empty description becomes no title
	{ code => 'nodesc', url => 'https://example.com/n', description => '', title => undef,
	  created_at => '2023-05-08 00:00:00.000000', visits => 1 },
	{ code => 'blog', url => 'https://example.com/blog', created_at => '2023-05-09 00:00:00.000000',
	  visits => 2, outcome => 'rejected', detail => 'alias "blog" is reserved' },
	# a dot, which LINK_CUSTOM_ALPHABET may allow
	{ code => 'v2.0', url => 'https://example.com/v20', created_at => '2023-05-10 00:00:00.000000',
	  visits => 3, outcome => 'rejected', detail => 'invalid character "." at position 3 of alias' },
	# left out of the export
	{ code => 'spam1', url => 'https://example.com/spam', created_at => '2023-05-11 00:00:00.000000',
	  visits => 4, banned => 1, outcome => 'left out' },
	{ code => 'secret', url => 'https://example.com/secret', created_at => '2023-05-12 00:00:00.000000',
	  visits => 5, password => '$2a$12$abcdefghijklmnopqrstuv', outcome => 'left out' });

for my $r (@kutt)
{
	$r->{outcome} //= 'imported';
	sql('kutt', sprintf(
		q{INSERT INTO links (address, description, banned, domain_id, password, expire_in, target, visit_count, created_at)
		  VALUES (%s, %s, %s, (SELECT id FROM domains WHERE address = %s), %s, %s, %s, %d, %s)},
		lit($r->{code}), lit($r->{description} // $r->{title}), $r->{banned} ? 'true' : 'false',
		lit($r->{domain}), lit($r->{password}), lit($r->{expires_at} && "$r->{expires_at}+00"),
		lit($r->{url}), $r->{visits}, lit("$r->{created_at}+00")));
}

($rc, $out, $err) = script('kutt', $recipe{Kutt}[0]);
is($rc, 0, "Kutt: the README's export runs on Kutt's tables") or diag $err;
check_import('Kutt', [ grep { $_->{outcome} ne 'left out' } @kutt ]);
is(sql('shorturl', q{SELECT count(*) FROM shorturl.links WHERE code IN ('spam1', 'secret')}),
	'0', 'Kutt: banned and password-protected links are not imported');

done_testing();
