/*-------------------------------------------------------------------------
 *
 * codes.c
 *	  Generated codes: the key and width segments in shorturl.code_key,
 *	  cached per backend, and the SQL functions around them.
 *
 * A link's id is the next value of shorturl.link_id_seq; a generated code
 * is that id placed in the code space of codespace.c (which width) and
 * permuted with the key (permute.c).  The key and the widths are data:
 * one row of shorturl.code_key, dumped and restored with the links.  The
 * row is made by the first shorten() (or set_code_width()), not by CREATE
 * EXTENSION, so every documented restore path, data-only ones included,
 * brings back the dumped key instead of racing an install-time one.
 *
 * Generation and width changes are serialised by table locks on
 * shorturl.code_key: every code generation holds ROW EXCLUSIVE (a fast-path
 * lock, cheap), set_code_width() takes SHARE ROW EXCLUSIVE, so no id is
 * encoded with a layout that a concurrent width change replaces.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "base62.h"
#include "catalog.h"
#include "codes.h"
#include "compat.h"
#include "config_cache.h"
#include "pg_shorturl.h"

/* The backend's cache of shorturl.code_key */
static struct
{
	config_cache cache;
	bool		has_key;		/* the row exists */
	codespace	space;
} key_cache;

/*
 * key_cache_callback: any relcache invalidation of shorturl.code_key (or of
 * every relation) makes the cached key stale.  The table's statement-level
 * trigger, shorturl.code_key_changed, queues one on every change.
 */
static void
key_cache_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	config_cache_invalidate(&key_cache.cache, relid);
}

/* bad_key_row reports a key row the loader cannot use */
static void
bad_key_row(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("shorturl.code_key is not usable: %s", what),
			 errhint("Restore the row from a backup; generated codes depend on it.")));
}

/* read_segments fills the space's segments from the row's two arrays */
static void
read_segments(codespace *cs, Datum from_d, Datum widths_d)
{
	ArrayType  *from_a = DatumGetArrayTypeP(from_d);
	ArrayType  *widths_a = DatumGetArrayTypeP(widths_d);
	Datum	   *from;
	Datum	   *widths;
	bool	   *from_nulls;
	bool	   *width_nulls;
	int			nfrom;
	int			nwidths;

	deconstruct_array(from_a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &from, &from_nulls, &nfrom);
	deconstruct_array(widths_a, INT4OID, 4, true, TYPALIGN_INT,
					  &widths, &width_nulls, &nwidths);
	if (nfrom != nwidths || nfrom < 1 || nfrom > CODESPACE_MAX_SEGMENTS)
		bad_key_row("width_from and widths differ in length");
	cs->nseg = nfrom;
	for (int k = 0; k < nfrom; k++)
	{
		if (from_nulls[k] || width_nulls[k])
			bad_key_row("a width segment is null");
		cs->seg[k].from_id = DatumGetInt64(from[k]);
		cs->seg[k].width = DatumGetInt32(widths[k]);
	}
	if (codespace_check(cs) != CODESPACE_OK)
		bad_key_row("the width segments are out of order or out of range");
}

/* load_key reads shorturl.code_key */
static void
load_key(void)
{
	Oid			relid = catalog_relid("code_key");
	Relation	rel;
	TupleDesc	desc;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tuple;
	AttrNumber	att_key = get_attnum(relid, "key");
	AttrNumber	att_from = get_attnum(relid, "width_from");
	AttrNumber	att_widths = get_attnum(relid, "widths");

	/* 0.5's table, before ALTER EXTENSION ... UPDATE, or one altered by hand */
	if (att_key == InvalidAttrNumber || att_from == InvalidAttrNumber ||
		att_widths == InvalidAttrNumber)
		catalog_not_ours("code_key", "it lacks the columns key, width_from and widths");

	key_cache.cache.loaded = false;
	key_cache.has_key = false;
	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	snapshot = config_cache_snapshot(&key_cache.cache);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	if ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull[3];
		Datum		key = heap_getattr(tuple, att_key, desc, &isnull[0]);
		Datum		from = heap_getattr(tuple, att_from, desc, &isnull[1]);
		Datum		widths = heap_getattr(tuple, att_widths, desc, &isnull[2]);
		bytea	   *k;

		if (isnull[0] || isnull[1] || isnull[2])
			bad_key_row("a column is null");
		k = DatumGetByteaPP(key);
		if (VARSIZE_ANY_EXHDR(k) != PERMUTE_KEY_BYTES)
			bad_key_row("the key is not 16 bytes");
		memcpy(key_cache.space.key, VARDATA_ANY(k), PERMUTE_KEY_BYTES);
		read_segments(&key_cache.space, from, widths);
		key_cache.has_key = true;
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	config_cache_loaded(&key_cache.cache, relid);
}

