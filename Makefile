# pg_shorturl: PGXS build.
#
#   make                     build (zero warnings under -Wall -Wextra)
#   make WERROR=1            the same, with warnings as errors (what CI does)
#   make install             install into the PostgreSQL found by $(PG_CONFIG)
#   make installcheck        pg_regress, isolation and TAP suites, each on a
#                            throw-away server of its own that preloads the
#                            library (test/pg_shorturl.conf): no prepared
#                            server is needed
#
# PG_CONFIG=/path/to/pg_config builds against another PostgreSQL
# (scripts/test.sh does it for 18).

EXTENSION  = pg_shorturl
MODULE_big = pg_shorturl

# Pure cores (no PostgreSQL headers) first, then the files that use the
# server, lowest layer first.
OBJS = \
	src/base62.o \
	src/routing.o \
	src/permute.o \
	src/codespace.o \
	src/validate.o \
	src/idn.o \
	src/hll.o \
	src/visitdims.o \
	src/gcra.o \
	src/tinylfu.o \
	src/spi_util.o \
	src/catalog.o \
	src/config_cache.o \
	src/base62_sql.o \
	src/routing_sql.o \
	src/url_check.o \
	src/codes.o \
	src/lookup.o \
	src/urlcache.o \
	src/counters.o \
	src/counters_file.o \
	src/dbstate.o \
	src/upstream.o \
	src/claim.o \
	src/clicks.o \
	src/analytics.o \
	src/ratelimit.o \
	src/blocklist.o \
	src/ship.o \
	src/flush.o \
	src/apply.o \
	src/purge.o \
	src/stats.o \
	src/worker.o \
	src/launcher.o \
	src/shorten.o \
	src/resolve.o \
	src/manage.o \
	src/series.o \
	src/qr.o \
	src/legacy.o \
	src/pg_shorturl.o

DATA = $(wildcard sql/pg_shorturl--*.sql)

# One pg_regress file per feature: sql/<name>.sql against expected/<name>.out.
REGRESS = base62 routing store counters manage rls analytics abuse metrics replicas upgrade
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=test/pg_shorturl.conf

# Isolation specs live in test/isolation/specs, expected output beside them.
ISOLATION = routing_cache routing_cache_rr max_visits resolve_flush resolve_purge manage \
	link_in_transaction analytics_series abuse url_cache
ISOLATION_OPTS = --inputdir=test/isolation --temp-instance=tmp_check_iso \
	--temp-config=test/pg_shorturl.conf

# TAP tests (PostgreSQL::Test::Cluster) live in test/t.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# SHORTURL_TEST_CONF=file adds its settings to every server the suites
# start: pg_regress and isolation read it after test/pg_shorturl.conf, and
# the TAP tests' servers (ShortURL::Test::node, here and in the
# coordinator) through PG_SHORTURL_TEST_CONF.  scripts/test.sh runs the
# suites a second time with test/url_cache_off.conf.
ifdef SHORTURL_TEST_CONF
REGRESS_OPTS += --temp-config=$(abspath $(SHORTURL_TEST_CONF))
ISOLATION_OPTS += --temp-config=$(abspath $(SHORTURL_TEST_CONF))
export PG_SHORTURL_TEST_CONF = $(abspath $(SHORTURL_TEST_CONF))
endif

# -Wall -Wextra for our code; the server's headers are included as system
# headers (-isystem wins over PGXS's -I for the same directory), since some
# of their inline functions have unused parameters.
PG_CFLAGS = -Wall -Wextra $(if $(WERROR),-Werror)
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server) -I$(shell $(PG_CONFIG) --includedir)
# libsodium: SipHash of the code permutation; ICU: internationalised host
# names and confusable detection in URL validation; libqrencode and libpng:
# the QR codes of qr_svg() and qr_png(); xxHash: the visitor hashes of the
# unique-visitor sketches; libpq: a standby ships its clicks to the primary
SHLIB_LINK = -lm -lsodium -licui18n -licuuc -lqrencode -lpng -lxxhash -lpq

EXTRA_CLEAN = test/fuzz/build test/unit/build tmp_check_regress tmp_check_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies (unless the server was configured with
# --enable-depend): every object is rebuilt when one of our headers
# changes, so a struct that grew in one never meets an object compiled
# with its old layout (shared memory read at the wrong offsets).
$(OBJS): $(wildcard $(srcdir)/src/*.h)

# make dist: the PGXN source archive pg_shorturl-<version>.zip of the
# committed tree (HEAD: commit first), with META.json at the root of its
# one directory, written to DIST_DIR (default: here).  test/meta/run.sh
# checks it.
# the version of the META.json the archive holds: HEAD's, not the work tree's
DIST_VERSION = $(shell git -C $(srcdir) show HEAD:META.json | sed -n '0,/^ *"version": *"\([^"]*\)".*/s//\1/p')
DIST_DIR ?= .
.PHONY: dist
dist:
	git -C $(srcdir) archive --format=zip --prefix=pg_shorturl-$(DIST_VERSION)/ \
		-o $(abspath $(DIST_DIR))/pg_shorturl-$(DIST_VERSION).zip HEAD

# after the include, which empties PROVE_FLAGS; appends to one given to make
override PROVE_FLAGS += -I test/perl

# The coordinator is an extension of its own, in coordinator/: built,
# installed and tested with the core (NO_COORDINATOR=1 leaves it out, for a
# quick run of some of the core's suites).
ifndef NO_COORDINATOR
all: coordinator-all
install: coordinator-install
# PROVE_TESTS=... on the command line picks tests of the core only
ifneq ($(origin PROVE_TESTS),command line)
installcheck: coordinator-installcheck
endif
clean: coordinator-clean
.PHONY: coordinator-all coordinator-install coordinator-installcheck coordinator-clean
coordinator-all:
	$(MAKE) -C coordinator all
coordinator-install:
	$(MAKE) -C coordinator install
coordinator-installcheck:
	$(MAKE) -C coordinator installcheck
coordinator-clean:
	$(MAKE) -C coordinator clean
endif
