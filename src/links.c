/*-------------------------------------------------------------------------
 *
 * links.c
 *	  The short-URL store: shorten, resolve, link_status, visits, and the
 *	  code generator behind shorten (encode_id / decode_id).
 *
 * A generated code is made from the next value n of shorturl.link_id_seq:
 * n picks a code width L (shorturl.code_length, then wider once the L-wide
 * space is used up) and an index i within that width, the keyed permutation
 * of permute.c maps i to p in [0, 62^L), and p is written as L base62
 * digits.  Codes are therefore never issued twice, consecutive links get
 * unrelated codes, and no retry loop against random collisions is needed;
 * only an alias (or a code left by an earlier key) that happens to equal a
 * generated code costs another sequence value.
 *
 * Reading a link (resolve, link_status, visits) goes straight through the
 * primary-key index, with no SPI and no planner.  Counting a visit goes to
 * the shared-memory counters of counters.c when the worker serves this
 * database, and otherwise (or when they are full) to links_count_visit(),
 * one UPDATE.  shorten() runs as SECURITY DEFINER with a pinned search_path
 * (see the extension script); resolve(), link_status() and visits() need
 * no privilege for what they do on every call, and run their rare SQL as
 * the owner (see become_owner()).  Either way the SQL sent through SPI
 * names every table with its schema and relies on pg_catalog for
 * operators.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base62.h"
#include "counters.h"
#include "permute.h"
#include "pg_shorturl.h"
#include "routing.h"
#include "validate.h"

/*
 * How many sequence values shorten() tries before giving up.  A generated
 * code is only taken when an alias or a code from an earlier key equals it,
 * which is rare in a sparse code space; ten collisions in a row mean the
 * space is nearly full or something is wrong.
 */
#define MAX_CODE_ATTEMPTS	10

/* The key of the code permutation, cached per backend (see pg_shorturl.c) */
static struct
{
	config_cache cache;
	unsigned char key[PERMUTE_KEY_BYTES];
} key_cache;

/* Saved SPI plans, prepared on first use */
static SPIPlanPtr plan_insert;
static SPIPlanPtr plan_find_reusable;
static SPIPlanPtr plan_quarantined;
static SPIPlanPtr plan_reserved;
static SPIPlanPtr plan_nextval;
static SPIPlanPtr plan_count_visit;

/* ---------------------------------------------------------------------
 * The permutation key
 * ---------------------------------------------------------------------
 */

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

/* load_key reads shorturl.code_key */
static void
load_key(void)
{
	Oid			relid = shorturl_relid("code_key");
	Relation	rel;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	key_cache.cache.loaded = false;
	rel = table_open(relid, AccessShareLock);
	snapshot = config_cache_snapshot(&key_cache.cache);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, get_attnum(relid, "key"),
									 RelationGetDescr(rel), &isnull);
		bytea	   *key;

		if (isnull)
			continue;
		key = DatumGetByteaPP(d);
		if (VARSIZE_ANY_EXHDR(key) != PERMUTE_KEY_BYTES)
			continue;			/* the table's CHECK forbids this */
		memcpy(key_cache.key, VARDATA_ANY(key), PERMUTE_KEY_BYTES);
		found = true;
		break;
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);

	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("shorturl.code_key holds no key"),
				 errdetail("Generated codes are a keyed permutation of sequence numbers; the key is created by CREATE EXTENSION and kept by pg_dump."),
				 errhint("If it was deleted by mistake, restore it from a backup; otherwise run INSERT INTO shorturl.code_key (key) SELECT shorturl.new_code_key().")));
	config_cache_loaded(&key_cache.cache, relid);
}

static const unsigned char *
current_key(void)
{
	if (config_cache_needs_load(&key_cache.cache))
		load_key();
	return key_cache.key;
}

/* ---------------------------------------------------------------------
 * Reading links through the primary key
 * ---------------------------------------------------------------------
 */

