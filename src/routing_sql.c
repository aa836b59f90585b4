/*-------------------------------------------------------------------------
 *
 * routing_sql.c
 *	  SQL-callable shard routing: hash64, shard_mod, jump_hash and route,
 *	  each for text, bytea and bigint keys, plus the per-backend cache of
 *	  the shard map in shorturl.shards.
 *
 * The formulas live in the pure core routing.c; this file only extracts key
 * bytes, validates arguments and reports errors.
 *
 * The shard-map cache.  route(key) reads shorturl.shards once and keeps the
 * prepared map in backend memory, following the rules for configuration
 * caches in config_cache.c: a statement-level trigger on the table
 * (shorturl.shards_changed) queues a relcache invalidation, a committed
 * change is seen at the next statement of every session, and one statement
 * sees one map throughout.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "compat.h"
#include "config_cache.h"
#include "pg_shorturl.h"
#include "routing.h"
#include "routing_sql.h"

/* the key kinds every routing function accepts */
typedef enum key_kind
{
	KEY_TEXT,
	KEY_BYTEA,
	KEY_INT8
} key_kind;

/* A prepared shard map, from the table or from arrays */
typedef struct shard_map
{
	route_node *nodes;
	int			n;
} shard_map;

/* The backend's cache of shorturl.shards */
static struct
{
	MemoryContext cxt;			/* owns nodes and names; reset on reload */
	config_cache cache;
	shard_map	map;			/* the shards that take keys (not retiring) */
	route_node *all;			/* every shard, retiring ones too, by name */
	int			nall;
} shard_cache;

/* fn_extra of the pure route(key, names, weights): the last arrays seen */
typedef struct args_map_cache
{
	ArrayType  *names;
	ArrayType  *weights;
	shard_map	map;
} args_map_cache;

/*
 * key_hash returns hash64 of argument 0 according to its kind: the bytes of
 * a text (in the database encoding) or a bytea, or the 8-byte little-endian
 * form of a bigint.
 */