/*
 * make_key inserts the key row if there is none.  Two sessions that make
 * the first links at once meet on the row's primary key: the second waits
 * for the first and keeps its key.  Runs as the caller (shorten() and
 * set_code_width() are SECURITY DEFINER).
 */
static void
make_key(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("INSERT INTO shorturl.code_key (key)"
					" VALUES (shorturl.new_code_key())"
					" ON CONFLICT (singleton) DO NOTHING", false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not make the code key");
	SPI_finish();
	/* our own change: the trigger invalidated the cache, load it now */
	CommandCounterIncrement();
	load_key();
}

/*
 * codes_space returns the code space, loading it when due.  Without a key
 * row it returns NULL, or makes the row first when create.
 */
const codespace *
codes_space(bool create)
{
	if (config_cache_needs_load(&key_cache.cache))
		load_key();
	if (!key_cache.has_key)
	{
		if (!create)
			return NULL;
		make_key();
	}
	return &key_cache.space;
}

/*
 * codes_lock_space takes the lock every code generation holds to the end
 * of its transaction (see the file header).  Taking it also reads pending
 * invalidations, so a width change that committed is seen.
 */
void
codes_lock_space(void)
{
	LockRelationOid(catalog_relid("code_key"), RowExclusiveLock);
}

/* codes_encode returns the code of a link id, or reports why there is none */
text *
codes_encode(const codespace *cs, int64 id)
{
	char		buf[BASE62_MAX_DIGITS + 1];
	size_t		len;

	switch (codespace_encode(cs, id, buf, &len))
	{
		case CODESPACE_OK:
			break;
		case CODESPACE_BAD_ID:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("link id " INT64_FORMAT " is out of range", id),
					 errhint("Link ids are non-negative.")));
			break;
		case CODESPACE_EXHAUSTED:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the code space is exhausted"),
					 errdetail("Link id " INT64_FORMAT " needs a code wider than %d characters.",
							   id, PERMUTE_MAX_WIDTH)));
			break;
		case CODESPACE_OVERRUN:
		case CODESPACE_BAD_SEGMENTS:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("link id " INT64_FORMAT " falls outside the width segments of shorturl.code_key", id),
					 errdetail("A width segment starts before ids that the previous one already issued."),
					 errhint("Was shorturl.link_id_seq set back?  Set it past the highest id in shorturl.links.")));
			break;
	}
	return cstring_to_text_with_len(buf, (int) len);
}

/*
 * codes_decode gives the id a generated code came from, or returns false
 * when the text is no code of this database's space (an alias, another
 * key's code, or no key yet).
 */
bool
codes_decode(const char *code, int len, int64 *id)
{
	const codespace *cs = codes_space(false);

	return cs != NULL && codespace_decode(cs, code, (size_t) len, id);
}

/*
 * codes_last_issued gives the last id the code sequence handed out, or
 * returns false when it has handed out none.
 */
bool
codes_last_issued(int64 *id)
{
	bool		isnull;
	bool		issued = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.pg_sequence_last_value('shorturl.link_id_seq'::pg_catalog.regclass)",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read shorturl.link_id_seq");
	*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	issued = !isnull;
	SPI_finish();
	return issued;
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(shorturl_encode_id);
PG_FUNCTION_INFO_V1(shorturl_decode_id);
PG_FUNCTION_INFO_V1(shorturl_new_code_key);
PG_FUNCTION_INFO_V1(shorturl_code_key_changed);
PG_FUNCTION_INFO_V1(shorturl_set_code_width);

/* shorturl_encode_id: the code the generator makes of a link id */
Datum
shorturl_encode_id(PG_FUNCTION_ARGS)
{
	const codespace *cs = codes_space(false);

	if (cs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this database has no code key yet"),
				 errdetail("The first shorten() or shorturl.set_code_width() makes the key.")));
	PG_RETURN_TEXT_P(codes_encode(cs, PG_GETARG_INT64(0)));
}

