/*-------------------------------------------------------------------------
 *
 * urlcache.c
 *	  A cache of hot links in shared memory, in front of shorturl.links'
 *	  index on (code, domain): what resolve(), link_status() and visits()
 *	  need of a link (its identity, URL, expiry, visit limit and disabled
 *	  state), answered without touching the index or the heap.
 *
 * Layout.  shorturl.url_cache_size bytes (0: no cache) are cut into
 * URLCACHE_PARTITIONS partitions, each with its LWLock, as the lock manager
 * does.  A partition has fixed entry slots, an open-addressing index of
 * them (linear probing, deletion by backward shift) and an arena of
 * CHUNK_SIZE-byte chunks that hold each entry's code, domain and URL, so a
 * short URL costs little and a long one is still cached.  A key is the
 * database, the links table, its file (a rewrite or TRUNCATE makes a new
 * one, so nothing of the old file can answer), the domain and the code;
 * entries compare all of it, not just its hash.  A hit holds the
 * partition's lock in shared mode while it copies the entry out.
 *
 * Admission and eviction: CLOCK (a reference bit per entry, set by hits)
 * chooses a victim, and TinyLFU (tinylfu.c: a frequency sketch every
 * lookup counts in) admits a new link only if it was asked for more often
 * than the victim.  A link clicked once does not push out a hot one; see
 * test/bench/cache_policy.sh for the hit rates that chose this.
 *
 * Never stale.  A change to a link must leave no entry that a statement
 * starting after the change commits could read.  Three rules do it:
 *	1. The triggers on shorturl.links (BEFORE UPDATE OR DELETE, per row,
 *	   and BEFORE TRUNCATE; ENABLE ALWAYS, so replication roles fire them
 *	   too) remember the key.  At PRE_COMMIT (or PRE_PREPARE), before the
 *	   commit becomes visible, the transaction evicts every key it
 *	   remembered and advances the generation of their partitions.  Until
 *	   it ends, a transaction that changed links neither reads nor fills
 *	   the cache: it must see its own changes, and another session may
 *	   have filled the old state after its trigger ran.
 *	2. A fill happens only for a row version that is the table's newest:
 *	   inserted by a committed transaction, and neither updated nor deleted
 *	   by any transaction, committed or not (xmax invalid or a lock only).
 *	   This is read from the tuple under its buffer's share lock
 *	   (lookup.c).
 *	3. A fill inserts only if the partition's generation is the one read
 *	   by the probe that missed, before the row was read.
 * Proof sketch: a fill F of old data read the row before the changer M
 * updated it (else rule 2 refuses it), so F's probe read the generation
 * before M's PRE_COMMIT advanced it.  If F inserts before M's PRE_COMMIT,
 * that PRE_COMMIT evicts the entry; if after, the generation differs and
 * F gives up.  Either way no stale entry outlives M's PRE_COMMIT, which
 * comes before its commit is visible.  A transaction that aborts leaves
 * the old state current, so whatever was filled stays right.
 * A transaction with more than MAX_REMEMBERED changed links (or a
 * TRUNCATE, or a reset) clears its database's entries at PRE_COMMIT
 * instead, once.  An ALTER EXTENSION UPDATE
 * script calls shorturl._url_cache_reset() (from 0.11), and so does
 * CREATE EXTENSION, which runs the same scripts: a new links table whose
 * OID happens to be an old one's never meets the old one's entries.
 *
 * A hit still checks expiry against the clock and the blocklist against
 * the URL (resolve.c), and counts the click as a miss would: the visit
 * limit stays exact.  A hit answers with the link's newest committed
 * state, so transactions whose snapshot lasts (REPEATABLE READ,
 * SERIALIZABLE, which would also miss the predicate lock of a read) do
 * not use the cache.
 *
 * On a hot standby, replay applies changes without running the triggers,
 * so rule 1 has a second half:
 *	4. At PRE_COMMIT (or PRE_PREPARE) the changing transaction also logs
 *	   the keys it changed (or "every link of the database") in a WAL
 *	   record of our own resource manager (RM_SHORTURL_ID), when wal_level
 *	   allows a standby and the library is preloaded (which registers the
 *	   resource manager), whether or not this server has a cache.  A
 *	   standby's startup process, replaying it, evicts those keys and
 *	   advances their partitions' generations: what PRE_COMMIT did on the
 *	   primary.  A standby uses its cache in recovery only once it has
 *	   replayed a record of ours since it started, or since it replayed
 *	   the primary's last start (a shutdown checkpoint, or an end of
 *	   recovery, which clear the cache: xlog_redo_watching): a primary that
 *	   runs an older library, or none preloaded, logs nothing of ours, and
 *	   a willing one logs a HELLO after each checkpoint begins
 *	   (urlcache_announce).
 * Rules 2 and 3 hold on a standby as they are: replay sets the old
 * version's xmax under the buffer's exclusive lock, and the record comes
 * after the transaction's changes and before its commit record.  So the
 * proof above stands with "the record's replay" for "M's PRE_COMMIT", and
 * entries filled in recovery are as safe as a primary's, with no check per
 * hit.  After a promotion, rules 1 to 3 go on from the last record
 * replayed.  Every server that replays this WAL must load the library
 * (shared_preload_libraries): the startup process stops at a record of a
 * resource manager it does not know.  Nothing survives a restart.
 *
 * One concern, about 1,350 lines: the invalidation protocol, with its
 * replay, works on the partitions' internals (generations, the index,
 * eviction) that nothing else may touch, so the table and its
 * invalidation stay in one file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <xxhash.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "catalog/pg_control.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "catalog.h"
#include "compat.h"
#include "pg_shorturl.h"
#include "tinylfu.h"
#include "urlcache.h"
#include "validate.h"

#define URLCACHE_PARTITIONS		16
#define CHUNK_SIZE				64
#define CHUNK_DATA				(CHUNK_SIZE - (int) sizeof(uint32))
#define NO_CHUNK				PG_UINT32_MAX
#define NO_SLOT					(-1)

/* Longest code, domain and URL together that an entry holds */
#define MAX_PAYLOAD				8192