static uint64
key_hash(FunctionCallInfo fcinfo, key_kind kind)
{
	if (kind == KEY_INT8)
		return route_hash64_int8(PG_GETARG_INT64(0));
	else
	{
		struct varlena *v = PG_GETARG_VARLENA_PP(0);

		return route_hash64(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	}
}

/* check_count ensures a shard or bucket count is at least 1 */
static void
check_count(int32 n, const char *what)
{
	if (n <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be greater than zero, not %d", what, n)));
}

/* ---------------------------------------------------------------------
 * hash64
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(shorturl_hash64_text);
PG_FUNCTION_INFO_V1(shorturl_hash64_bytea);
PG_FUNCTION_INFO_V1(shorturl_hash64_int8);

Datum
shorturl_hash64_text(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) key_hash(fcinfo, KEY_TEXT));
}

Datum
shorturl_hash64_bytea(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) key_hash(fcinfo, KEY_BYTEA));
}

Datum
shorturl_hash64_int8(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) key_hash(fcinfo, KEY_INT8));
}

/* ---------------------------------------------------------------------
 * shard_mod and jump_hash
 * ---------------------------------------------------------------------
 */
static Datum
shard_mod(FunctionCallInfo fcinfo, key_kind kind)
{
	int32		n = PG_GETARG_INT32(1);

	check_count(n, "shard_count");
	PG_RETURN_INT32((int32) route_mod(key_hash(fcinfo, kind), (uint32) n));
}

static Datum
jump_hash(FunctionCallInfo fcinfo, key_kind kind)
{
	int32		n = PG_GETARG_INT32(1);

	check_count(n, "bucket_count");
	PG_RETURN_INT32(route_jump(key_hash(fcinfo, kind), n));
}

PG_FUNCTION_INFO_V1(shorturl_shard_mod_text);
PG_FUNCTION_INFO_V1(shorturl_shard_mod_bytea);
PG_FUNCTION_INFO_V1(shorturl_shard_mod_int8);
PG_FUNCTION_INFO_V1(shorturl_jump_hash_text);
PG_FUNCTION_INFO_V1(shorturl_jump_hash_bytea);
PG_FUNCTION_INFO_V1(shorturl_jump_hash_int8);

Datum
shorturl_shard_mod_text(PG_FUNCTION_ARGS)
{
	return shard_mod(fcinfo, KEY_TEXT);
}

Datum
shorturl_shard_mod_bytea(PG_FUNCTION_ARGS)
{
	return shard_mod(fcinfo, KEY_BYTEA);
}

Datum
shorturl_shard_mod_int8(PG_FUNCTION_ARGS)
{
	return shard_mod(fcinfo, KEY_INT8);
}

Datum
shorturl_jump_hash_text(PG_FUNCTION_ARGS)
{
	return jump_hash(fcinfo, KEY_TEXT);
}

Datum
shorturl_jump_hash_bytea(PG_FUNCTION_ARGS)
{
	return jump_hash(fcinfo, KEY_BYTEA);
}

Datum
shorturl_jump_hash_int8(PG_FUNCTION_ARGS)
{
	return jump_hash(fcinfo, KEY_INT8);
}

/* ---------------------------------------------------------------------
 * Shard maps
 * ---------------------------------------------------------------------
 */

/*
 * prepare_map validates and prepares a map whose nodes the caller filled,
 * turning a failure into an error.  from_table says whether the nodes came
 * from shorturl.shards (whose constraints make most failures impossible) or
 * from the arguments of the pure form.
 */
static void
prepare_map(shard_map *map, bool from_table)
{
	int			bad = 0;

	switch (route_map_prepare(map->nodes, map->n, &bad))
	{
		case ROUTE_OK:
			return;
		case ROUTE_EMPTY:
			if (from_table)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the shard map is empty"),
						 errdetail("shorturl.route(key) routes over the rows of shorturl.shards that are not retiring, and there are none."),
						 errhint("Add a shard first, for example: INSERT INTO shorturl.shards (name, weight) VALUES ('shard1', 1);")));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the shard map is empty"),
					 errhint("Pass at least one shard name and weight.")));
			break;
		case ROUTE_BAD_NAME:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("shard names must not be empty")));
			break;
		case ROUTE_DUPLICATE_NAME:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("shard \"%s\" appears more than once in the shard map",
							pnstrdup(map->nodes[bad].name, map->nodes[bad].name_len))));
			break;
		case ROUTE_BAD_WEIGHT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("weight of shard \"%s\" is out of range: %s",
							pnstrdup(map->nodes[bad].name, map->nodes[bad].name_len),
							float8out_internal(map->nodes[bad].weight)),
					 errdetail("Weights must be between %g and %g.",
							   ROUTE_MIN_WEIGHT, ROUTE_MAX_WEIGHT)));
			break;
	}
}

/* pick_name returns the name of the node the map picks for a key hash */
static Datum
pick_name(const shard_map *map, uint64 hash)
{
	const route_node *node = &map->nodes[route_pick(map->nodes, map->n, hash)];

	PG_RETURN_TEXT_P(cstring_to_text_with_len(node->name, (int) node->name_len));
}

/*
 * shard_cache_callback is the relcache callback: any invalidation of
 * shorturl.shards (or of every relation, relid 0) makes the cache stale.
 */
static void
shard_cache_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	config_cache_invalidate(&shard_cache.cache, relid);
}