/* shorturl.links, its primary key and its columns, cached per backend */
static struct
{
	bool		valid;
	bool		coordinator;	/* links is partitioned over the shards */
	Oid			owner;			/* the table's (and the extension's) owner */
	Oid			relid;
	Oid			pkey;
	AttrNumber	att_url;
	AttrNumber	att_created_at;
	AttrNumber	att_expires_at;
	AttrNumber	att_max_visits;
	AttrNumber	att_visits;
} links_rel;

/* What the store knows of one link */
typedef struct link_row
{
	bool		found;
	text	   *url;			/* only when asked for */
	TimestampTz created_at;
	bool		has_expiry;
	TimestampTz expires_at;
	bool		has_max;
	int64		max_visits;
	int64		visits;
} link_row;

static void
links_rel_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	if (relid == InvalidOid || relid == links_rel.relid || relid == links_rel.pkey)
		links_rel.valid = false;
}

/* rel_owner returns the owner of a relation */
static Oid
rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* links_rel_lookup fills links_rel if it is stale */
static void
links_rel_lookup(void)
{
	Oid			relid;

	if (links_rel.valid)
		return;
	relid = shorturl_relid("links");
	links_rel.relid = relid;
	links_rel.owner = rel_owner(relid);
	/* a coordinator's links is partitioned over foreign tables (cluster.c) */
	links_rel.coordinator = (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE);
	if (links_rel.coordinator)
	{
		links_rel.valid = true;
		return;
	}
	links_rel.pkey = get_relname_relid("links_pkey", get_rel_namespace(relid));
	if (!OidIsValid(links_rel.pkey))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("index \"%s.links_pkey\" does not exist", SHORTURL_SCHEMA)));
	links_rel.att_url = get_attnum(relid, "url");
	links_rel.att_created_at = get_attnum(relid, "created_at");
	links_rel.att_expires_at = get_attnum(relid, "expires_at");
	links_rel.att_max_visits = get_attnum(relid, "max_visits");
	links_rel.att_visits = get_attnum(relid, "visits");
	links_rel.valid = true;
}

/*
 * As the owner.  resolve(), link_status() and visits() are not SECURITY
 * DEFINER: they read links through the index directly, and count clicks in
 * shared memory, which needs no privilege (EXECUTE on the function is the
 * gate).  Only their rarer paths run SQL on the tables (a synchronous
 * click, a coordinator's call to its shards): those run as the table's
 * owner, the way PostgreSQL's foreign-key triggers do, and their SQL names
 * every table, function and operator with its schema, so the caller's
 * search_path cannot change what it means.  An error on the way restores
 * the caller's identity with the transaction.
 */
typedef struct as_owner
{
	Oid			userid;
	int			sec_context;
} as_owner;

static as_owner
become_owner(void)
{
	as_owner	saved;

	links_rel_lookup();
	GetUserIdAndSecContext(&saved.userid, &saved.sec_context);
	SetUserIdAndSecContext(links_rel.owner, saved.sec_context | SECURITY_LOCAL_USERID_CHANGE);
	return saved;
}

static void
back_from_owner(as_owner saved)
{
	SetUserIdAndSecContext(saved.userid, saved.sec_context);
}


/*
 * fetch_link looks a code up through shorturl.links_pkey as of the given
 * snapshot.  The url is copied only when want_url.
 */
