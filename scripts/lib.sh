# scripts/lib.sh: helpers shared by scripts/demo.sh and scripts/test.sh.
#
# Both scripts run as root on Debian 12: they install what is missing from
# Debian's archive, build and install the extension, and run PostgreSQL
# servers as the unprivileged "postgres" user, since initdb refuses root.
# Sourced, not executed.

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
RUN_USER=postgres

# What building needs, and what the test suite needs on top of it.
BUILD_PACKAGES=(make gcc "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR"
	libxxhash-dev libsodium-dev libicu-dev libpq-dev "postgresql-$PG_MAJOR-plproxy"
	libqrencode-dev libpng-dev)
TEST_PACKAGES=(clang libclang-rt-14-dev libipc-run-perl python3 python3-xxhash
	bison flex libperl-dev locales zbar-tools librsvg2-bin
	git pgxnclient dpkg-dev debhelper postgresql-server-dev-all
	curl prometheus-postgres-exporter
	python3-psycopg python3-psycopg-pool python3-aiohttp chromium fonts-dejavu-core)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The script that sourced this file and its arguments, for require_root.
SCRIPT_PATH=$(readlink -f "$0")
SCRIPT_ARGS=("$@")

# require_root returns as root or not at all: a script run by another user
# runs again through sudo, with the settings it reads from the environment,
# so the README's commands work as written both for root on a fresh Debian
# 12 (which has no sudo) and for a user with sudo rights.
require_root() {
	local keep
	[ "$(id -u)" -eq 0 ] && return 0
	command -v sudo >/dev/null ||
		die "run this as root (it installs packages and the extension); there is no sudo here"
	keep=$(compgen -e | grep -E '^(PG_VERSIONS|PG_CONFIG|FUZZ_|UNIT_|BENCH_|PACKAGE_|PG_SHORTURL_)' | paste -sd, -) || true
	printf '%s needs root (it installs packages and the extension): running it with sudo\n' \
		"${SCRIPT_PATH##*/}" >&2
	exec sudo ${keep:+--preserve-env="$keep"} -- "$SCRIPT_PATH" "${SCRIPT_ARGS[@]}"
}

# ensure_packages installs those of the named packages that are missing.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_and_install builds from a clean tree (with -Werror if asked) and
# installs into the PostgreSQL whose pg_config is $2 (default: Debian's 15).
build_and_install() {
	local werror=${1:-} pg_config=${2:-$PG_BIN/pg_config}
	say "building pg_shorturl${werror:+ with -Werror} for $("$pg_config" --version)"
	make -C "$REPO" -s clean PG_CONFIG="$pg_config"
	make -C "$REPO" -s ${werror:+WERROR=1} PG_CONFIG="$pg_config" 2>&1 | tee "$REPO/.build.log"
	if grep -q 'warning:' "$REPO/.build.log"; then
		rm -f "$REPO/.build.log"
		die "the build printed warnings"
	fi
	rm -f "$REPO/.build.log"
	make -C "$REPO" -s install PG_CONFIG="$pg_config" >/dev/null
}

as_user() { runuser -u "$RUN_USER" -- "$@"; }

# port_in_use tells whether something accepts TCP connections on the port.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints the first port from $1 upwards that nothing listens on.
free_port() {
	local p=$1
	while port_in_use "$p"; do p=$((p + 1)); done
	echo "$p"
}

# scratch_server_start DIR [CONF...] creates a cluster in DIR/server owned by
# the unprivileged user, listening only on a Unix socket in DIR (port 5432
# names the socket; no TCP port is taken), appends the named configuration
# files, and starts it.  Connect with PGHOST=DIR PGPORT=5432 PGUSER=postgres.
scratch_server_start() {
	local dir=$1 conf
	shift
	chown "$RUN_USER:" "$dir"
	as_user "$PG_BIN/initdb" -D "$dir/server" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		for conf in "$@"; do cat "$conf"; done
	} >>"$dir/server/postgresql.conf"
	as_user "$PG_BIN/pg_ctl" -D "$dir/server" -l "$dir/server.log" -w start >/dev/null
}

# scratch_server_stop DIR stops the server scratch_server_start started.
scratch_server_stop() {
	as_user "$PG_BIN/pg_ctl" -D "$1/server" -m fast stop >/dev/null 2>&1 || true
}

# ensure_test_locale generates the German locale a coordinator test runs a
# shard with (lc_messages), so that the test proves the coordinator reads
# SQLSTATEs, not translated messages.
ensure_test_locale() {
	# grep reads it all: with -q it may stop early and SIGPIPE fail the pipe
	locale -a 2>/dev/null | grep -i '^de_DE\.utf-\?8$' >/dev/null && return 0
	say "generating the locale de_DE.UTF-8 for the tests"
	sed -i 's/^# *\(de_DE\.UTF-8 UTF-8\)/\1/' /etc/locale.gen
	grep -q '^de_DE\.UTF-8 UTF-8' /etc/locale.gen || echo 'de_DE.UTF-8 UTF-8' >>/etc/locale.gen
	locale-gen >/dev/null
}
