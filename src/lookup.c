/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  Reading one link, or its stored visit count, through an index.
 *
 * resolve() is the hottest path there is, so it reads shorturl.links
 * through its unique index on (code, domain) directly: one index probe
 * gives the row's identity, URL, limits and state together, with no SPI
 * and no planner.  The stored visit count of a link is the sum of its row
 * in shorturl.visit_counts and its rows in shorturl.pending_visits (clicks
 * counted synchronously, compacted by the flush); clicks in shared memory
 * are clicks.c's business.

 * Every read keeps its locks to the end of the transaction, as a query
 * would: a DROP EXTENSION that comes meanwhile waits, instead of leaving a
 * later read of the same call with a table that is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_collation.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"
#include "access/xlog.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "compat.h"
#include "lookup.h"
#include "pg_shorturl.h"

/* fill_row reads a link's row from a slot of shorturl.links */
static void
fill_row(const shorturl_tables *t, TupleTableSlot *slot, bool want_url, link_row *row)
{
	const AttrNumber *att = t->links_att;
	bool		isnull;
	Datum		d;

	row->found = true;
	row->id = DatumGetInt64(slot_getattr(slot, att[LINKS_ID], &isnull));
	if (want_url)
		row->url = DatumGetTextPCopy(slot_getattr(slot, att[LINKS_URL], &isnull));
	d = slot_getattr(slot, att[LINKS_EXPIRES_AT], &isnull);
	row->has_expiry = !isnull;
	row->expires_at = isnull ? 0 : DatumGetTimestampTz(d);
	d = slot_getattr(slot, att[LINKS_MAX_VISITS], &isnull);
	row->has_max = !isnull;
	row->max_visits = isnull ? 0 : DatumGetInt64(d);
	(void) slot_getattr(slot, att[LINKS_DISABLED_AT], &isnull);
	row->disabled = !isnull;
}

/*
 * header_newest tells whether a row version is its link's newest in the
 * table: inserted by a committed transaction and neither updated nor
 * deleted by any transaction, committed or in progress (its xmax invalid,
 * or only a lock).  The URL cache fills only from such a version
 * (urlcache.c, rule 2).  Read under the buffer's share lock, which orders
 * it against an update's setting of xmax.
 */
static bool
header_newest(HeapTupleHeader h)
{
	return HeapTupleHeaderXminCommitted(h) &&
		((h->t_infomask & HEAP_XMAX_INVALID) != 0 ||
		 HEAP_XMAX_IS_LOCKED_ONLY(h->t_infomask));
}

/* is_newest tells it of the row version in a slot */
static bool
is_newest(TupleTableSlot *slot)
{
	BufferHeapTupleTableSlot *bslot = (BufferHeapTupleTableSlot *) slot;
	HeapTupleHeader h;
	bool		newest;

	if (!TTS_IS_BUFFERTUPLE(slot) || !BufferIsValid(bslot->buffer) ||
		bslot->base.tuple == NULL)
		return false;
	h = bslot->base.tuple->t_data;
	LockBuffer(bslot->buffer, BUFFER_LOCK_SHARE);
	newest = header_newest(h);
	LockBuffer(bslot->buffer, BUFFER_LOCK_UNLOCK);
	return newest;
}

/*
 * lookup_link reads the link with this code on this domain ("" for the
 * default one) as of the snapshot.  It returns false when the extension is
 * not (or no longer) installed; otherwise row->found says whether the link
 * exists.  The URL is copied only when want_url.  With newest, it also
 * tells whether the row read is the link's newest version (is_newest).
 * The caller may pass the links table it has opened (catalog_lock_links)
 * in heap, which this closes, keeping the lock; or NULL.
 */
bool
lookup_link(Relation heap, const char *code, int code_len, const char *domain,
			int domain_len, Snapshot snapshot, bool want_url, link_row *row,
			bool *newest)
{
	const shorturl_tables *t = heap != NULL ? catalog_tables() : catalog_lock_links(&heap);
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skey[2];
	TupleTableSlot *slot;
	text	   *code_t;
	text	   *domain_t;

	memset(row, 0, sizeof(*row));
	if (newest != NULL)
		*newest = false;
	if (t == NULL)
		return false;
	code_t = cstring_to_text_with_len(code, code_len);
	domain_t = cstring_to_text_with_len(domain, domain_len);
	index = index_open(t->links_code_key, AccessShareLock);
	slot = table_slot_create(heap, NULL);

	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(code_t));
	skey[0].sk_collation = C_COLLATION_OID;
	ScanKeyInit(&skey[1], 2, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(domain_t));
	skey[1].sk_collation = C_COLLATION_OID;
	scan = compat_index_beginscan(heap, index, snapshot, 2, 0);
	index_rescan(scan, skey, 2, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		fill_row(t, slot, want_url, row);
		if (newest != NULL)
			*newest = is_newest(slot);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* the locks stay to the end of the transaction: no DROP cuts in */
	index_close(index, NoLock);
	table_close(heap, NoLock);
	pfree(code_t);
	pfree(domain_t);
	return true;
}

/*
 * lookup_newest_by_url_hash fills out[] with at most limit links whose URL
 * has this hash, newest first, walking the index on (url_hash, id)
 * backwards, and returns how many.  It reads no more than limit index
 * entries' rows, however many links share the URL.
 */