/* Changed links a transaction remembers one by one; beyond, it clears all */
#define MAX_REMEMBERED			10000

/* Bytes an entry is planned for: its slot, two index places, two chunks */
#define PLANNED_ENTRY_BYTES		(sizeof(cache_entry) + 2 * sizeof(int32) + 2 * CHUNK_SIZE)

#define ENTRY_HAS_EXPIRY		0x01
#define ENTRY_HAS_MAX			0x02
#define ENTRY_DISABLED			0x04

typedef struct cache_chunk
{
	uint32		next;			/* NO_CHUNK ends the chain */
	char		data[CHUNK_DATA];
} cache_chunk;

typedef struct cache_entry
{
	uint64		hash;			/* of the key (key_hash) */
	Oid			dbid;			/* InvalidOid: the slot is free */
	Oid			relid;			/* shorturl.links */
	Oid			filenumber;		/* its file */
	uint32		first_chunk;	/* code, domain, URL; or the next free slot */
	int64		link_id;
	TimestampTz expires_at;
	int64		max_visits;
	uint32		url_len;
	uint16		code_len;
	uint16		domain_len;
	uint8		flags;
	pg_atomic_uint32 referenced;	/* CLOCK's bit, set by hits */
} cache_entry;

/* Under the partition's lock (exclusive to change) */
typedef struct cache_partition
{
	uint64		gen;			/* advanced when a change commits */
	uint32		used;			/* slots in use */
	uint32		free_chunks;
	uint32		chunk_head;		/* the free chunks' list */
	int32		slot_head;		/* the free slots' list */
	uint32		hand;			/* CLOCK's */
} cache_partition;

typedef struct urlcache_shared
{
	uint32		slots;			/* per partition */
	uint32		buckets;		/* per partition, a power of two */
	uint32		chunks;			/* per partition */
	uint64		seed;			/* of the key hashes, drawn at start */
	Size		bytes;			/* all of it */
	pg_atomic_uint64 hits;
	pg_atomic_uint64 misses;
	pg_atomic_uint64 fills;
	pg_atomic_uint64 rejected;
	pg_atomic_uint64 evictions;
	pg_atomic_uint64 invalidations;
	pg_atomic_uint32 primary_logs;	/* in recovery: a record of ours replayed */
	cache_partition part[URLCACHE_PARTITIONS];
} urlcache_shared;

static urlcache_shared *shared = NULL;

/* Our resource manager is registered (preloaded): rule 4 may log */
static bool rmgr_registered = false;
static cache_entry *entries;
static int32 *buckets;
static cache_chunk *chunks;
static tlfu_sketch *sketch;
static LWLockPadded *locks;

/* What this transaction changed: see rule 1 */
static struct
{
	uint64	   *hashes;			/* their key hashes, when there is a cache */
	int			n;				/* links remembered */
	int			size;
	bool		any;			/* links changed: the cache is not for us */
	bool		all;			/* too many, or a TRUNCATE: clear the database */
	bool		registered;
	StringInfoData keys;		/* the keys themselves, for standbys (rule 4) */
} changed;

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

static uint32
planned_slots(void)
{
	Size		bytes = (Size) shorturl_url_cache_size * 1024 / URLCACHE_PARTITIONS;

	return (uint32) Min(bytes / PLANNED_ENTRY_BYTES, (Size) PG_INT32_MAX / 4);
}

static uint32
planned_buckets(uint32 slots)
{
	uint32		b = 16;

	while (b < 2 * slots)
		b <<= 1;
	return b;
}

static uint32
planned_chunks(uint32 slots)
{
	Size		bytes = (Size) shorturl_url_cache_size * 1024 / URLCACHE_PARTITIONS;
	Size		fixed = (Size) slots * sizeof(cache_entry) +
		(Size) planned_buckets(slots) * sizeof(int32);

	if (bytes <= fixed)
		return slots;
	return (uint32) Min(Max((bytes - fixed) / CHUNK_SIZE, (Size) slots), (Size) PG_INT32_MAX);
}

/* The sketch is as wide as the cache has entries (tlfu_counters bounds it) */
static uint32
sketch_counters(uint32 slots)
{
	return (uint32) Min((uint64) slots * URLCACHE_PARTITIONS, (uint64) PG_UINT32_MAX);
}

/* urlcache_shmem_size is the shared memory the cache needs (0: none) */
Size
urlcache_shmem_size(void)
{
	uint32		slots = planned_slots();
	Size		per_part;

	if (shorturl_url_cache_size == 0 || slots < 16)
		return 0;
	per_part = add_size(add_size(mul_size(slots, sizeof(cache_entry)),
								 mul_size(planned_buckets(slots), sizeof(int32))),
						mul_size(planned_chunks(slots), CHUNK_SIZE));
	return add_size(add_size(MAXALIGN(sizeof(urlcache_shared)),
							 mul_size(URLCACHE_PARTITIONS, MAXALIGN(per_part))),
					tlfu_size(sketch_counters(slots)));
}

/* urlcache_request_shmem asks for the cache's memory and locks */
void
urlcache_request_shmem(void)
{
	if (urlcache_shmem_size() == 0)
	{
		if (shorturl_url_cache_size != 0)
			ereport(LOG,
					(errmsg("pg_shorturl: shorturl.url_cache_size = %d kB is too small for a URL cache; the server runs without one",
							shorturl_url_cache_size),
					 errhint("The cache needs at least %d kB.",
							 (int) ((Size) URLCACHE_PARTITIONS * 16 * PLANNED_ENTRY_BYTES / 1024 + 1))));
		return;
	}
	RequestAddinShmemSpace(urlcache_shmem_size());
	RequestNamedLWLockTranche("pg_shorturl url cache", URLCACHE_PARTITIONS);
}