static link_row
fetch_link(const char *code, int code_len, Snapshot snapshot, bool want_url)
{
	link_row	row = {0};
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	text	   *key = cstring_to_text_with_len(code, code_len);

	links_rel_lookup();
	heap = table_open(links_rel.relid, AccessShareLock);
	index = index_open(links_rel.pkey, AccessShareLock);
	slot = table_slot_create(heap, NULL);

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(key));
	skey.sk_collation = C_COLLATION_OID;
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;

		row.found = true;
		if (want_url)
			row.url = DatumGetTextPCopy(slot_getattr(slot, links_rel.att_url, &isnull));
		row.created_at = DatumGetTimestampTz(slot_getattr(slot, links_rel.att_created_at, &isnull));
		d = slot_getattr(slot, links_rel.att_expires_at, &isnull);
		row.has_expiry = !isnull;
		row.expires_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = slot_getattr(slot, links_rel.att_max_visits, &isnull);
		row.has_max = !isnull;
		row.max_visits = isnull ? 0 : DatumGetInt64(d);
		row.visits = DatumGetInt64(slot_getattr(slot, links_rel.att_visits, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	pfree(key);
	return row;
}

/*
 * on_coordinator tells whether this database is a coordinator, whose links
 * live on the shards: then the API functions hand over to the coordinator's
 * functions of the extension script, which call the shard that owns the
 * code.
 */
static bool
on_coordinator(void)
{
	links_rel_lookup();
	return links_rel.coordinator;
}

/*
 * call_coordinator runs "SELECT shorturl.<function>($1...)" and returns its
 * text or bigint result (copied out of SPI), or isnull.
 */
static Datum
call_coordinator(const char *sql, int nargs, Oid *argtypes, Datum *values,
				 const char *nulls, bool *isnull)
{
	Datum		result;
	int			rc;
	int16		typlen;
	bool		typbyval;
	as_owner	saved = become_owner();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "\"%s\" failed: %s", sql, SPI_result_code_string(rc));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	get_typlenbyval(SPI_gettypeid(SPI_tuptable->tupdesc, 1), &typlen, &typbyval);
	if (!*isnull)
		result = SPI_datumTransfer(result, typbyval, typlen);
	SPI_finish();
	back_from_owner(saved);
	return result;
}

/*
 * call_coordinator_code runs "SELECT shorturl.<function>(code)" for the
 * API functions that take a code; see call_coordinator.
 */
static Datum
call_coordinator_code(const char *sql, text *code, bool *isnull)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(code)};

	return call_coordinator(sql, 1, argtypes, values, NULL, isnull);
}

/* the link as counters.c needs to know it */
static counter_link
counter_link_of(const link_row *row, const char *code, int code_len)
{
	counter_link link;

	link.relid = links_rel.relid;
	link.code = code;
	link.code_len = code_len;
	link.created_at = row->created_at;
	link.has_max = row->has_max;
	link.max_visits = row->max_visits;
	return link;
}

/*
 * links_latest_visits reads a link's visits as of a fresh snapshot, for
 * counters.c when it makes a counter.  False if the link is gone (or the
 * code now belongs to a newer link).
 */
bool
links_latest_visits(Oid relid, const char *code, int code_len,
					TimestampTz created_at, int64 *visits)
{
	/* a parallel query may not take a fresh snapshot: the statement's is all */
	Snapshot	snapshot = RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot()
											: GetLatestSnapshot());
	link_row	row;

	links_rel_lookup();
	if (relid != links_rel.relid)
	{
		/* the counter belongs to a links table that was dropped since */
		UnregisterSnapshot(snapshot);
		return false;
	}
	row = fetch_link(code, code_len, snapshot, false);
	UnregisterSnapshot(snapshot);
	if (!row.found || row.created_at != created_at)
		return false;
	*visits = row.visits;
	return true;
}

/*
 * live_visits is the link's visits including clicks not yet flushed: the
 * shared counter's total if there is one, else the table's latest value
 * (a flush may have committed after this statement's snapshot was taken).
 */
static int64
live_visits(const link_row *row, const char *code, int code_len)
{
	counter_link link;
	int64		total;

	if (!counters_serving())
		return row->visits;
	link = counter_link_of(row, code, code_len);
	if (counters_peek(&link, &total))
		return total;
	if (links_latest_visits(link.relid, code, code_len, row->created_at, &total))
		return total;
	return row->visits;
}

/* ---------------------------------------------------------------------
 * Code generation
 * ---------------------------------------------------------------------
 */

/*
 * id_to_code turns a sequence number into its code.  Ids first fill the
 * shorturl.code_length-wide space, then each wider one in turn:
 * [0, 62^L) is width L, the next 62^(L+1) ids are width L+1, and so on.
 */
