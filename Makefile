# pg_shorturl: PGXS build.
#
#   make                     build (zero warnings under -Wall -Wextra)
#   make WERROR=1            the same, with warnings as errors (what CI does)
#   make install             install into the PostgreSQL found by $(PG_CONFIG)
#   make installcheck        pg_regress, isolation and TAP suites against a
#                            server with shared_preload_libraries = 'pg_shorturl'
#                            (scripts/test.sh sets one up; see README.md)

EXTENSION  = pg_shorturl
MODULE_big = pg_shorturl

OBJS = \
	src/base62.o \
	src/base62_sql.o \
	src/routing.o \
	src/routing_sql.o \
	src/permute.o \
	src/validate.o \
	src/links.o \
	src/counters.o \
	src/purge.o \
	src/worker.o \
	src/cluster.o \
	src/pg_shorturl.o

DATA = $(wildcard sql/pg_shorturl--*.sql)

# One pg_regress file per feature: sql/<name>.sql against expected/<name>.out.
REGRESS = base62 routing store counters sharding upgrade

# Isolation specs live in test/isolation/specs, expected output beside them.
ISOLATION = routing_cache routing_cache_rr max_visits resolve_flush resolve_purge
ISOLATION_OPTS = --inputdir=test/isolation

# TAP tests (PostgreSQL::Test::Cluster) live in test/t.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# -Wall -Wextra for our code; the server's headers are included as system
# headers (-isystem wins over PGXS's -I for the same directory), since some
# of their inline functions have unused parameters.
PG_CFLAGS = -Wall -Wextra $(if $(WERROR),-Werror)
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server) -I$(shell $(PG_CONFIG) --includedir)
# libpq only parses connection strings, for shorturl.add_shard()
SHLIB_LINK = -lm -lsodium -lpq

EXTRA_CLEAN = test/fuzz/build

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Isolation specs run in the regression database too: the one the test
# server's worker serves (test/pg_shorturl.conf), so clicks there are
# counted in shared memory.
ISOLATION_TESTDB = contrib_regression