/* urlcache_init_shmem attaches to (or, first, creates) the cache */
void
urlcache_init_shmem(void)
{
	Size		size = urlcache_shmem_size();
	uint32		slots = planned_slots();
	uint32		nbuckets = planned_buckets(slots);
	uint32		nchunks = planned_chunks(slots);
	char	   *p;
	bool		found;

	if (size == 0)
		return;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_shorturl url cache", size, &found);
	locks = GetNamedLWLockTranche("pg_shorturl url cache");
	p = (char *) shared + MAXALIGN(sizeof(urlcache_shared));
	entries = (cache_entry *) p;
	p += MAXALIGN(mul_size(URLCACHE_PARTITIONS, mul_size(slots, sizeof(cache_entry))));
	buckets = (int32 *) p;
	p += MAXALIGN(mul_size(URLCACHE_PARTITIONS, mul_size(nbuckets, sizeof(int32))));
	chunks = (cache_chunk *) p;
	p += mul_size(URLCACHE_PARTITIONS, mul_size(nchunks, CHUNK_SIZE));
	sketch = (tlfu_sketch *) p;
	Assert(p + tlfu_size(sketch_counters(slots)) <= (char *) shared + size);
	if (!found)
	{
		memset(shared, 0, sizeof(urlcache_shared));
		shared->slots = slots;
		shared->buckets = nbuckets;
		shared->chunks = nchunks;
		shared->bytes = size;
		/* a weak seed only weakens the spread of keys, never an answer */
		if (!pg_strong_random(&shared->seed, sizeof(shared->seed)))
			shared->seed = (uint64) MyProcPid * UINT64CONST(0x9E3779B97F4A7C15);
		pg_atomic_init_u64(&shared->hits, 0);
		pg_atomic_init_u64(&shared->misses, 0);
		pg_atomic_init_u64(&shared->fills, 0);
		pg_atomic_init_u64(&shared->rejected, 0);
		pg_atomic_init_u64(&shared->evictions, 0);
		pg_atomic_init_u64(&shared->invalidations, 0);
		pg_atomic_init_u32(&shared->primary_logs, 0);
		for (int part = 0; part < URLCACHE_PARTITIONS; part++)
		{
			cache_partition *cp = &shared->part[part];
			cache_entry *e = &entries[(Size) part * slots];
			int32	   *b = &buckets[(Size) part * nbuckets];
			cache_chunk *c = &chunks[(Size) part * nchunks];

			for (uint32 i = 0; i < slots; i++)
			{
				memset(&e[i], 0, sizeof(cache_entry));
				pg_atomic_init_u32(&e[i].referenced, 0);
				e[i].first_chunk = i + 1 < slots ? i + 1 : (uint32) NO_SLOT;
			}
			for (uint32 i = 0; i < nbuckets; i++)
				b[i] = NO_SLOT;
			for (uint32 i = 0; i < nchunks; i++)
				c[i].next = i + 1 < nchunks ? i + 1 : NO_CHUNK;
			cp->slot_head = 0;
			cp->chunk_head = 0;
			cp->free_chunks = nchunks;
		}
		tlfu_init(sketch, sketch_counters(slots));
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ---------------------------------------------------------------------
 * One partition: slots, their index and the chunks (caller holds its lock)
 * ---------------------------------------------------------------------
 */

static inline int
partition_of(uint64 hash)
{
	return (int) (hash % URLCACHE_PARTITIONS);
}

static inline cache_entry *
slot_at(int part, int32 slot)
{
	return &entries[(Size) part * shared->slots + slot];
}

static inline int32 *
buckets_of(int part)
{
	return &buckets[(Size) part * shared->buckets];
}

static inline cache_chunk *
chunk_at(int part, uint32 c)
{
	return &chunks[(Size) part * shared->chunks + c];
}

static inline uint32
home_of(uint64 hash)
{
	return (uint32) (hash >> 32) & (shared->buckets - 1);
}

static uint64
key_hash(Oid dbid, Oid relid, Oid filenumber, const char *code, int code_len,
		 const char *domain, int domain_len)
{
	char		local[3 * sizeof(Oid) + 2 * sizeof(int) + ALIAS_MAX_LENGTH + 128];
	Size		len = 3 * sizeof(Oid) + 2 * sizeof(int) + (Size) code_len + (Size) domain_len;
	char	   *buf = len <= sizeof(local) ? local : palloc(len);
	char	   *p = buf;
	uint64		hash;

	memcpy(p, &dbid, sizeof(Oid));
	p += sizeof(Oid);
	memcpy(p, &relid, sizeof(Oid));
	p += sizeof(Oid);
	memcpy(p, &filenumber, sizeof(Oid));
	p += sizeof(Oid);
	memcpy(p, &code_len, sizeof(int));
	p += sizeof(int);
	memcpy(p, &domain_len, sizeof(int));
	p += sizeof(int);
	memcpy(p, code, code_len);
	p += code_len;
	memcpy(p, domain, domain_len);
	hash = (uint64) XXH3_64bits_withSeed(buf, len, shared->seed);
	if (buf != local)
		pfree(buf);
	return hash;
}

/* payload_matches compares an entry's code and domain with a key's */
static bool
payload_matches(int part, const cache_entry *e, const char *code, int code_len,
				const char *domain, int domain_len)
{
	uint32		c = e->first_chunk;
	int			at = 0;

	if (e->code_len != code_len || e->domain_len != domain_len)
		return false;
	for (int i = 0; i < code_len + domain_len; i++, at++)
	{
		char		want = i < code_len ? code[i] : domain[i - code_len];

		if (at == CHUNK_DATA)
		{
			c = chunk_at(part, c)->next;
			at = 0;
		}
		if (chunk_at(part, c)->data[at] != want)
			return false;
	}
	return true;
}

/* payload_url copies an entry's URL out into a new text */
static text *
payload_url(int part, const cache_entry *e)
{
	text	   *t = palloc(VARHDRSZ + e->url_len);
	char	   *out = VARDATA(t);
	uint32		c = e->first_chunk;
	int			skip = e->code_len + e->domain_len;
	int			left = (int) e->url_len;

	SET_VARSIZE(t, VARHDRSZ + e->url_len);
	while (skip >= CHUNK_DATA)
	{
		c = chunk_at(part, c)->next;
		skip -= CHUNK_DATA;
	}
	while (left > 0)
	{
		int			n = Min(left, CHUNK_DATA - skip);

		memcpy(out, chunk_at(part, c)->data + skip, n);
		out += n;
		left -= n;
		skip = 0;
		c = chunk_at(part, c)->next;
	}
	return t;
}

/* find_slot returns the slot holding the key, or NO_SLOT */
static int32
find_slot(int part, uint64 hash, Oid relid, Oid filenumber, const char *code,
		  int code_len, const char *domain, int domain_len)
{
	int32	   *b = buckets_of(part);
	uint32		mask = shared->buckets - 1;

	for (uint32 i = home_of(hash);; i = (i + 1) & mask)
	{
		cache_entry *e;

		if (b[i] == NO_SLOT)
			return NO_SLOT;
		e = slot_at(part, b[i]);
		if (e->hash == hash && e->dbid == MyDatabaseId && e->relid == relid &&
			e->filenumber == filenumber &&
			payload_matches(part, e, code, code_len, domain, domain_len))
			return b[i];
	}
}

/* remove_slot frees a slot, its chunks and its place in the index */
static void
remove_slot(int part, int32 slot)
{
	cache_partition *cp = &shared->part[part];
	cache_entry *e = slot_at(part, slot);
	int32	   *b = buckets_of(part);
	uint32		mask = shared->buckets - 1;
	uint32		i = home_of(e->hash);
	uint32		c;

	while (b[i] != slot)
		i = (i + 1) & mask;
	/* backward shift: later members of the run move up if their home allows */
	for (uint32 j = (i + 1) & mask; b[j] != NO_SLOT; j = (j + 1) & mask)
	{
		uint32		home = home_of(slot_at(part, b[j])->hash);
		bool		stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);

		if (stays)
			continue;
		b[i] = b[j];
		i = j;
	}
	b[i] = NO_SLOT;

	for (c = e->first_chunk; c != NO_CHUNK;)
	{
		uint32		next = chunk_at(part, c)->next;

		chunk_at(part, c)->next = cp->chunk_head;
		cp->chunk_head = c;
		cp->free_chunks++;
		c = next;
	}
	e->dbid = InvalidOid;
	e->hash = 0;
	e->first_chunk = (uint32) cp->slot_head;
	cp->slot_head = slot;
	cp->used--;
}

/* clock_victim returns the slot CLOCK would evict next, or NO_SLOT */
static int32
clock_victim(int part)
{
	cache_partition *cp = &shared->part[part];

	for (uint32 step = 0; step < 2 * shared->slots + 1; step++)
	{
		int32		slot = (int32) cp->hand;
		cache_entry *e = slot_at(part, slot);

		cp->hand = (cp->hand + 1) % shared->slots;
		if (e->dbid == InvalidOid)
			continue;
		if (pg_atomic_read_u32(&e->referenced) != 0)
		{
			pg_atomic_write_u32(&e->referenced, 0);
			continue;
		}
		return slot;
	}
	return NO_SLOT;
}

/* ---------------------------------------------------------------------
 * Reading and filling
 * ---------------------------------------------------------------------
 */

/*
 * usable tells whether this call may use the cache for this links table:
 * it exists, the session wants it, the transaction changed no link and
 * reads with a snapshot per statement, and the table's invalidation trigger is there and fires always (a schema before
 * 0.11, or a trigger someone disabled, turns the cache off).
 */
static bool
usable(Relation links)
{
	TriggerDesc *td = links->trigdesc;

	if (shared == NULL || !shorturl_url_cache || changed.any ||
		IsolationUsesXactSnapshot() || td == NULL)
		return false;
	/* in recovery, only once the primary is known to log its changes */
	if (RecoveryInProgress() && pg_atomic_read_u32(&shared->primary_logs) == 0)
		return false;
	for (int i = 0; i < td->numtriggers; i++)
		if (td->triggers[i].tgenabled == TRIGGER_FIRES_ALWAYS &&
			strcmp(td->triggers[i].tgname, "links_url_cache") == 0)
			return true;
	return false;
}

/*
 * urlcache_get looks the link up in the cache.  True: *row is the answer
 * (found, with its URL when want_url).  False: the caller reads the table,
 * and may then pass the row to urlcache_fill with *probe.
 */
bool
urlcache_get(Relation links, const char *code, int code_len, const char *domain,
			 int domain_len, bool want_url, link_row *row, urlcache_probe *probe)
{
	int			part;
	int32		slot;

	probe->usable = usable(links);
	if (!probe->usable)
		return false;
	probe->relid = RelationGetRelid(links);
	probe->filenumber = compat_rel_filenumber(links);
	probe->hash = key_hash(MyDatabaseId, probe->relid, probe->filenumber, code, code_len, domain, domain_len);
	part = partition_of(probe->hash);
	tlfu_increment(sketch, probe->hash);

	LWLockAcquire(&locks[part].lock, LW_SHARED);
	probe->gen = shared->part[part].gen;
	slot = find_slot(part, probe->hash, probe->relid, probe->filenumber,
					 code, code_len, domain, domain_len);
	if (slot != NO_SLOT)
	{
		cache_entry *e = slot_at(part, slot);

		memset(row, 0, sizeof(*row));
		row->found = true;
		row->id = e->link_id;
		row->has_expiry = (e->flags & ENTRY_HAS_EXPIRY) != 0;
		row->expires_at = e->expires_at;
		row->has_max = (e->flags & ENTRY_HAS_MAX) != 0;
		row->max_visits = e->max_visits;
		row->disabled = (e->flags & ENTRY_DISABLED) != 0;
		if (want_url)
			row->url = payload_url(part, e);
		if (pg_atomic_read_u32(&e->referenced) == 0)
			pg_atomic_write_u32(&e->referenced, 1);
	}
	LWLockRelease(&locks[part].lock);
	pg_atomic_fetch_add_u64(slot != NO_SLOT ? &shared->hits : &shared->misses, 1);
	return slot != NO_SLOT;
}

/* write_payload copies code, domain and URL into a chain of chunks */
static void
write_payload(int part, uint32 first, const char *const pieces[3], const int lens[3])
{
	uint32		c = first;
	int			at = 0;

	for (int k = 0; k < 3; k++)
		for (int i = 0; i < lens[k];)
		{
			int			n = Min(lens[k] - i, CHUNK_DATA - at);

			memcpy(chunk_at(part, c)->data + at, pieces[k] + i, n);
			i += n;
			at += n;
			if (at == CHUNK_DATA)
			{
				c = chunk_at(part, c)->next;
				at = 0;
			}
		}
}

/*
 * urlcache_fill puts a link read from the table into the cache, if the
 * probe's partition has not seen a change commit since (rule 3), the row
 * was the newest version (the caller checked rule 2), and TinyLFU admits
 * it over the victim it would push out.
 */
void
urlcache_fill(const urlcache_probe *probe, const char *code, int code_len,
			  const char *domain, int domain_len, const link_row *row)
{
	int			part = partition_of(probe->hash);
	cache_partition *cp = &shared->part[part];
	int			url_len = VARSIZE_ANY_EXHDR(row->url);
	int			total = code_len + domain_len + url_len;
	uint32		need;
	int			evicted = 0;
	int32		slot;
	cache_entry *e;
	int32	   *b;
	uint32		mask;
	uint32		i;

	if (!probe->usable || total > MAX_PAYLOAD)
		return;
	need = (uint32) ((total + CHUNK_DATA - 1) / CHUNK_DATA);
	/* an entry may take a sixteenth of its partition's chunks at most */
	if (need > shared->chunks / 16)
		return;
	/* a test holds the fill here, between reading the row and inserting it */
	if (shorturl_url_cache_fill_wait != 0)
		DirectFunctionCall1(pg_advisory_xact_lock_shared_int8,
							Int64GetDatum((int64) shorturl_url_cache_fill_wait));
	LWLockAcquire(&locks[part].lock, LW_EXCLUSIVE);
	if (cp->gen != probe->gen ||
		find_slot(part, probe->hash, probe->relid, probe->filenumber,
				  code, code_len, domain, domain_len) != NO_SLOT)
	{
		LWLockRelease(&locks[part].lock);
		return;
	}
	while (cp->used == shared->slots || cp->free_chunks < need)
	{
		int32		victim = clock_victim(part);

		/* each victim frees a slot and a chunk at least: need + 1 make room */
		if (victim == NO_SLOT || evicted > (int) need)
		{
			LWLockRelease(&locks[part].lock);
			pg_atomic_fetch_add_u64(&shared->evictions, evicted);
			return;
		}
		/* the first victim decides whether the newcomer is worth it */
		if (evicted == 0 && !tlfu_admit(sketch, probe->hash, slot_at(part, victim)->hash,
												 pg_prng_uint32(&pg_global_prng_state)))
		{
			LWLockRelease(&locks[part].lock);
			pg_atomic_fetch_add_u64(&shared->rejected, 1);
			return;
		}
		remove_slot(part, victim);
		evicted++;
	}

	slot = cp->slot_head;
	e = slot_at(part, slot);
	cp->slot_head = (int32) e->first_chunk;
	cp->used++;
	e->first_chunk = cp->chunk_head;
	{
		uint32		last = cp->chunk_head;

		for (uint32 k = 1; k < need; k++)
			last = chunk_at(part, last)->next;
		cp->chunk_head = chunk_at(part, last)->next;
		chunk_at(part, last)->next = NO_CHUNK;
		cp->free_chunks -= need;
	}
	{
		const char *const pieces[3] = {code, domain, VARDATA_ANY(row->url)};
		const int	lens[3] = {code_len, domain_len, url_len};

		write_payload(part, e->first_chunk, pieces, lens);
	}
	e->hash = probe->hash;
	e->dbid = MyDatabaseId;
	e->relid = probe->relid;
	e->filenumber = probe->filenumber;
	e->link_id = row->id;
	e->expires_at = row->expires_at;
	e->max_visits = row->max_visits;
	e->url_len = (uint32) url_len;
	e->code_len = (uint16) code_len;
	e->domain_len = (uint16) domain_len;
	e->flags = (row->has_expiry ? ENTRY_HAS_EXPIRY : 0) |
		(row->has_max ? ENTRY_HAS_MAX : 0) |
		(row->disabled ? ENTRY_DISABLED : 0);
	pg_atomic_write_u32(&e->referenced, 0);

	b = buckets_of(part);
	mask = shared->buckets - 1;
	for (i = home_of(probe->hash); b[i] != NO_SLOT; i = (i + 1) & mask)
		;
	b[i] = slot;
	LWLockRelease(&locks[part].lock);
	pg_atomic_fetch_add_u64(&shared->fills, 1);
	if (evicted > 0)
		pg_atomic_fetch_add_u64(&shared->evictions, evicted);
}

/* ---------------------------------------------------------------------
 * Invalidation
 * ---------------------------------------------------------------------
 */

/*
 * evict_hash removes the entries of database dbid with this key hash and
 * advances the partition's generation
 */
static void
evict_hash(Oid dbid, uint64 hash)
{
	int			part = partition_of(hash);
	int32	   *b = buckets_of(part);
	uint32		mask = shared->buckets - 1;
	uint32		i;

	LWLockAcquire(&locks[part].lock, LW_EXCLUSIVE);
	for (i = home_of(hash); b[i] != NO_SLOT;)
	{
		cache_entry *e = slot_at(part, b[i]);

		/* a removal shifts the run back into place i: look at it again */
		if (e->hash == hash && e->dbid == dbid)
			remove_slot(part, b[i]);
		else
			i = (i + 1) & mask;
	}
	shared->part[part].gen++;
	LWLockRelease(&locks[part].lock);
}

/*
 * evict_database removes every entry of database dbid (InvalidOid: of
 * every database), and advances all generations
 */
static void
evict_database(Oid dbid)
{
	for (int part = 0; part < URLCACHE_PARTITIONS; part++)
	{
		LWLockAcquire(&locks[part].lock, LW_EXCLUSIVE);
		for (uint32 s = 0; s < shared->slots; s++)
		{
			Oid			of = slot_at(part, (int32) s)->dbid;

			if (of != InvalidOid && (dbid == InvalidOid || of == dbid))
				remove_slot(part, (int32) s);
		}
		shared->part[part].gen++;
		LWLockRelease(&locks[part].lock);
	}
}

static int
by_hash(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

/*
 * The record a transaction that changed links logs at PRE_COMMIT for hot
 * standbys (rule 4), with resource manager RM_SHORTURL_ID:
 * XLOG_URLCACHE_EVICT is an xl_urlcache_evict and then nkeys keys, each an
 * xl_urlcache_key followed by its code and domain (unaligned: read with
 * memcpy); XLOG_URLCACHE_CLEAR is an xl_urlcache_evict alone, for every
 * link of the database.  XLOG_URLCACHE_HELLO (an xl_urlcache_evict of
 * zeros) says that the primary logs the others (urlcache_announce).
 */
#define XLOG_URLCACHE_EVICT		0x00
#define XLOG_URLCACHE_CLEAR		0x10
#define XLOG_URLCACHE_HELLO		0x20

typedef struct xl_urlcache_evict
{
	Oid			dbid;
	uint32		nkeys;
} xl_urlcache_evict;

typedef struct xl_urlcache_key
{
	Oid			relid;
	Oid			filenumber;
	uint32		code_len;
	uint32		domain_len;
} xl_urlcache_key;

/* log_changes logs what this transaction changed, if a standby may want it */
static void
log_changes(void)
{
	xl_urlcache_evict xlrec;

	if (!changed.all && changed.n == 0)
		return;
	if (!rmgr_registered || RecoveryInProgress() || !XLogStandbyInfoActive())
		return;
	xlrec.dbid = MyDatabaseId;
	xlrec.nkeys = changed.all ? 0 : (uint32) changed.n;
	XLogBeginInsert();
	XLogRegisterData((char *) &xlrec, sizeof(xlrec));
	if (!changed.all)
		XLogRegisterData(changed.keys.data, changed.keys.len);
	(void) XLogInsert(RM_SHORTURL_ID, changed.all ? XLOG_URLCACHE_CLEAR : XLOG_URLCACHE_EVICT);
}

/* forget drops the changes remembered, keeping the transaction away */
static void
forget(void)
{
	changed.n = 0;
	changed.all = false;
	if (changed.keys.data != NULL && changed.keys.maxlen > 64 * 1024)
	{
		pfree(changed.keys.data);
		changed.keys.data = NULL;
	}
	else if (changed.keys.data != NULL)
		resetStringInfo(&changed.keys);
}

/*
 * urlcache_xact_callback applies rule 1 at PRE_COMMIT and PRE_PREPARE (and
 * logs the changes for rule 4), and forgets the transaction's changes when
 * it ends either way.
 */
static void
urlcache_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (shared != NULL && changed.all)
			{
				evict_database(MyDatabaseId);
				pg_atomic_fetch_add_u64(&shared->invalidations, 1);
			}
			else if (shared != NULL)
			{
				uint64		keys = 0;

				qsort(changed.hashes, changed.n, sizeof(uint64), by_hash);
				for (int i = 0; i < changed.n; i++)
					if (i == 0 || changed.hashes[i] != changed.hashes[i - 1])
					{
						evict_hash(MyDatabaseId, changed.hashes[i]);
						keys++;
					}
				pg_atomic_fetch_add_u64(&shared->invalidations, keys);
			}
			log_changes();
			forget();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			forget();
			changed.any = false;
			break;
	}
}