static text *
id_to_code(int64 id)
{
	uint64		rest = (uint64) id;
	int			width = shorturl_code_length;
	char		buf[BASE62_MAX_WIDTH];
	size_t		len;
	uint64		p;

	if (id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("link id " INT64_FORMAT " is out of range", id),
				 errhint("Link ids are non-negative.")));

	while (rest >= permute_domain(width))
	{
		rest -= permute_domain(width);
		if (++width > PERMUTE_MAX_WIDTH)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the code space is exhausted"),
					 errdetail("Link id " INT64_FORMAT " needs a code wider than %d characters.",
							   id, PERMUTE_MAX_WIDTH)));
	}

	p = permute_forward(rest, width, current_key());
	(void) base62_encode((int64_t) p, width, buf, &len);
	return cstring_to_text_with_len(buf, (int) len);
}

/*
 * code_to_id undoes id_to_code, or returns false when the code is not one
 * the generator could have made under the current key and code_length.
 */
static bool
code_to_id(const char *code, int len, int64 *id)
{
	int64_t		p;
	size_t		bad;
	uint64		base = 0;
	uint64		rest;

	if (len < shorturl_code_length || len > PERMUTE_MAX_WIDTH)
		return false;
	if (base62_decode(code, (size_t) len, &p, &bad) != BASE62_OK ||
		(uint64) p >= permute_domain(len))
		return false;

	for (int w = shorturl_code_length; w < len; w++)
		base += permute_domain(w);
	rest = permute_inverse((uint64) p, len, current_key());
	*id = (int64) (base + rest);
	return true;
}

/* ---------------------------------------------------------------------
 * SPI helpers
 * ---------------------------------------------------------------------
 */

/* prepare_saved prepares a statement once per backend and keeps its plan */
static SPIPlanPtr
prepare_saved(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	return *plan;
}

/* exec_plan runs a saved plan and checks the result code */
static void
exec_plan(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only,
		  int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
}

/* ---------------------------------------------------------------------
 * Link status
 * ---------------------------------------------------------------------
 */

/* the status words of link_status(), given the live visit count */
static const char *
row_status(const link_row *row, int64 visits)
{
	if (!row->found)
		return "unknown";
	if (row->has_expiry && row->expires_at <= GetCurrentTransactionStartTimestamp())
		return "expired";
	if (row->has_max && visits >= row->max_visits)
		return "exhausted";
	return "active";
}

/*
 * plausible_code tells whether a string could be a code or an alias at all:
 * 1..64 characters of [A-Za-z0-9_-].  Anything else is answered without
 * touching the table.
 */
static bool
plausible_code(text *code)
{
	int			len = VARSIZE_ANY_EXHDR(code);

	return len >= 1 && len <= ALIAS_MAX_LENGTH &&
		code_chars_ok(VARDATA_ANY(code), (size_t) len);
}

/*
 * links_count_visit counts one visit of an active link and returns its URL,
 * or returns NULL when the link is unknown, expired or exhausted.
 *
 * The UPDATE's WHERE clause is the definition of "active".  Under READ
 * COMMITTED a concurrent visit that updated the row first makes PostgreSQL
 * re-check that clause against the new row version before this update goes
 * ahead, so a link with max_visits = N is returned at most N times however
 * many sessions resolve it at once.
 */
static text *
links_count_visit(text *code)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(code)};
	text	   *url = NULL;

	exec_plan(prepare_saved(&plan_count_visit,
							"UPDATE shorturl.links"
							"   SET visits = visits OPERATOR(pg_catalog.+) 1,"
							"       last_visit_at = pg_catalog.now(),"
							"       exhausted_at = CASE WHEN visits OPERATOR(pg_catalog.+) 1"
							"                                OPERATOR(pg_catalog.>=) max_visits"
							"                      THEN pg_catalog.now() END"
							" WHERE code OPERATOR(pg_catalog.=) $1"
							"   AND (expires_at IS NULL"
							"        OR expires_at OPERATOR(pg_catalog.>) pg_catalog.now())"
							"   AND (max_visits IS NULL"
							"        OR visits OPERATOR(pg_catalog.<) max_visits)"
							" RETURNING url",
							1, argtypes),
			  values, NULL, false, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		/* copy out of the SPI context before SPI_finish frees it */
		url = (text *) SPI_datumTransfer(d, false, -1);
	}
	return url;
}