/* by_name orders shards bytewise by name, like COLLATE "C" */
static int
by_name(const void *a, const void *b)
{
	const route_node *x = a;
	const route_node *y = b;
	size_t		len = Min(x->name_len, y->name_len);
	int			c = memcmp(x->name, y->name, len);

	if (c != 0)
		return c;
	return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/*
 * shard_cache_load reads shorturl.shards into the cache memory context.
 */
static void
shard_cache_load(void)
{
	Oid			relid = catalog_relid("shards");
	Relation	rel;
	TupleDesc	desc;
	AttrNumber	att_name;
	AttrNumber	att_weight;
	AttrNumber	att_retiring;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tuple;
	int			cap = 16;
	MemoryContext old;

	shard_cache.cache.loaded = false;
	MemoryContextReset(shard_cache.cxt);
	shard_cache.map.nodes = NULL;
	shard_cache.map.n = 0;
	shard_cache.all = NULL;
	shard_cache.nall = 0;

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	att_name = get_attnum(relid, "name");
	att_weight = get_attnum(relid, "weight");
	/* 0.5 added it; an older map has no retiring shards */
	att_retiring = get_attnum(relid, "retiring");

	old = MemoryContextSwitchTo(shard_cache.cxt);
	shard_cache.map.nodes = palloc(cap * sizeof(route_node));
	shard_cache.all = palloc(cap * sizeof(route_node));

	snapshot = config_cache_snapshot(&shard_cache.cache);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		null_name;
		bool		null_weight;
		Datum		name = heap_getattr(tuple, att_name, desc, &null_name);
		Datum		weight = heap_getattr(tuple, att_weight, desc, &null_weight);
		bool		retiring = false;
		route_node *node;
		text	   *t;

		if (null_name || null_weight)
			continue;			/* the table's NOT NULLs forbid this */
		if (att_retiring != InvalidAttrNumber)
		{
			bool		isnull;
			Datum		d = heap_getattr(tuple, att_retiring, desc, &isnull);

			retiring = !isnull && DatumGetBool(d);
		}
		if (shard_cache.nall == cap)
		{
			cap *= 2;
			shard_cache.map.nodes = repalloc(shard_cache.map.nodes,
											 cap * sizeof(route_node));
			shard_cache.all = repalloc(shard_cache.all, cap * sizeof(route_node));
		}
		t = DatumGetTextPCopy(name);
		node = &shard_cache.all[shard_cache.nall++];
		node->name = VARDATA_ANY(t);
		node->name_len = VARSIZE_ANY_EXHDR(t);
		node->weight = DatumGetFloat8(weight);
		if (!retiring)
			shard_cache.map.nodes[shard_cache.map.n++] = *node;
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	MemoryContextSwitchTo(old);
	table_close(rel, AccessShareLock);

	/* every shard by name: the partition order of a coordinator */
	qsort(shard_cache.all, shard_cache.nall, sizeof(route_node), by_name);
	/* an empty map is cached too; route(key) reports it */
	if (shard_cache.map.n > 0)
		prepare_map(&shard_cache.map, true);
	config_cache_loaded(&shard_cache.cache, relid);
}

/* current_shard_map returns the cached map, loading it when due */
static const shard_map *
current_shard_map(void)
{
	if (config_cache_needs_load(&shard_cache.cache))
		shard_cache_load();
	if (shard_cache.map.n == 0)
		prepare_map(&shard_cache.map, true);	/* reports the empty map */
	return &shard_cache.map;
}

/*
 * routing_init registers the relcache callback and creates the cache's
 * memory context; called from _PG_init.
 */
void
routing_init(void)
{
	shard_cache.cxt = AllocSetContextCreate(TopMemoryContext,
											"pg_shorturl shard map",
											ALLOCSET_SMALL_SIZES);
	CacheRegisterRelcacheCallback(shard_cache_callback, (Datum) 0);
}

/*
 * args_shard_map builds (or reuses from fn_extra) the map given as the arrays in
 * arguments 1 and 2 of the pure route(key, names, weights).  The arrays are
 * usually constants, so the prepared map is kept as long as the next call
 * passes byte-identical arrays.
 */
static const shard_map *
args_shard_map(FunctionCallInfo fcinfo)
{
	ArrayType  *names = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *weights = PG_GETARG_ARRAYTYPE_P(2);
	args_map_cache *cache = fcinfo->flinfo->fn_extra;
	MemoryContext old;
	Datum	   *name_datums;
	Datum	   *weight_datums;
	bool	   *name_nulls;
	bool	   *weight_nulls;
	int			nnames;
	int			nweights;

	if (cache != NULL &&
		VARSIZE(cache->names) == VARSIZE(names) &&
		VARSIZE(cache->weights) == VARSIZE(weights) &&
		memcmp(cache->names, names, VARSIZE(names)) == 0 &&
		memcmp(cache->weights, weights, VARSIZE(weights)) == 0)
		return &cache->map;

	if (ARR_NDIM(names) > 1 || ARR_NDIM(weights) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("shard names and weights must be one-dimensional arrays")));

	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT,
					  &name_datums, &name_nulls, &nnames);
	deconstruct_array(weights, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &weight_datums, &weight_nulls, &nweights);
	if (nnames != nweights)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("shard names and weights must have the same length, not %d and %d",
						nnames, nweights)));

	/* rebuild the cache in the function's memory context */
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	if (cache == NULL)
		cache = palloc0(sizeof(args_map_cache));
	else
	{
		/* a map that fails to prepare must not be reused: drop it first */
		fcinfo->flinfo->fn_extra = NULL;
		pfree(cache->names);
		pfree(cache->weights);
		if (cache->map.nodes)
			pfree(cache->map.nodes);
	}
	cache->names = (ArrayType *) palloc(VARSIZE(names));
	memcpy(cache->names, names, VARSIZE(names));
	cache->weights = (ArrayType *) palloc(VARSIZE(weights));
	memcpy(cache->weights, weights, VARSIZE(weights));
	cache->map.n = nnames;
	cache->map.nodes = palloc(Max(nnames, 1) * sizeof(route_node));
	MemoryContextSwitchTo(old);

	for (int i = 0; i < nnames; i++)
	{
		if (name_nulls[i] || weight_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("shard names and weights must not be null")));
		/* point into the cached copy of the names array, which stays put */
		cache->map.nodes[i].name = VARDATA_ANY(DatumGetPointer(name_datums[i]));
		cache->map.nodes[i].name_len = VARSIZE_ANY_EXHDR(DatumGetPointer(name_datums[i]));
		cache->map.nodes[i].weight = DatumGetFloat8(weight_datums[i]);
	}

	/*
	 * name_datums point into the argument, not the cached copy; re-point
	 * them by offset so the cache does not depend on the argument's life.
	 */
	for (int i = 0; i < nnames; i++)
		cache->map.nodes[i].name = (const char *) cache->names +
			(cache->map.nodes[i].name - (const char *) names);

	prepare_map(&cache->map, false);
	fcinfo->flinfo->fn_extra = cache;
	return &cache->map;
}