/* keep_away keeps this transaction away from the cache until it ends */
static void
keep_away(void)
{
	if (!changed.registered)
	{
		RegisterXactCallback(urlcache_xact_callback, NULL);
		changed.registered = true;
	}
	changed.any = true;
}

/* remember_all notes that every link of the database changed */
static void
remember_all(void)
{
	keep_away();
	changed.all = true;
}

/*
 * remember notes a changed link for PRE_COMMIT: its key's hash for this
 * server's cache, and the key itself for a standby's (when wal_level lets
 * there be one).  It keeps the transaction away from the cache.
 */
static void
remember(Oid relid, Oid filenumber, const char *code, int code_len,
		 const char *domain, int domain_len)
{
	keep_away();
	if (changed.all)
		return;
	if (changed.n >= MAX_REMEMBERED)
	{
		changed.all = true;
		return;
	}
	if (shared != NULL)
	{
		if (changed.hashes == NULL)
		{
			changed.size = 64;
			changed.hashes = MemoryContextAlloc(TopMemoryContext, changed.size * sizeof(uint64));
		}
		else if (changed.n == changed.size)
		{
			changed.size *= 2;
			changed.hashes = repalloc(changed.hashes, changed.size * sizeof(uint64));
		}
		changed.hashes[changed.n] = key_hash(MyDatabaseId, relid, filenumber,
											 code, code_len, domain, domain_len);
	}
	if (rmgr_registered && XLogStandbyInfoActive())
	{
		xl_urlcache_key key;

		if (changed.keys.data == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			initStringInfo(&changed.keys);
			MemoryContextSwitchTo(old);
		}
		key.relid = relid;
		key.filenumber = filenumber;
		key.code_len = (uint32) code_len;
		key.domain_len = (uint32) domain_len;
		/* room first: an error must not leave half a key in the record */
		enlargeStringInfo(&changed.keys, (int) sizeof(key) + code_len + domain_len);
		appendBinaryStringInfo(&changed.keys, (const char *) &key, sizeof(key));
		appendBinaryStringInfo(&changed.keys, code, code_len);
		appendBinaryStringInfo(&changed.keys, domain, domain_len);
	}
	changed.n++;
}