/* ---------------------------------------------------------------------
 * shorten
 * ---------------------------------------------------------------------
 */

/* check_url reports the first URL rule the argument breaks */
static void
check_url(text *url)
{
	const char *s = VARDATA_ANY(url);
	int			len = VARSIZE_ANY_EXHDR(url);
	size_t		bad = 0;

	switch (validate_url(s, (size_t) len, (size_t) shorturl_max_url_length, &bad))
	{
		case URL_OK:
			return;
		case URL_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL is too long: %d bytes, the maximum is %d",
							len, shorturl_max_url_length),
					 errhint("The limit is the setting shorturl.max_url_length.")));
			break;
		case URL_CONTROL_CHAR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains a control character \"%s\" at position %d",
							shorturl_describe_char(s + bad, len - (int) bad),
							pg_mbstrlen_with_len(s, (int) bad) + 1),
					 errhint("Percent-encode control characters.")));
			break;
		case URL_SPACE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains a space at position %d",
							pg_mbstrlen_with_len(s, (int) bad) + 1),
					 errhint("Percent-encode spaces as %%20.")));
			break;
		case URL_BAD_SCHEME:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL must start with http:// or https://")));
			break;
		case URL_NO_HOST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL has no host"),
					 errhint("Write the URL as http://host/path or https://host/path.")));
			break;
		case URL_BAD_HOST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL host contains an invalid character \"%s\" at position %d",
							shorturl_describe_char(s + bad, len - (int) bad),
							pg_mbstrlen_with_len(s, (int) bad) + 1)));
			break;
		case URL_BAD_PORT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL port must be a number from 1 to 65535")));
			break;
	}
}

/* check_alias reports a malformed or reserved alias (inside SPI) */
static void
check_alias(text *alias)
{
	const char *s = VARDATA_ANY(alias);
	int			len = VARSIZE_ANY_EXHDR(alias);
	size_t		bad = 0;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(alias)};

	switch (validate_alias(s, (size_t) len, &bad))
	{
		case ALIAS_OK:
			break;
		case ALIAS_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("alias must not be empty")));
			break;
		case ALIAS_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("alias is too long: %d characters, the maximum is %d",
							len, ALIAS_MAX_LENGTH)));
			break;
		case ALIAS_BAD_CHAR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid character \"%s\" at position %d of alias",
							shorturl_describe_char(s + bad, len - (int) bad),
							pg_mbstrlen_with_len(s, (int) bad) + 1),
					 errhint("Aliases use only A-Z, a-z, 0-9, \"_\" and \"-\".")));
			break;
	}

	exec_plan(prepare_saved(&plan_reserved,
							"SELECT 1 FROM shorturl.reserved_aliases"
							" WHERE pg_catalog.lower(alias) = pg_catalog.lower($1)",
							1, argtypes),
			  values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("alias \"%s\" is reserved", text_to_cstring(alias)),
				 errdetail("Reserved words are listed in shorturl.reserved_aliases, compared without regard to case.")));
}

/*
 * lock_url serialises shorten(reuse => true) calls for the same URL, so two
 * of them at once cannot both miss each other and create two links.  The
 * lock is an advisory lock in pg_shorturl's own class, held to the end of
 * the transaction.
 */
static void
lock_url(uint64 url_hash)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (url_hash >> 32),
						 (uint32) url_hash, SHORTURL_LOCK_REUSE);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * find_reusable returns the code of an active link with this URL and these
 * limits, found through the index on url_hash, or NULL.  With an alias, only
 * that alias can be reused.  The lookup takes a new snapshot (read_only is
 * false), so it sees links made earlier in this statement and, under READ
 * COMMITTED, those a concurrent shorten() committed while we waited for
 * the URL's lock.
 */