int
lookup_newest_by_url_hash(int64 url_hash, Snapshot snapshot, int limit,
						  link_candidate *out)
{
	Relation	heap;
	const shorturl_tables *t = catalog_lock_links(&heap);
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	int			n = 0;

	if (t == NULL)
		return 0;
	index = index_open(t->links_url_hash_idx, AccessShareLock);
	slot = table_slot_create(heap, NULL);
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(url_hash));
	scan = compat_index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	while (n < limit && index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		link_candidate *c = &out[n++];
		bool		isnull;

		memset(c, 0, sizeof(*c));
		fill_row(t, slot, true, &c->row);
		c->code = DatumGetTextPCopy(slot_getattr(slot, t->links_att[LINKS_CODE], &isnull));
		c->domain = DatumGetTextPCopy(slot_getattr(slot, t->links_att[LINKS_DOMAIN], &isnull));
		c->is_alias = DatumGetBool(slot_getattr(slot, t->links_att[LINKS_IS_ALIAS], &isnull));
		if (t->links_att[LINKS_OWNER] != InvalidAttrNumber)
		{
			Datum		d = slot_getattr(slot, t->links_att[LINKS_OWNER], &isnull);

			c->owner = isnull ? NULL : DatumGetTextPCopy(d);
		}
		(void) slot_getattr(slot, t->links_att[LINKS_EXHAUSTED_AT], &isnull);
		c->exhausted = !isnull;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* the locks stay to the end of the transaction: no DROP cuts in */
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return n;
}

/*
 * sum_by_link adds up the visits column of the rows of a table whose index
 * on link_id matches, as of the snapshot.
 */
static int64
sum_by_link(Oid relid, Oid indexid, AttrNumber att_visits, int64 link_id,
			Snapshot snapshot)
{
	Relation	heap = table_open(relid, AccessShareLock);
	Relation	index = index_open(indexid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan;
	ScanKeyData skey;
	int64		sum = 0;

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(link_id));
	scan = compat_index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, att_visits, &isnull);

		if (!isnull)
			sum += DatumGetInt64(d);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* the locks stay to the end of the transaction: no DROP cuts in */
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return sum;
}

/*
 * lookup_stored_visits is a link's visit count as the tables hold it at
 * the snapshot: its shorturl.visit_counts row plus its rows in
 * shorturl.pending_visits.
 */
int64
lookup_stored_visits(int64 link_id, Snapshot snapshot)
{
	const shorturl_tables *t = catalog_tables();

	return sum_by_link(t->counts, t->counts_pkey, t->counts_att[COUNTS_VISITS], link_id, snapshot) +
		sum_by_link(t->pending, t->pending_idx, t->pending_att[COUNTS_VISITS], link_id, snapshot);
}

/*
 * by_id probes shorturl.links' primary key for link_id as a snapshot sees
 * it; true if a row is there, read into *row (without its URL) when row
 * is not NULL.  The locks stay to the end of the transaction: no DROP
 * cuts in.
 */
static bool
by_id(int64 link_id, Snapshot snapshot, link_row *row)
{
	const shorturl_tables *t = catalog_tables();
	Relation	heap = table_open(t->links, AccessShareLock);
	Relation	index = index_open(t->links_pkey, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan;
	ScanKeyData skey;
	bool		found;

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(link_id));
	scan = compat_index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found && row != NULL)
		fill_row(t, slot, false, row);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return found;
}

/*
 * lookup_link_by_id reads the link with this id as a snapshot sees it,
 * without its URL; false if there is none.
 */
bool
lookup_link_by_id(int64 link_id, Snapshot snapshot, link_row *row)
{
	memset(row, 0, sizeof(*row));
	return by_id(link_id, snapshot, row);
}

/*
 * lookup_link_may_exist tells whether a link with this id exists, or is
 * being made or deleted by a transaction still in progress: a "dirty" read
 * of the primary key, as unique checks do.  False means the link is gone
 * for good (its deletion committed, or its making rolled back).
 */
bool
lookup_link_may_exist(int64 link_id)
{
	SnapshotData dirty;

	InitDirtySnapshot(dirty);
	return by_id(link_id, &dirty, NULL);
}

/*
 * lookup_standby_name is the name a standby ships its clicks under
 * (shorturl.standby_name, else cluster_name); NULL if it has none.
 */
const char *
lookup_standby_name(void)
{
	if (shorturl_standby_name && shorturl_standby_name[0])
		return shorturl_standby_name;
	if (cluster_name && cluster_name[0])
		return cluster_name;
	return NULL;
}

/*
 * lookup_batch_applied tells whether a snapshot sees the primary's commit
 * of a standby's batch seq (ship.c): shorturl.standby_batches holds that
 * standby's number at seq or beyond.  On a standby, the row is the
 * replayed one, so the stored counts at the snapshot include the batch.
 * False before 0.13's schema.
 */
bool
lookup_batch_applied(const char *standby, uint64 seq, Snapshot snapshot)
{
	const shorturl_tables *t = catalog_tables();
	Relation	heap;
	Relation	index;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData skey;
	bool		applied = false;

	if (seq == 0 || standby == NULL || !OidIsValid(t->standby_batches))
		return false;
	heap = table_open(t->standby_batches, AccessShareLock);
	index = index_open(t->standby_batches_pkey, AccessShareLock);
	slot = table_slot_create(heap, NULL);
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum((int64) GetSystemIdentifier()));
	scan = compat_index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	/* a primary has few standbys: compare the names here */
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		name = slot_getattr(slot, 2, &isnull);
		Datum		last;

		if (isnull || strcmp(TextDatumGetCString(name), standby) != 0)
			continue;
		last = slot_getattr(slot, 3, &isnull);
		applied = !isnull && (uint64) DatumGetInt64(last) >= seq;
		break;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* the locks stay to the end of the transaction: no DROP cuts in */
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return applied;
}