PG_FUNCTION_INFO_V1(shorturl_url_cache_invalidate);

/*
 * shorturl_url_cache_invalidate is the trigger links_url_cache (BEFORE
 * UPDATE OR DELETE, per row) and links_url_cache_truncate (BEFORE TRUNCATE)
 * on shorturl.links: rule 1 above.  It lets the change go ahead as it is.
 * It remembers the change even on a server without a cache: a standby's
 * may hold the link (rule 4).
 */
Datum
shorturl_url_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const shorturl_tables *t;
	Relation	rel;
	HeapTuple	old;
	Datum		c;
	Datum		d;
	bool		code_null;
	bool		domain_null;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as a BEFORE trigger", "shorturl._url_cache_invalidate")));
	rel = td->tg_relation;
	t = catalog_tables();
	if (RelationGetRelid(rel) != t->links)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() belongs on shorturl.links only", "shorturl._url_cache_invalidate")));
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		remember_all();
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_UPDATE(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must fire for each row on UPDATE or DELETE, or on TRUNCATE",
						"shorturl._url_cache_invalidate")));
	old = td->tg_trigtuple;
	c = heap_getattr(old, t->links_att[LINKS_CODE], RelationGetDescr(rel), &code_null);
	d = heap_getattr(old, t->links_att[LINKS_DOMAIN], RelationGetDescr(rel), &domain_null);
	/* a row without a code or domain (the owner's doing) was never cached */
	if (code_null || domain_null)
		keep_away();
	else
	{
		text	   *code = DatumGetTextPP(c);
		text	   *domain = DatumGetTextPP(d);

		remember(RelationGetRelid(rel), compat_rel_filenumber(rel),
				 VARDATA_ANY(code), (int) VARSIZE_ANY_EXHDR(code),
				 VARDATA_ANY(domain), (int) VARSIZE_ANY_EXHDR(domain));
	}
	return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : old);
}