static text *
find_reusable(text *url, uint64 url_hash, Datum *limits, const char *limit_nulls,
			  text *alias)
{
	Oid			argtypes[5] = {INT8OID, TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', limit_nulls[0], limit_nulls[1], alias ? ' ' : 'n'};

	values[0] = Int64GetDatum((int64) url_hash);
	values[1] = PointerGetDatum(url);
	values[2] = limits[0];
	values[3] = limits[1];
	values[4] = PointerGetDatum(alias);

	exec_plan(prepare_saved(&plan_find_reusable,
							"SELECT code, expires_at, max_visits, visits, created_at FROM shorturl.links"
							" WHERE url_hash = $1 AND url = $2"
							"   AND expires_at IS NOT DISTINCT FROM $3"
							"   AND max_visits IS NOT DISTINCT FROM $4"
							"   AND CASE WHEN $5 IS NULL THEN NOT is_alias ELSE code = $5 END"
							" ORDER BY created_at, code",
							5, argtypes),
			  values, nulls, false, SPI_OK_SELECT);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		link_row	row = {.found = true};
		text	   *code;
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(tup, desc, 2, &isnull);
		row.has_expiry = !isnull;
		row.expires_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		row.has_max = !isnull;
		row.max_visits = isnull ? 0 : DatumGetInt64(d);
		row.visits = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		row.created_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
		code = DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull));
		if (strcmp(row_status(&row, live_visits(&row, VARDATA_ANY(code),
												VARSIZE_ANY_EXHDR(code))),
				   "active") == 0)
			return (text *) SPI_datumTransfer(PointerGetDatum(code), false, -1);
	}
	return NULL;
}

/*
 * check_quarantine refuses an alias whose link was deleted less than
 * shorturl.alias_quarantine ago, so a printed old link cannot land on a new
 * owner's page (inside SPI).
 */
static void
check_quarantine(text *alias)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(alias)};
	bool		isnull;

	exec_plan(prepare_saved(&plan_quarantined,
							"SELECT released_at FROM shorturl.alias_quarantine"
							" WHERE alias = $1 AND released_at > pg_catalog.now()",
							1, argtypes),
			  values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("alias \"%s\" is quarantined", text_to_cstring(alias)),
				 errdetail("A link with this alias was deleted recently; the alias can be taken again from %s.",
						   timestamptz_to_str(DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
																				   SPI_tuptable->tupdesc,
																				   1, &isnull)))),
				 errhint("The waiting time is the setting shorturl.alias_quarantine.")));
}

/* insert_link inserts one row; false if the code is taken */
static bool
insert_link(text *code, text *url, Datum *limits, const char *limit_nulls,
			bool is_alias)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, BOOLOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', limit_nulls[0], limit_nulls[1], ' '};

	values[0] = PointerGetDatum(code);
	values[1] = PointerGetDatum(url);
	values[2] = limits[0];
	values[3] = limits[1];
	values[4] = BoolGetDatum(is_alias);

	exec_plan(prepare_saved(&plan_insert,
							"INSERT INTO shorturl.links (code, url, expires_at, max_visits, is_alias)"
							" VALUES ($1, $2, $3, $4, $5)"
							" ON CONFLICT (code) DO NOTHING",
							5, argtypes),
			  values, nulls, false, SPI_OK_INSERT);
	return SPI_processed == 1;
}