/* ---------------------------------------------------------------------
 * route
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(shorturl_route_text);
PG_FUNCTION_INFO_V1(shorturl_route_bytea);
PG_FUNCTION_INFO_V1(shorturl_route_int8);
PG_FUNCTION_INFO_V1(shorturl_route_map_text);
PG_FUNCTION_INFO_V1(shorturl_route_map_bytea);
PG_FUNCTION_INFO_V1(shorturl_route_map_int8);

Datum
shorturl_route_text(PG_FUNCTION_ARGS)
{
	return pick_name(current_shard_map(), key_hash(fcinfo, KEY_TEXT));
}

Datum
shorturl_route_bytea(PG_FUNCTION_ARGS)
{
	return pick_name(current_shard_map(), key_hash(fcinfo, KEY_BYTEA));
}

Datum
shorturl_route_int8(PG_FUNCTION_ARGS)
{
	return pick_name(current_shard_map(), key_hash(fcinfo, KEY_INT8));
}

Datum
shorturl_route_map_text(PG_FUNCTION_ARGS)
{
	return pick_name(args_shard_map(fcinfo), key_hash(fcinfo, KEY_TEXT));
}

Datum
shorturl_route_map_bytea(PG_FUNCTION_ARGS)
{
	return pick_name(args_shard_map(fcinfo), key_hash(fcinfo, KEY_BYTEA));
}

Datum
shorturl_route_map_int8(PG_FUNCTION_ARGS)
{
	return pick_name(args_shard_map(fcinfo), key_hash(fcinfo, KEY_INT8));
}

/*
 * shorturl_shards_changed is the statement-level trigger on shorturl.shards
 * that makes every backend drop its cached map once the change commits.
 */
PG_FUNCTION_INFO_V1(shorturl_shards_changed);

Datum
shorturl_shards_changed(PG_FUNCTION_ARGS)
{
	return catalog_invalidate_trigger(fcinfo, "shards_changed");
}

/* ---------------------------------------------------------------------
 * Shard positions
 * ---------------------------------------------------------------------
 */

/*
 * shard_position returns the position (from 0), among all shards of
 * shorturl.shards sorted by name, retiring ones included, of the shard
 * that owns a key hash.
 */
static int32
shard_position(uint64 hash)
{
	const shard_map *map = current_shard_map();
	route_node	probe = map->nodes[route_pick(map->nodes, map->n, hash)];
	route_node *found = bsearch(&probe, shard_cache.all, shard_cache.nall,
								sizeof(route_node), by_name);

	return found ? (int32) (found - shard_cache.all) : 0;
}

PG_FUNCTION_INFO_V1(shorturl_route_position_text);

/*
 * shorturl_route_position_text implements route_position(key text): the
 * position of route(key) among every shard sorted by name.  A coordinator
 * numbers its PL/Proxy partitions in that order, so RUN ON
 * route_position(code) calls the shard that owns the code.
 */
Datum
shorturl_route_position_text(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(shard_position(key_hash(fcinfo, KEY_TEXT)));
}
