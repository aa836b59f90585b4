/*-------------------------------------------------------------------------
 *
 * legacy.c
 *	  C entry points that earlier versions' SQL definitions name and the
 *	  current version no longer has.
 *
 * PostgreSQL checks that a C function's symbol exists when the function is
 * created, and an installed extension keeps its old definitions until
 * ALTER EXTENSION UPDATE.  So that a database still at 0.5 keeps working,
 * and can be updated, after the library is replaced, every symbol a 0.5
 * definition names exists here.  Those whose function the update drops
 * report that the database must be updated (or, for the coordinator's, that
 * coordinators are now the extension pg_shorturl_coordinator).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

/* older_version reports a call of a function the update removes */
static void
older_version(const char *name, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("function shorturl.%s() belongs to pg_shorturl 0.5 and no longer works with this library", name),
			 errhint("%s", hint)));
}

#define COORDINATOR_HINT \
	"Coordinators are now the extension pg_shorturl_coordinator; see \"Upgrading a 0.5 cluster\" in the README."

PG_FUNCTION_INFO_V1(shorturl_conninfo_options);
PG_FUNCTION_INFO_V1(shorturl_lock_rebalance);
PG_FUNCTION_INFO_V1(shorturl_shard_partition_hash);
PG_FUNCTION_INFO_V1(shorturl_shard_partition_hash32);
PG_FUNCTION_INFO_V1(shorturl_forget_counters);

Datum
shorturl_conninfo_options(PG_FUNCTION_ARGS)
{
	older_version("conninfo_options", COORDINATOR_HINT);
	PG_RETURN_NULL();
}

Datum
shorturl_lock_rebalance(PG_FUNCTION_ARGS)
{
	older_version("lock_rebalance", COORDINATOR_HINT);
	PG_RETURN_NULL();
}

Datum
shorturl_shard_partition_hash(PG_FUNCTION_ARGS)
{
	older_version("shard_partition_hash", COORDINATOR_HINT);
	PG_RETURN_NULL();
}

Datum
shorturl_shard_partition_hash32(PG_FUNCTION_ARGS)
{
	older_version("shard_partition_hash32", COORDINATOR_HINT);
	PG_RETURN_NULL();
}

Datum
shorturl_forget_counters(PG_FUNCTION_ARGS)
{
	older_version("forget_counters", "Run ALTER EXTENSION pg_shorturl UPDATE.");
	PG_RETURN_NULL();
}
