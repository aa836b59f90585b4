/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The extension's tables as the C code reads them directly.
 *
 * resolve() and its friends read shorturl.links, shorturl.visit_counts and
 * shorturl.pending_visits through their indexes without SQL.  This file
 * finds those relations and the column numbers once per backend, and checks
 * that each column still has the name and type the extension gave it: a
 * table that a superuser altered (a renamed or dropped column), or one of
 * an older version whose library was replaced before ALTER EXTENSION
 * UPDATE, is reported with a clear error instead of being misread.  A
 * relcache invalidation of any of them (an ALTER, a DROP EXTENSION) makes
 * the next call look everything up again.
 *
 * It also holds the small helpers the SQL-callable files share: running a
 * piece of SQL as the tables' owner, and the body of the statement triggers
 * that invalidate per-backend caches of configuration tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "compat.h"
#include "pg_shorturl.h"

/*
 * A column the C code reads: its name and type.  An optional column came
 * with a later version of the extension script; the library reads tables
 * that lack it (InvalidAttrNumber), so it runs on the previous version's
 * tables between a package upgrade and ALTER EXTENSION UPDATE.
 */
typedef struct column_spec
{
	const char *name;
	Oid			type;
	bool		optional;
} column_spec;

static const column_spec links_columns[LINKS_NCOLUMNS] = {
	[LINKS_ID] = {"id", INT8OID},
	[LINKS_CODE] = {"code", TEXTOID},
	[LINKS_DOMAIN] = {"domain", TEXTOID},
	[LINKS_URL] = {"url", TEXTOID},
	[LINKS_EXPIRES_AT] = {"expires_at", TIMESTAMPTZOID},
	[LINKS_MAX_VISITS] = {"max_visits", INT8OID},
	[LINKS_DISABLED_AT] = {"disabled_at", TIMESTAMPTZOID},
	[LINKS_EXHAUSTED_AT] = {"exhausted_at", TIMESTAMPTZOID},
	[LINKS_IS_ALIAS] = {"is_alias", BOOLOID},
	[LINKS_URL_HASH] = {"url_hash", INT8OID},
	[LINKS_OWNER] = {"owner", TEXTOID, true},
};

static const column_spec counts_columns[COUNTS_NCOLUMNS] = {
	[COUNTS_LINK_ID] = {"link_id", INT8OID},
	[COUNTS_VISITS] = {"visits", INT8OID},
};

static bool tables_valid = false;
static shorturl_tables tables;

/*
 * catalog_relid returns the OID of a table of the extension's schema, or
 * reports that the extension is not installed in this database.
 */
Oid
catalog_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid(SHORTURL_SCHEMA, true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", SHORTURL_SCHEMA, relname),
				 errhint("Is the extension pg_shorturl installed (and up to date) in this database?")));
	return relid;
}

/*
 * catalog_not_ours reports a table whose shape is not the one the
 * extension made.
 */
void
catalog_not_ours(const char *relname, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s.%s\" is not the one pg_shorturl %s made: %s",
					SHORTURL_SCHEMA, relname, SHORTURL_VERSION, what),
			 errhint("If the library was just upgraded, run ALTER EXTENSION pg_shorturl UPDATE; otherwise undo the change to the table.")));
}

/*
 * find_columns fills atts with the column numbers of a relation's columns,
 * checking each one's type.
 */
static void
find_columns(Oid relid, const char *relname, const column_spec *cols, int n,
			 AttrNumber *atts)
{
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SearchSysCacheAttName(relid, cols[i].name);
		Form_pg_attribute att;

		if (!HeapTupleIsValid(tup) && cols[i].optional)
		{
			atts[i] = InvalidAttrNumber;
			continue;
		}
		if (!HeapTupleIsValid(tup))
			catalog_not_ours(relname, psprintf("it has no column \"%s\"", cols[i].name));
		att = (Form_pg_attribute) GETSTRUCT(tup);
		if (att->atttypid != cols[i].type)
		{
			ReleaseSysCache(tup);
			catalog_not_ours(relname, psprintf("column \"%s\" is of type %s, not %s",
									   cols[i].name, format_type_be(att->atttypid),
									   format_type_be(cols[i].type)));
		}
		atts[i] = att->attnum;
		ReleaseSysCache(tup);
	}
}