PG_FUNCTION_INFO_V1(shorturl_url_cache_reset);

/*
 * shorturl_url_cache_reset implements shorturl._url_cache_reset(): forget
 * this database's entries now and again at commit, here and on standbys
 * (extension scripts call it; see the top of the file).  Returns whether
 * this server has a cache.
 */
Datum
shorturl_url_cache_reset(PG_FUNCTION_ARGS)
{
	remember_all();
	PG_RETURN_BOOL(shared != NULL);
}

/* ---------------------------------------------------------------------
 * Replay on a standby (rule 4)
 * ---------------------------------------------------------------------
 */

/*
 * withdraw forgets every entry, and keeps a standby's cache unused until
 * a record of ours says again that the primary logs its changes
 */
static void
withdraw(void)
{
	if (shared == NULL)
		return;
	pg_atomic_write_u32(&shared->primary_logs, 0);
	evict_database(InvalidOid);
	pg_atomic_fetch_add_u64(&shared->invalidations, 1);
}

/*
 * refuse_record withdraws the cache's trust over a record this library
 * cannot read (a later library's, or another extension's on our ID): a
 * cache must not stop replay, and a clear covers any eviction it meant
 */
static void
refuse_record(const char *why)
{
	elog(WARNING, "pg_shorturl: URL cache record not understood (%s); the cache is cleared", why);
	withdraw();
}