/* next_id is nextval of the code sequence (inside SPI) */
static int64
next_id(void)
{
	bool		isnull;

	exec_plan(prepare_saved(&plan_nextval,
							"SELECT pg_catalog.nextval('shorturl.link_id_seq'::pg_catalog.regclass)",
							0, NULL),
			  NULL, NULL, false, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

PG_FUNCTION_INFO_V1(shorturl_shorten);

/*
 * shorturl_shorten implements shorten(url, expires_at, max_visits, alias,
 * reuse) RETURNS text.  Not STRICT: every argument but url may be NULL.
 */
Datum
shorturl_shorten(PG_FUNCTION_ARGS)
{
	text	   *url;
	text	   *alias = PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3);
	bool		reuse = PG_ARGISNULL(4) ? false : PG_GETARG_BOOL(4);
	Datum		limits[2] = {0, 0};
	char		limit_nulls[2] = {'n', 'n'};
	uint64		url_hash;
	text	   *code = NULL;
	text	   *result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("url must not be null")));
	url = PG_GETARG_TEXT_PP(0);
	check_url(url);

	if (!PG_ARGISNULL(1))
	{
		TimestampTz expires_at = PG_GETARG_TIMESTAMPTZ(1);

		if (expires_at <= GetCurrentTransactionStartTimestamp())
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expires_at must be in the future"),
					 errdetail("It is %s; the transaction started at %s.",
							   timestamptz_to_str(expires_at),
							   timestamptz_to_str(GetCurrentTransactionStartTimestamp()))));
		limits[0] = TimestampTzGetDatum(expires_at);
		limit_nulls[0] = ' ';
	}
	if (!PG_ARGISNULL(2))
	{
		int64		max_visits = PG_GETARG_INT64(2);

		if (max_visits < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_visits must be at least 1, not " INT64_FORMAT,
							max_visits)));
		limits[1] = Int64GetDatum(max_visits);
		limit_nulls[1] = ' ';
	}

	url_hash = route_hash64(VARDATA_ANY(url), VARSIZE_ANY_EXHDR(url));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (alias)
		check_alias(alias);

	if (on_coordinator())
	{
		Oid			argtypes[5] = {TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTOID, BOOLOID};
		Datum		values[5];
		char		nulls[5] = {' ', limit_nulls[0], limit_nulls[1], alias ? ' ' : 'n', ' '};
		bool		isnull;
		Datum		d;

		/* serialise reuse lookups of one URL, as on a single server */
		if (reuse)
			lock_url(url_hash);
		values[0] = PointerGetDatum(url);
		values[1] = limits[0];
		values[2] = limits[1];
		values[3] = PointerGetDatum(alias);
		values[4] = BoolGetDatum(reuse);
		SPI_finish();
		d = call_coordinator("SELECT shorturl.coordinator_shorten($1, $2, $3, $4, $5)",
							 5, argtypes, values, nulls, &isnull);
		PG_RETURN_DATUM(d);
	}

	if (reuse)
	{
		lock_url(url_hash);
		code = find_reusable(url, url_hash, limits, limit_nulls, alias);
	}

	if (code == NULL && alias)
	{
		check_quarantine(alias);
		if (!insert_link(alias, url, limits, limit_nulls, true))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("alias \"%s\" is already taken", text_to_cstring(alias)),
					 errhint("Choose another alias, or omit it to get a generated code.")));
		code = alias;
	}
	else if (code == NULL)
	{
		for (int attempt = 0; attempt < MAX_CODE_ATTEMPTS && code == NULL; attempt++)
		{
			text	   *candidate = id_to_code(next_id());

			if (insert_link(candidate, url, limits, limit_nulls, false))
				code = candidate;
		}
		if (code == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("could not find a free code in %d attempts",
							MAX_CODE_ATTEMPTS),
					 errdetail("Every generated code tried was already taken by an alias or an earlier link."),
					 errhint("Raise shorturl.code_length to use a wider code space.")));
	}

	/* copy the code out of SPI memory before SPI_finish frees it */
	result = (text *) SPI_datumTransfer(PointerGetDatum(code), false, -1);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/* ---------------------------------------------------------------------
 * resolve, link_status, visits
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(shorturl_resolve);

/*
 * shorturl_resolve implements resolve(code) RETURNS text: the URL of an
 * active link, counting one visit, or NULL for anything else.  Any text is
 * accepted; what cannot be a code is answered without a lookup.
 */