/*
 * find_index returns the OID of a unique index of the schema on exactly the
 * given columns, in that order.
 */
static Oid
find_index(Oid nsp, const char *relname, const char *indexname,
		   const AttrNumber *keys, int nkeys)
{
	Oid			indexid = get_relname_relid(indexname, nsp);
	HeapTuple	tup;
	Form_pg_index index;
	bool		ok;

	if (!OidIsValid(indexid))
		catalog_not_ours(relname, psprintf("its index \"%s\" is missing", indexname));
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", indexid);
	index = (Form_pg_index) GETSTRUCT(tup);
	ok = index->indnkeyatts == nkeys && index->indisvalid;
	for (int i = 0; ok && i < nkeys; i++)
		ok = index->indkey.values[i] == keys[i];
	ReleaseSysCache(tup);
	if (!ok)
		catalog_not_ours(relname, psprintf("its index \"%s\" is not on the columns pg_shorturl reads",
								   indexname));
	return indexid;
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

/* lookup_tables fills the cache, or reports why it cannot */
static void
lookup_tables(void)
{
	shorturl_tables t;
	Oid			nsp;
	AttrNumber	keys[2];

	tables_valid = false;
	memset(&t, 0, sizeof(t));
	t.links = catalog_relid("links");
	nsp = get_rel_namespace(t.links);
	if (get_rel_relkind(t.links) != RELKIND_RELATION)
		catalog_not_ours("links", "it is not a plain table");
	/* first, so that tables of an older version are reported as such */
	find_columns(t.links, "links", links_columns, LINKS_NCOLUMNS, t.links_att);
	t.link_id_seq = catalog_relid("link_id_seq");
	if (get_rel_relkind(t.link_id_seq) != RELKIND_SEQUENCE)
		catalog_not_ours("link_id_seq", "it is not a sequence");
	t.counts = catalog_relid("visit_counts");
	t.pending = catalog_relid("pending_visits");
	find_columns(t.counts, "visit_counts", counts_columns, COUNTS_NCOLUMNS, t.counts_att);
	find_columns(t.pending, "pending_visits", counts_columns, COUNTS_NCOLUMNS, t.pending_att);

	keys[0] = t.links_att[LINKS_CODE];
	keys[1] = t.links_att[LINKS_DOMAIN];
	t.links_code_key = find_index(nsp, "links", "links_code_key", keys, 2);
	keys[0] = t.links_att[LINKS_URL_HASH];
	keys[1] = t.links_att[LINKS_ID];
	t.links_url_hash_idx = find_index(nsp, "links", "links_url_hash_idx", keys, 2);
	t.links_pkey = find_index(nsp, "links", "links_pkey", keys + 1, 1);
	keys[0] = t.counts_att[COUNTS_LINK_ID];
	t.counts_pkey = find_index(nsp, "visit_counts", "visit_counts_pkey", keys, 1);
	keys[0] = t.pending_att[COUNTS_LINK_ID];
	t.pending_idx = find_index(nsp, "pending_visits", "pending_visits_link_id_idx", keys, 1);
	t.owner = rel_owner(t.links);
	/* a library newer than the schema (before ALTER EXTENSION UPDATE) */
	t.analytics = OidIsValid(get_relname_relid("link_visits_hourly", nsp));
	t.standby_batches = get_relname_relid("standby_batches", nsp);
	if (OidIsValid(t.standby_batches))
	{
		keys[0] = 1;			/* system_id */
		keys[1] = 2;			/* standby */
		t.standby_batches_pkey = find_index(nsp, "standby_batches", "standby_batches_pkey", keys, 2);
	}

	tables = t;
	tables_valid = true;
}

/*
 * catalog_tables returns the extension's tables, looking them up if an
 * invalidation arrived since the last call, or reports that they are
 * missing or altered.
 */
const shorturl_tables *
catalog_tables(void)
{
	if (!tables_valid)
		lookup_tables();
	return &tables;
}

/*
 * catalog_tables_if_installed is catalog_tables for callers that answer
 * "nothing" when the extension is not (or no longer) installed, as
 * resolve() does during a DROP EXTENSION: NULL then.  An altered table is
 * still an error.
 */
const shorturl_tables *
catalog_tables_if_installed(void)
{
	Oid			nsp;

	if (tables_valid)
		return &tables;
	nsp = get_namespace_oid(SHORTURL_SCHEMA, true);
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("links", nsp)))
		return NULL;
	return catalog_tables();
}

