/*-------------------------------------------------------------------------
 *
 * cluster.c
 *	  C helpers of the coordinator (links sharded over several servers).
 *
 * The coordinator itself is SQL and PL/pgSQL in the extension script
 * (add_shard, remove_shard, rebalance, coordinator_*): it keeps a foreign
 * server per shard, reads and moves links through postgres_fdw foreign
 * tables, and calls shard functions through dblink.  What needs C is here:
 * splitting a libpq connection string into a foreign server's options and
 * a user mapping's, and the lock a rebalance and the coordinator's
 * lookups share.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "pg_shorturl.h"

PG_FUNCTION_INFO_V1(shorturl_conninfo_options);

/*
 * shorturl_conninfo_options implements conninfo_options(conninfo text)
 * RETURNS TABLE (keyword text, value text): the options a libpq connection
 * string sets, as libpq itself parses it (both key=value and URI forms).
 */
Datum
shorturl_conninfo_options(PG_FUNCTION_ARGS)
{
	char	   *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *err = NULL;
	PQconninfoOption *options;

#if PG_VERSION_NUM >= 150000
	InitMaterializedSRF(fcinfo, 0);
#else
	{
		TupleDesc	desc;
		MemoryContext old;

		if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
			!(rsinfo->allowedModes & SFRM_Materialize))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("set-valued function called in context that cannot accept a set")));
		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		rsinfo->returnMode = SFRM_Materialize;
		rsinfo->setDesc = CreateTupleDescCopy(desc);
		rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
		MemoryContextSwitchTo(old);
	}
#endif

	options = PQconninfoParse(conninfo, &err);
	if (options == NULL)
	{
		char	   *msg = err ? pstrdup(err) : pstrdup("out of memory");
		size_t		len = strlen(msg);

		if (err)
			PQfreemem(err);
		/* libpq ends its messages with a newline */
		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid connection string: %s", msg)));
	}

	for (PQconninfoOption *o = options; o->keyword != NULL; o++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (o->val == NULL || o->val[0] == '\0')
			continue;
		values[0] = CStringGetTextDatum(o->keyword);
		values[1] = CStringGetTextDatum(o->val);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PQconninfoFree(options);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(shorturl_lock_rebalance);

/*
 * shorturl_lock_rebalance implements lock_rebalance(exclusive boolean): a
 * transaction-level lock of pg_shorturl's own class.  The coordinator's
 * lookups take it shared while they ask the shards where a code is; a
 * rebalance takes it exclusively while it copies a batch of links, so no
 * lookup can miss a link that is between its old and new shard.
 */
Datum
shorturl_lock_rebalance(PG_FUNCTION_ARGS)
{
	bool		exclusive = PG_GETARG_BOOL(0);
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, SHORTURL_LOCK_REBALANCE);
	(void) LockAcquire(&tag, exclusive ? ExclusiveLock : ShareLock, false, false);
	PG_RETURN_VOID();
}