Datum
shorturl_resolve(PG_FUNCTION_ARGS)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(code);
	int			len = VARSIZE_ANY_EXHDR(code);
	text	   *url;

	if (!plausible_code(code))
		PG_RETURN_NULL();

	if (on_coordinator())
	{
		bool		isnull;
		Datum		d = call_coordinator_code("SELECT shorturl.coordinator_resolve($1)",
											  code, &isnull);

		if (isnull)
			PG_RETURN_NULL();
		PG_RETURN_DATUM(d);
	}

	/*
	 * A hot standby cannot count: it serves links without a visit limit and
	 * leaves counting to the primary.  A link with a limit is served only
	 * where its count is exact.
	 */
	if (RecoveryInProgress())
	{
		link_row	row = fetch_link(s, len, GetActiveSnapshot(), true);

		if (!row.found || row.has_max ||
			strcmp(row_status(&row, row.visits), "active") != 0)
			PG_RETURN_NULL();
		PG_RETURN_TEXT_P(row.url);
	}

	if (counters_serving())
	{
		link_row	row = fetch_link(s, len, GetActiveSnapshot(), true);
		counter_link link;

		if (!row.found ||
			(row.has_expiry && row.expires_at <= GetCurrentTransactionStartTimestamp()))
			PG_RETURN_NULL();
		link = counter_link_of(&row, s, len);
		switch (counters_bump(&link))
		{
			case COUNTER_COUNTED:
				PG_RETURN_TEXT_P(row.url);
			case COUNTER_EXHAUSTED:
			case COUNTER_GONE:
				PG_RETURN_NULL();
			case COUNTER_FULL:
				break;			/* count it in the table, below */
		}
	}

	{
		as_owner	saved = become_owner();

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		url = links_count_visit(code);
		SPI_finish();
		back_from_owner(saved);
	}

	if (url == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(url);
}

PG_FUNCTION_INFO_V1(shorturl_link_status);

/*
 * shorturl_link_status implements link_status(code) RETURNS text: active,
 * expired, exhausted or unknown, without counting a visit.
 */
Datum
shorturl_link_status(PG_FUNCTION_ARGS)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	link_row	row = {0};
	int64		visits = 0;

	if (plausible_code(code) && on_coordinator())
	{
		bool		isnull;

		PG_RETURN_DATUM(call_coordinator_code("SELECT shorturl.coordinator_link_status($1)",
											  code, &isnull));
	}
	if (plausible_code(code))
	{
		row = fetch_link(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code),
						 GetActiveSnapshot(), false);
		if (row.found)
			visits = live_visits(&row, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code));
	}
	PG_RETURN_TEXT_P(cstring_to_text(row_status(&row, visits)));
}

PG_FUNCTION_INFO_V1(shorturl_visits);

/*
 * shorturl_visits implements visits(code) RETURNS bigint: the live count of
 * visits, including those not yet flushed, or NULL for an unknown code.
 */
Datum
shorturl_visits(PG_FUNCTION_ARGS)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	link_row	row;

	if (!plausible_code(code))
		PG_RETURN_NULL();
	if (on_coordinator())
	{
		bool		isnull;
		Datum		d = call_coordinator_code("SELECT shorturl.coordinator_visits($1)",
											  code, &isnull);

		if (isnull)
			PG_RETURN_NULL();
		PG_RETURN_DATUM(d);
	}
	row = fetch_link(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code),
					 GetActiveSnapshot(), false);
	if (!row.found)
		PG_RETURN_NULL();
	PG_RETURN_INT64(live_visits(&row, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code)));
}

/* ---------------------------------------------------------------------
 * encode_id, decode_id, new_code_key and the key table's triggers
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(shorturl_encode_id);
PG_FUNCTION_INFO_V1(shorturl_decode_id);
PG_FUNCTION_INFO_V1(shorturl_new_code_key);
PG_FUNCTION_INFO_V1(shorturl_code_key_changed);

/* shorturl_encode_id: the code the generator makes of a sequence number */
Datum
shorturl_encode_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(id_to_code(PG_GETARG_INT64(0)));
}

/*
 * shorturl_decode_id: the sequence number a generated code came from, or
 * NULL when the text is not such a code (an alias, or another key's code).
 */
Datum
shorturl_decode_id(PG_FUNCTION_ARGS)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	int64		id;

	if (!code_to_id(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code), &id))
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
	return shorturl_invalidate_trigger(fcinfo, "code_key_changed");
}

/*
 * links_init registers the relcache callbacks of the key and of the links
 * table's OIDs; called from _PG_init.
 */
void
links_init(void)
{
	CacheRegisterRelcacheCallback(key_cache_callback, (Datum) 0);
	CacheRegisterRelcacheCallback(links_rel_callback, (Datum) 0);
}