/*
 * catalog_lock_links returns the tables with shorturl.links opened and
 * locked for reading in *rel, or NULL when the extension is not (or no
 * longer) installed.  A DROP EXTENSION that committed since the tables were
 * looked up makes their OIDs stale: the caller then gets NULL, as for an
 * uninstalled extension, instead of "could not open relation".  Once the
 * lock is held, the table and its indexes cannot change under the caller;
 * the invalidations the lock delivered are applied before the column
 * numbers are trusted.
 */
const shorturl_tables *
catalog_lock_links(Relation *rel)
{
	for (int attempt = 0; attempt < 3; attempt++)
	{
		const shorturl_tables *t = catalog_tables_if_installed();
		Relation	r;

		if (t == NULL)
			return NULL;
		r = try_table_open(t->links, AccessShareLock);
		if (r == NULL)
		{
			tables_valid = false;
			continue;
		}
		t = catalog_tables_if_installed();
		if (t != NULL && t->links == RelationGetRelid(r))
		{
			*rel = r;
			return t;
		}
		table_close(r, AccessShareLock);
	}
	return NULL;
}

/*
 * tables_callback forgets the cached OIDs on any relcache invalidation of
 * one of the relations (or of every relation).
 */
static void
tables_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	if (!tables_valid)
		return;
	if (relid == InvalidOid || relid == tables.links || relid == tables.counts ||
		relid == tables.pending || relid == tables.links_code_key ||
		relid == tables.links_url_hash_idx || relid == tables.links_pkey ||
		relid == tables.link_id_seq ||
		relid == tables.counts_pkey || relid == tables.pending_idx)
		tables_valid = false;
}

/* catalog_init registers the relcache callback; called from _PG_init */
void
catalog_init(void)
{
	CacheRegisterRelcacheCallback(tables_callback, (Datum) 0);
}

/*
 * As the owner.  resolve(), link_status() and visits() are not SECURITY
 * DEFINER: they read links through an index directly and count clicks in
 * shared memory, which needs no privilege (EXECUTE on the function is the
 * gate).  Only their rare paths run SQL on the tables (counting a click
 * synchronously): those run as the tables' owner, the way PostgreSQL's
 * foreign-key triggers do, and their SQL names every table, function and
 * operator with its schema, so the caller's search_path cannot change what
 * it means.  An error on the way restores the caller's identity with the
 * transaction.
 */
as_owner
catalog_become_owner(void)
{
	as_owner	saved;
	Oid			owner = catalog_tables()->owner;

	GetUserIdAndSecContext(&saved.userid, &saved.sec_context);
	SetUserIdAndSecContext(owner, saved.sec_context | SECURITY_LOCAL_USERID_CHANGE);
	return saved;
}

/* catalog_back_from_owner restores the identity catalog_become_owner saved */
void
catalog_back_from_owner(as_owner saved)
{
	SetUserIdAndSecContext(saved.userid, saved.sec_context);
}

/*
 * catalog_invalidate_trigger is the body of the statement triggers on the
 * cached configuration tables: it queues a relcache invalidation of the
 * table, which every backend receives when the change commits (and this one
 * at once).
 */
Datum
catalog_invalidate_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as a trigger", name)));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

#if PG_VERSION_NUM < 150000
/*
 * compat_init_materialized_srf sets up a materialized set-returning call,
 * as InitMaterializedSRF does from 15.
 */
void
compat_init_materialized_srf(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
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