/* urlcache_redo does on a standby what the changer's PRE_COMMIT did */
static void
urlcache_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	const char *p = XLogRecGetData(record);
	const char *end = p + XLogRecGetDataLen(record);
	xl_urlcache_evict xlrec;

	if (info != XLOG_URLCACHE_EVICT && info != XLOG_URLCACHE_CLEAR &&
		info != XLOG_URLCACHE_HELLO)
	{
		refuse_record("unknown kind");
		return;
	}
	if (end - p < (ptrdiff_t) sizeof(xlrec))
	{
		refuse_record("too short");
		return;
	}
	memcpy(&xlrec, p, sizeof(xlrec));
	p += sizeof(xlrec);
	if (shared == NULL)
		return;
	if (info == XLOG_URLCACHE_CLEAR)
		evict_database(xlrec.dbid);
	for (uint32 k = 0; info == XLOG_URLCACHE_EVICT && k < xlrec.nkeys; k++)
	{
		xl_urlcache_key key;

		if (end - p < (ptrdiff_t) sizeof(key))
		{
			refuse_record("too short");
			return;
		}
		memcpy(&key, p, sizeof(key));
		p += sizeof(key);
		if ((uint64) (end - p) < (uint64) key.code_len + key.domain_len)
		{
			refuse_record("too short");
			return;
		}
		evict_hash(xlrec.dbid, key_hash(xlrec.dbid, key.relid, key.filenumber,
										p, (int) key.code_len,
										p + key.code_len, (int) key.domain_len));
		p += key.code_len + key.domain_len;
	}
	if (info != XLOG_URLCACHE_HELLO)
		pg_atomic_fetch_add_u64(&shared->invalidations,
								info == XLOG_URLCACHE_CLEAR ? 1 : xlrec.nkeys);
	/* after the evictions: a fill that trusts now sees their generations */
	if (pg_atomic_read_u32(&shared->primary_logs) == 0)
		pg_atomic_write_u32(&shared->primary_logs, 1);
}

