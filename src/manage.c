/*-------------------------------------------------------------------------
 *
 * manage.c
 *	  What the management functions need of C: a link's live count and
 *	  resetting it, and the shard side of moving links between shards.
 *
 * The management functions (get_link, list_links, update_link,
 * disable_link, enable_link, delete_link, reset_visits) are PL/pgSQL and SQL in
 * the extension script, SECURITY DEFINER with a pinned search_path: an
 * application role needs no table privileges to manage its links.  What
 * they cannot do in SQL is here: reading and resetting the clicks shared
 * memory holds for a link, exactly, within the caller's transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "clicks.h"
#include "compat.h"
#include "flush.h"
#include "lookup.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(shorturl_live_visits);

/*
 * shorturl_live_visits implements _live_visits(link_id bigint) RETURNS
 * bigint: the count visits() gives, for a link the caller found; in a
 * transaction that reset the link, the clicks made since the reset, the
 * count it will have when the reset commits (update_link() decides on it
 * whether the link is exhausted).
 */
Datum
shorturl_live_visits(PG_FUNCTION_ARGS)
{
	int64		link_id = PG_GETARG_INT64(0);

	if (flush_reset_here(link_id))
		PG_RETURN_INT64(clicks_pending(link_id));
	PG_RETURN_INT64(clicks_live_visits(link_id));
}

PG_FUNCTION_INFO_V1(shorturl_reset_link);

/*
 * shorturl_reset_link implements _reset_link(link_id bigint) RETURNS
 * bigint, reset_visits() for a link the caller found and locked: the count
 * goes back to zero when the transaction commits, clicks not yet flushed
 * included, and the function returns the count it had.
 */
Datum
shorturl_reset_link(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(flush_reset_link(PG_GETARG_INT64(0)));
}

PG_FUNCTION_INFO_V1(shorturl_reset_visits);

/*
 * shorturl_reset_visits implements 0.6's reset_visits(code text) RETURNS
 * bigint (0.7 has it in PL/pgSQL, with an owner, over _reset_link):
 * the link's count goes back to zero when the transaction commits, clicks
 * not yet flushed included, and the function returns the count it had.
 * NULL for an unknown code.  This, not an UPDATE of the tables, is how an
 * owner resets a count: shared memory holds clicks the tables do not.
 */
Datum
shorturl_reset_visits(PG_FUNCTION_ARGS)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	link_row	row;

	if (!lookup_link(NULL, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code), "", 0,
					 GetActiveSnapshot(), false, &row, NULL) || !row.found)
		PG_RETURN_NULL();
	/* what it removes, shared memory and tables, is the count it had */
	PG_RETURN_INT64(flush_reset_link(row.id));
}

/* int8_args unpacks a bigint[] argument without NULLs */
static int64 *
int8_args(ArrayType *a, const char *name, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int64	   *out;

	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, n);
	out = palloc(sizeof(int64) * Max(1, *n));
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", name)));
		out[i] = DatumGetInt64(elems[i]);
	}
	return out;
}

/* true while move_out() deletes the links it moves (see _moving()) */
static bool moving = false;

PG_FUNCTION_INFO_V1(shorturl_moving);

/*
 * shorturl_moving implements _moving() RETURNS boolean, which the trigger
 * that retires deleted aliases asks: a move is no deletion.  A flag of this
 * backend's C code, so no setting a user could change can fake it.
 */
Datum
shorturl_moving(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(moving);
}

PG_FUNCTION_INFO_V1(shorturl_move_out);

/*
 * shorturl_move_out implements move_out(ids bigint[]) RETURNS bigint, the
 * old shard's side of a rebalance: it deletes the links (a move, so their
 * aliases are not retired) and leaves for each a row in
 * shorturl.moved_links with its final count, stored and unflushed clicks
 * together, which the coordinator adds to the new shard's copy and then
 * forgets.  Returns the links it moved.
 */
Datum
shorturl_move_out(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan_move;
	int			n;
	int64	   *ids = int8_args(PG_GETARG_ARRAYTYPE_P(0), "ids", &n);
	Datum	   *taken = palloc(sizeof(Datum) * Max(1, n));
	Oid			argtypes[2] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	int64		moved;

	for (int i = 0; i < n; i++)
		taken[i] = Int64GetDatum(flush_take_link(ids[i]));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PointerGetDatum(construct_array(taken, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	spi_begin();
	moving = true;
	PG_TRY();
	{
		spi_run(spi_plan(&plan_move,
						 "WITH gone AS (DELETE FROM shorturl.links WHERE id = ANY ($1)"
						 "              RETURNING id, code, domain)"
						 " INSERT INTO shorturl.moved_links (id, code, domain, visits)"
						 " SELECT g.id, g.code, g.domain,"
						 "        coalesce((SELECT c.visits FROM shorturl.visit_counts c WHERE c.link_id = g.id), 0)"
						 "      + coalesce((SELECT sum(p.visits) FROM shorturl.pending_visits p WHERE p.link_id = g.id), 0)"
						 "      + t.taken"
						 "   FROM gone g JOIN ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS t(id, taken)"
						 "     ON t.id = g.id"
						 " ON CONFLICT (id) DO UPDATE SET visits = excluded.visits, moved_at = excluded.moved_at",
						 2, argtypes),
				values, NULL, false, SPI_OK_INSERT);
		moved = (int64) SPI_processed;
	}
	PG_FINALLY();
	{
		moving = false;
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_INT64(moved);
}

PG_FUNCTION_INFO_V1(shorturl_add_visits);

/*
 * shorturl_add_visits implements add_visits(ids bigint[], visits bigint[]),
 * the new shard's side of a rebalance: the last clicks a moved link got on
 * its old shard join its count here, in the table and in a limited link's
 * total in shared memory.  Each link's are added once: shorturl.arrived_links
 * remembers which arrived, so a coordinator that asks again after a lost
 * answer adds nothing twice.
 */
Datum
shorturl_add_visits(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan_arrive;
	int			n;
	int			m;
	int64	   *ids = int8_args(PG_GETARG_ARRAYTYPE_P(0), "ids", &n);
	int64	   *visits = int8_args(PG_GETARG_ARRAYTYPE_P(1), "visits", &m);

	if (n != m)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("ids and visits differ in length: %d and %d", n, m)));
	spi_begin();
	for (int i = 0; i < n; i++)
	{
		Oid			argtypes[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(ids[i])};

		if (visits[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("visits must not be negative, not " INT64_FORMAT, visits[i])));
		/* once per link, so a coordinator's retry adds nothing twice */
		spi_run(spi_plan(&plan_arrive,
						 "INSERT INTO shorturl.arrived_links (id) VALUES ($1) ON CONFLICT DO NOTHING",
						 1, argtypes),
				values, NULL, false, SPI_OK_INSERT);
		if (SPI_processed == 1 && visits[i] > 0)
			flush_add_visits(ids[i], visits[i]);
	}
	SPI_finish();
	PG_RETURN_VOID();
}