/*
 * shorturl_decode_id: the link id a generated code came from, or NULL when
 * the text is not such a code (an alias, or another key's code).
 */
Datum
shorturl_decode_id(PG_FUNCTION_ARGS)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	int64		id;

	if (!codes_decode(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code), &id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/* shorturl_new_code_key: 16 bytes from the operating system's strong RNG */
Datum
shorturl_new_code_key(PG_FUNCTION_ARGS)
{
	bytea	   *key = palloc(VARHDRSZ + PERMUTE_KEY_BYTES);

	SET_VARSIZE(key, VARHDRSZ + PERMUTE_KEY_BYTES);
	if (!pg_strong_random(VARDATA(key), PERMUTE_KEY_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random key")));
	PG_RETURN_BYTEA_P(key);
}

/*
 * shorturl_code_key_changed is the statement-level trigger on
 * shorturl.code_key that makes every backend reload the key once the change
 * commits.
 */
Datum
shorturl_code_key_changed(PG_FUNCTION_ARGS)
{
	return catalog_invalidate_trigger(fcinfo, "code_key_changed");
}

/*
 * shorturl_set_code_width implements set_code_width(width integer) RETURNS
 * integer: the width generated codes start at.  Before any id is issued it
 * sets the width outright; after, it starts a new segment at the next id,
 * and refuses a width that the ids already issued have reached or passed
 * (those codes would be handed out again).  Returns the width in force.
 */
Datum
shorturl_set_code_width(PG_FUNCTION_ARGS)
{
	int32		width = PG_GETARG_INT32(0);
	const codespace *cs;
	codespace	next;
	int64		last;
	Datum		values[2];
	Datum	   *from;
	Datum	   *widths;

	if (width < CODESPACE_MIN_WIDTH || width > PERMUTE_MAX_WIDTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("code width must be between %d and %d, not %d",
						CODESPACE_MIN_WIDTH, PERMUTE_MAX_WIDTH, width)));

	/* no shorten() runs meanwhile, and no other width change */
	LockRelationOid(catalog_relid("code_key"), ShareRowExclusiveLock);
	cs = codes_space(true);
	next = *cs;
	if (!codes_last_issued(&last))
	{
		next.nseg = 1;
		next.seg[0].from_id = 0;
		next.seg[0].width = width;
	}
	else
	{
		int			reached;
		uint64		index;

		if (codespace_width_of(cs, last, &reached, &index) != CODESPACE_OK)
			reached = PERMUTE_MAX_WIDTH;
		if (width <= reached)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("code width %d is too narrow: issued codes already reach width %d", width, reached),
					 errdetail("Link ids up to " INT64_FORMAT " have been issued; a narrower or equal width would hand their codes out again.",
							   last),
					 errhint("Choose a width above %d.", reached)));
		if (next.nseg >= CODESPACE_MAX_SEGMENTS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the code width cannot change more than %d times",
							CODESPACE_MAX_SEGMENTS - 1)));
		next.seg[next.nseg].from_id = last + 1;
		next.seg[next.nseg].width = width;
		next.nseg++;
	}

	from = palloc(next.nseg * sizeof(Datum));
	widths = palloc(next.nseg * sizeof(Datum));
	for (int k = 0; k < next.nseg; k++)
	{
		from[k] = Int64GetDatum(next.seg[k].from_id);
		widths[k] = Int32GetDatum(next.seg[k].width);
	}
	values[0] = PointerGetDatum(construct_array(from, next.nseg, INT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(widths, next.nseg, INT4OID, 4,
												true, TYPALIGN_INT));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			argtypes[2] = {INT8ARRAYOID, INT4ARRAYOID};

		if (SPI_execute_with_args("UPDATE shorturl.code_key SET width_from = $1, widths = $2",
								  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update shorturl.code_key");
	}
	SPI_finish();
	PG_RETURN_INT32(width);
}

/* codes_init registers the key cache's relcache callback; from _PG_init */
void
codes_init(void)
{
	CacheRegisterRelcacheCallback(key_cache_callback, (Datum) 0);
}