/*
 * xlog_redo_watching is the XLOG resource manager's redo, run first by
 * ours: a shutdown checkpoint (a clean stop, or the end of a crash
 * recovery) or an end of recovery (a promotion) means a primary that
 * starts again, maybe without the library, or with an older one that
 * logs nothing for us.  The cache is withdrawn until that primary says
 * otherwise.  Only the startup process runs it.
 */
static void (*xlog_redo_next) (XLogReaderState *record) = NULL;

static void
xlog_redo_watching(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;

	if (info == XLOG_CHECKPOINT_SHUTDOWN || info == XLOG_END_OF_RECOVERY)
		withdraw();
	xlog_redo_next(record);
}

static void
urlcache_desc(StringInfo buf, XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	xl_urlcache_evict xlrec;

	if (XLogRecGetDataLen(record) < sizeof(xlrec))
		return;
	memcpy(&xlrec, XLogRecGetData(record), sizeof(xlrec));
	if (info == XLOG_URLCACHE_HELLO)
		appendStringInfoString(buf, "the primary logs the URL cache's invalidations");
	else if (info == XLOG_URLCACHE_CLEAR)
		appendStringInfo(buf, "db %u: every link", xlrec.dbid);
	else
		appendStringInfo(buf, "db %u: %u links", xlrec.dbid, xlrec.nkeys);
}

static const char *
urlcache_identify(uint8 info)
{
	switch (info & ~XLR_INFO_MASK)
	{
		case XLOG_URLCACHE_EVICT:
			return "EVICT";
		case XLOG_URLCACHE_CLEAR:
			return "CLEAR";
		case XLOG_URLCACHE_HELLO:
			return "HELLO";
	}
	return NULL;
}

static RmgrData urlcache_rmgr = {
	.rm_name = "pg_shorturl",
	.rm_redo = urlcache_redo,
	.rm_desc = urlcache_desc,
	.rm_identify = urlcache_identify,
};

/* wal_shipped tells whether a walsender runs, or WAL is archived */
static bool
wal_shipped(void)
{
	if (XLogArchivingActive())
		return true;
	for (int i = 0; i < max_wal_senders; i++)
	{
		WalSnd	   *w = &WalSndCtl->walsnds[i];
		pid_t		pid;

		SpinLockAcquire(&w->mutex);
		pid = w->pid;
		SpinLockRelease(&w->mutex);
		if (pid != 0)
			return true;
	}
	return false;
}

/*
 * urlcache_announce logs a HELLO (see rule 4) once after each checkpoint's
 * start while WAL leaves this server (a walsender runs, pg_basebackup's
 * among them, or WAL is archived), so a standby that starts replaying from
 * a restartpoint or a base backup meets one soon after.  The launcher
 * calls it on a primary every second or so.  The record is unimportant:
 * an idle server stays idle, and checkpoints are not made for it.  It is
 * flushed at once, so a standby gets it even from an idle primary.
 */
void
urlcache_announce(void)
{
	static XLogRecPtr announced = InvalidXLogRecPtr;
	xl_urlcache_evict xlrec;

	if (!rmgr_registered || RecoveryInProgress() || !XLogStandbyInfoActive() ||
		GetRedoRecPtr() <= announced || !wal_shipped())
		return;
	memset(&xlrec, 0, sizeof(xlrec));
	XLogBeginInsert();
	XLogSetRecordFlags(XLOG_MARK_UNIMPORTANT);
	XLogRegisterData((char *) &xlrec, sizeof(xlrec));
	XLogFlush(XLogInsert(RM_SHORTURL_ID, XLOG_URLCACHE_HELLO));
	/* its start: a checkpoint on an idle server may begin at its end */
	announced = ProcLastRecPtr;
}

/*
 * urlcache_register_rmgr registers the resource manager that replays rule
 * 4's records: from shared_preload_libraries only, on every server (a
 * standby that did not load the library could not replay the records).
 */
void
urlcache_register_rmgr(void)
{
	RegisterCustomRmgr(RM_SHORTURL_ID, &urlcache_rmgr);
	rmgr_registered = true;
	/* RmgrTable is exported for this: the redo loop reads it per record */
	xlog_redo_next = RmgrTable[RM_XLOG_ID].rm_redo;
	RmgrTable[RM_XLOG_ID].rm_redo = xlog_redo_watching;
}

/* urlcache_stats reads the cache's figures; false when there is no cache */
bool
urlcache_stats(urlcache_figures *f)
{
	Size		slot_bytes = sizeof(cache_entry) + 2 * sizeof(int32);

	memset(f, 0, sizeof(*f));
	if (shared == NULL)
		return false;
	f->hits = (int64) pg_atomic_read_u64(&shared->hits);
	f->misses = (int64) pg_atomic_read_u64(&shared->misses);
	f->fills = (int64) pg_atomic_read_u64(&shared->fills);
	f->rejected = (int64) pg_atomic_read_u64(&shared->rejected);
	f->evictions = (int64) pg_atomic_read_u64(&shared->evictions);
	f->invalidations = (int64) pg_atomic_read_u64(&shared->invalidations);
	f->size = (int64) shared->bytes;
	for (int part = 0; part < URLCACHE_PARTITIONS; part++)
	{
		LWLockAcquire(&locks[part].lock, LW_SHARED);
		f->entries += shared->part[part].used;
		f->bytes += (int64) (shared->part[part].used * slot_bytes +
							 (Size) (shared->chunks - shared->part[part].free_chunks) * CHUNK_SIZE);
		LWLockRelease(&locks[part].lock);
	}
	return true;
}
