/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  The shared table of rate-limit keys, and the three things built on
 *	  it: rate_limit(), the scan guard of resolve() and link_status(), and
 *	  the owners' quotas of shorten().
 *
 * Every key is one entry of a fixed-size, partitioned shared hash table
 * (shorturl.max_rate_keys entries).  An entry holds the key's GCRA state
 * (gcra.c), its theoretical arrival time, and for a scanning client the
 * moment its block ends.  A key is stored as a 128-bit XXH3 hash of its
 * kind, its database and its text, seeded with a random number drawn when
 * the server starts: keys of any length take the same 48 bytes, the kinds
 * and the databases never meet, and nobody can choose keys that pile into
 * one bucket.  Two different keys share an entry with probability 2^-128.
 *
 * Locking, in the manner of the lock manager's partitions:
 *	- A request takes its partition's LWLock in shared mode, finds its
 *	  entry and moves the TAT with a compare-and-swap loop.  So requests on
 *	  one key, or on keys of one partition, never wait for each other, and
 *	  each decision is made on the TAT it replaces: 16 sessions on one key
 *	  are allowed exactly what one would be.
 *	- A new key takes the partition's lock in exclusive mode to enter it.
 *	- When the table is full, the sweep takes every partition's lock in
 *	  exclusive mode, in order, and removes the keys whose buckets are full
 *	  (their TAT has passed) and that block nothing: forgetting them changes
 *	  no answer.  When it finds none, it records when the first one will
 *	  be, and no sweep runs before then.
 * No spinlock is taken, no WAL is written and no heavyweight lock is held.
 *
 * Times come from CLOCK_MONOTONIC, which every process of the machine
 * shares and no clock adjustment moves.  The table starts empty with the
 * server: limits, blocks and quotas are not kept across a restart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>
#include <xxhash.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "clicks.h"
#include "dbstate.h"
#include "pg_shorturl.h"
#include "ratelimit.h"

/* Partitions of the table, each with its LWLock: as many as the lock manager's */
#define RATE_PARTITIONS		16

/* A scan limit counts misses per minute */
#define SCAN_WINDOW_S		60.0

#define RATE_NS_PER_US			1000

typedef struct rate_key
{
	uint64		hi;
	uint64		lo;
} rate_key;

typedef struct rate_entry
{
	rate_key	key;			/* the hash key: first */
	pg_atomic_uint64 tat;		/* GCRA's theoretical arrival time, ns */
	pg_atomic_uint64 blocked_until; /* a scanning client's block ends, ns; 0:
									 * none */
} rate_entry;

typedef struct rate_shared
{
	uint64		seed;			/* of the key hashes, drawn at start */
	pg_atomic_uint64 next_sweep_at; /* no key is reclaimable before, ns */
	pg_atomic_uint64 reclaimed; /* keys the sweeps removed */
	pg_atomic_uint64 full;		/* requests answered by rate_limit_when_full */
} rate_shared;

static rate_shared *shared = NULL;
static HTAB *keys = NULL;
static LWLockPadded *locks = NULL;

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

Size
ratelimit_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(rate_shared)),
					hash_estimate_size(shorturl_max_rate_keys, sizeof(rate_entry)));
}

void
ratelimit_request_shmem(void)
{
	RequestAddinShmemSpace(ratelimit_shmem_size());
	RequestNamedLWLockTranche("pg_shorturl rate limits", RATE_PARTITIONS);
}

void
ratelimit_init_shmem(void)
{
	HASHCTL		info;
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_shorturl rate limits", sizeof(rate_shared), &found);
	if (!found)
	{
		/* a weak seed only weakens the spread of buckets, never an answer */
		if (!pg_strong_random(&shared->seed, sizeof(shared->seed)))
			shared->seed = (uint64) MyProcPid * UINT64CONST(0x9E3779B97F4A7C15);
		pg_atomic_init_u64(&shared->next_sweep_at, 0);
		pg_atomic_init_u64(&shared->reclaimed, 0);
		pg_atomic_init_u64(&shared->full, 0);
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(rate_key);
	info.entrysize = sizeof(rate_entry);
	info.num_partitions = RATE_PARTITIONS;
	keys = ShmemInitHash("pg_shorturl rate-limit keys", shorturl_max_rate_keys,
						 shorturl_max_rate_keys, &info,
						 HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
	locks = GetNamedLWLockTranche("pg_shorturl rate limits");
}

/* ratelimit_available tells whether the table exists (the library is preloaded) */
bool
ratelimit_available(void)
{
	return keys != NULL;
}

/* now_ns reads the monotonic clock */
static int64
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* make_key hashes a key of a kind, in this database */
static rate_key
make_key(ratelimit_kind kind, const char *text, size_t len)
{
	XXH128_hash_t h;
	rate_key	k;

	h = XXH3_128bits_withSeed(text, len,
							  shared->seed ^ ((uint64) kind << 32 | MyDatabaseId));
	k.hi = h.high64;
	k.lo = h.low64;
	return k;
}

/* ---------------------------------------------------------------------
 * Taking tokens
 * ---------------------------------------------------------------------
 */

/*
 * sweep removes every key that is reclaimable at now, holding every
 * partition's lock, and records when the first of the others will be.
 */
static void
sweep(int64 now)
{
	HASH_SEQ_STATUS scan;
	rate_entry *e;
	int64		next = PG_INT64_MAX;
	uint64		removed = 0;

	for (int i = 0; i < RATE_PARTITIONS; i++)
		LWLockAcquire(&locks[i].lock, LW_EXCLUSIVE);
	hash_seq_init(&scan, keys);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		int64		tat = (int64) pg_atomic_read_u64(&e->tat);
		int64		until = (int64) pg_atomic_read_u64(&e->blocked_until);
		int64		free_at = Max(tat, until);

		if (free_at <= now)
		{
			/* removing the entry hash_seq_search just returned is allowed */
			hash_search(keys, &e->key, HASH_REMOVE, NULL);
			removed++;
		}
		else
			next = Min(next, free_at);
	}
	pg_atomic_write_u64(&shared->next_sweep_at, (uint64) (removed > 0 ? now : next));
	for (int i = RATE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&locks[i].lock);
	pg_atomic_fetch_add_u64(&shared->reclaimed, removed);
}

/*
 * decide answers a request on an entry, moving its TAT by compare-and-swap
 * so that concurrent requests on the entry each decide on the TAT the
 * other left.  A refused scanning client is blocked for block_ns; the
 * result says whether this request began the block.
 */
static bool
decide(rate_entry *e, int64 now, const gcra_limit *limit, gcra_decision *d,
	   int64 block_ns)
{
	uint64		tat = pg_atomic_read_u64(&e->tat);
	uint64		until;

	for (;;)
	{
		gcra_decide((int64) tat, now, limit, d);
		if (!d->allowed || (uint64) d->new_tat == tat)
			break;
		/* on failure tat is reloaded with what another request stored */
		if (pg_atomic_compare_exchange_u64(&e->tat, &tat, (uint64) d->new_tat))
			break;
	}
	if (d->allowed || block_ns <= 0)
		return false;
	until = pg_atomic_read_u64(&e->blocked_until);
	while ((int64) until <= now)
	{
		if (pg_atomic_compare_exchange_u64(&e->blocked_until, &until,
										   (uint64) (now + block_ns)))
			return true;
	}
	return false;
}

/*
 * take answers one request of a key: RATE_TABLE_FULL when the key is new
 * and the table has no room, even after a sweep.
 */
static ratelimit_result
take(ratelimit_kind kind, const char *text, size_t len, const gcra_limit *limit,
	 gcra_decision *d, int64 block_ns, bool *blocked_now)
{
	rate_key	key = make_key(kind, text, len);
	uint32		hash = get_hash_value(keys, &key);
	LWLock	   *lock = &locks[hash % RATE_PARTITIONS].lock;
	int64		now = now_ns();
	rate_entry *e;
	bool		found;

	*blocked_now = false;
	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(keys, &key, hash, HASH_FIND, NULL);
	if (e != NULL)
	{
		*blocked_now = decide(e, now, limit, d, block_ns);
		LWLockRelease(lock);
		return d->allowed ? RATE_ALLOWED : RATE_REFUSED;
	}
	LWLockRelease(lock);

	for (int attempt = 0; attempt < 2; attempt++)
	{
		LWLockAcquire(lock, LW_EXCLUSIVE);
		e = hash_search_with_hash_value(keys, &key, hash, HASH_ENTER_NULL, &found);
		if (e != NULL)
		{
			if (!found)
			{
				/* a key never seen has a full bucket: its TAT is long past */
				pg_atomic_init_u64(&e->tat, 0);
				pg_atomic_init_u64(&e->blocked_until, 0);
			}
			*blocked_now = decide(e, now, limit, d, block_ns);
			LWLockRelease(lock);
			return d->allowed ? RATE_ALLOWED : RATE_REFUSED;
		}
		LWLockRelease(lock);
		if (attempt > 0 || (int64) pg_atomic_read_u64(&shared->next_sweep_at) > now)
			break;
		sweep(now);
	}
	pg_atomic_fetch_add_u64(&shared->full, 1);
	return RATE_TABLE_FULL;
}

/*
 * ratelimit_take answers one request of a key of a kind: allowed, refused,
 * or the table is full.
 */
ratelimit_result
ratelimit_take(ratelimit_kind kind, const char *key, size_t len,
			   const gcra_limit *limit, gcra_decision *d)
{
	bool		blocked_now;

	return take(kind, key, len, limit, d, 0, &blocked_now);
}

/* ---------------------------------------------------------------------
 * Scanning clients
 * ---------------------------------------------------------------------
 */

/*
 * ratelimit_client_blocked tells whether a client of resolve() or
 * link_status() is blocked for scanning, counting the lookup if it is.
 * Always false when scan_limit is 0.
 */
bool
ratelimit_client_blocked(const char *client, size_t len)
{
	rate_key	key;
	uint32		hash;
	LWLock	   *lock;
	rate_entry *e;
	bool		blocked = false;

	if (shorturl_scan_limit == 0)
		return false;
	if (keys == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("scan protection needs pg_shorturl in shared_preload_libraries"),
				 errhint("Add pg_shorturl to shared_preload_libraries and restart, or set shorturl.scan_limit to 0, or pass no client.")));
	key = make_key(RATE_KIND_SCAN, client, len);
	hash = get_hash_value(keys, &key);
	lock = &locks[hash % RATE_PARTITIONS].lock;
	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(keys, &key, hash, HASH_FIND, NULL);
	if (e != NULL)
		blocked = (int64) pg_atomic_read_u64(&e->blocked_until) > now_ns();
	LWLockRelease(lock);
	if (blocked)
	{
		db_state   *db = clicks_stats_slot();

		if (db != NULL)
			pg_atomic_fetch_add_u64(&db->scan_lookups_blocked, 1);
	}
	return blocked;
}

/*
 * ratelimit_client_missed counts a lookup of an unknown code by a client;
 * past shorturl.scan_limit a minute the client is blocked for
 * shorturl.scan_cooldown.  A client the full table has no room for is not
 * tracked: a redirect is never refused for want of memory.
 */
void
ratelimit_client_missed(const char *client, size_t len)
{
	gcra_limit	limit;
	gcra_decision d;
	bool		blocked_now;

	if (shorturl_scan_limit == 0 || keys == NULL)
		return;
	if (gcra_make_limit(shorturl_scan_limit / SCAN_WINDOW_S, shorturl_scan_limit, 1,
						&limit) != GCRA_OK)
		elog(ERROR, "shorturl.scan_limit %d makes no rate", shorturl_scan_limit);
	(void) take(RATE_KIND_SCAN, client, len, &limit, &d,
				(int64) shorturl_scan_cooldown * 1000000000, &blocked_now);
	if (blocked_now)
	{
		db_state   *db = clicks_stats_slot();

		if (db != NULL)
			pg_atomic_fetch_add_u64(&db->scan_clients_blocked, 1);
	}
}

/* ---------------------------------------------------------------------
 * Quotas
 * ---------------------------------------------------------------------
 */

/* retry_text says how long to wait, in words, for a message */
static char *
retry_text(int64 ns)
{
	int64		s = (ns + 1000000000 - 1) / 1000000000;

	if (s < 120)
		return psprintf(ngettext("%lld second", "%lld seconds", s), (long long) s);
	if (s < 2 * 3600)
		return psprintf("%lld minutes", (long long) ((s + 59) / 60));
	return psprintf("%lld hours", (long long) ((s + 3599) / 3600));
}

/* period_name names a quota's period for a message */
static const char *
period_name(int64 seconds)
{
	switch (seconds)
	{
		case 1:
			return "second";
		case 60:
			return "minute";
		case 3600:
			return "hour";
		case 86400:
			return "day";
		default:
			return "week";
	}
}

/*
 * ratelimit_check_quota takes one link from an owner's quota
 * (shorturl.shorten_quota), or refuses with 53400.  Nothing to do without
 * a quota.
 */
void
ratelimit_check_quota(const char *owner, size_t len)
{
	gcra_limit	limit;
	gcra_decision d;
	quota_spec	q;
	size_t		bad;
	ratelimit_result r;

	if (shorturl_shorten_quota == NULL ||
		quota_parse(shorturl_shorten_quota, strlen(shorturl_shorten_quota), &q, &bad) != QUOTA_OK)
		return;					/* the check hook let only valid ones in */
	if (keys == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("shorturl.shorten_quota needs pg_shorturl in shared_preload_libraries"),
				 errhint("Add pg_shorturl to shared_preload_libraries and restart, or reset shorturl.shorten_quota.")));
	if (gcra_make_limit((double) q.count / (double) q.period_s, (double) q.count, 1,
						&limit) != GCRA_OK)
		elog(ERROR, "shorturl.shorten_quota \"%s\" makes no rate", shorturl_shorten_quota);
	r = ratelimit_take(RATE_KIND_QUOTA, owner, len, &limit, &d);
	if (r == RATE_ALLOWED ||
		(r == RATE_TABLE_FULL && shorturl_rate_limit_when_full == RATE_FULL_ALLOW))
		return;
	if (r == RATE_TABLE_FULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("cannot check the link quota of owner \"%s\"", owner),
				 errdetail("The rate-limit table is full (shorturl.max_rate_keys is %d).",
						   shorturl_max_rate_keys),
				 errhint("Raise shorturl.max_rate_keys, or set shorturl.rate_limit_when_full to allow.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("owner \"%s\" has made its %lld %s per %s", owner,
					(long long) q.count, q.count == 1 ? "link" : "links",
					period_name(q.period_s)),
			 errdetail("retry_after: %s. The quota is shorturl.shorten_quota = '%s'.",
					   retry_text(d.retry_after_ns), shorturl_shorten_quota)));
}

PG_FUNCTION_INFO_V1(shorturl_check_quota);

/*
 * shorturl_check_quota implements _check_quota(owner text) RETURNS void:
 * one link from an owner's quota, or 53400, as shorten() takes it.  A
 * coordinator, whose links are stored by store_link(), asks the one shard
 * the owner routes to, so that every coordinator draws on one bucket.
 */
Datum
shorturl_check_quota(PG_FUNCTION_ARGS)
{
	char	   *owner = text_to_cstring(PG_GETARG_TEXT_PP(0));

	ratelimit_check_quota(owner, strlen(owner));
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * rate_limit()
 * ---------------------------------------------------------------------
 */

/* report_limit turns a bad rate, burst or cost into an error */
static void
report_limit(gcra_status st, double rate, double burst, double cost)
{
	switch (st)
	{
		case GCRA_OK:
			return;
		case GCRA_BAD_RATE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rate must be greater than 0 and at most %.0f, not %g",
							GCRA_MAX_RATE, rate),
					 errhint("The rate is how many tokens the bucket gains a second.")));
			break;
		case GCRA_BAD_BURST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("burst must be a finite number greater than 0, not %g", burst),
					 errhint("The burst is how many tokens the bucket holds.")));
			break;
		case GCRA_BAD_COST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cost must be a finite number of at least 0, not %g", cost)));
			break;
		case GCRA_COST_OVER_BURST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cost %g is more than the burst %g", cost, burst),
					 errdetail("Such a request could never be allowed, even by a full bucket.")));
			break;
		case GCRA_WINDOW_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("burst / rate is %g seconds, longer than ten years", burst / rate),
					 errhint("A bucket must refill from empty within ten years.")));
			break;
		case GCRA_WINDOW_TOO_SHORT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("burst / rate is %g seconds, shorter than a nanosecond", burst / rate),
					 errhint("The limiter keeps time in nanoseconds.")));
			break;
	}
}

/* interval_of makes an interval of nanoseconds, rounded up to a microsecond */
static Interval *
interval_of(int64 ns)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (ns + RATE_NS_PER_US - 1) / RATE_NS_PER_US;
	return iv;
}

PG_FUNCTION_INFO_V1(shorturl_rate_limit);

/*
 * shorturl_rate_limit implements rate_limit(key text, rate float8, burst
 * float8, cost float8 DEFAULT 1, OUT allowed boolean, OUT remaining
 * float8, OUT retry_after interval).  When the answer comes from
 * shorturl.rate_limit_when_full, remaining and retry_after are NULL.
 */
Datum
shorturl_rate_limit(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	double		rate = PG_GETARG_FLOAT8(1);
	double		burst = PG_GETARG_FLOAT8(2);
	double		cost = PG_GETARG_FLOAT8(3);
	gcra_limit	limit;
	gcra_decision d;
	TupleDesc	desc = fcinfo->flinfo->fn_extra;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (keys == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rate_limit() needs pg_shorturl in shared_preload_libraries"),
				 errhint("Add pg_shorturl to shared_preload_libraries and restart the server.")));
	report_limit(gcra_make_limit(rate, burst, cost, &limit), rate, burst, cost);

	/* the row type, blessed once per call site */
	if (desc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = desc;
	}

	switch (ratelimit_take(RATE_KIND_LIMIT, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
						   &limit, &d))
	{
		case RATE_ALLOWED:
		case RATE_REFUSED:
			values[0] = BoolGetDatum(d.allowed);
			values[1] = Float8GetDatum(d.remaining);
			values[2] = IntervalPGetDatum(interval_of(d.retry_after_ns));
			break;
		case RATE_TABLE_FULL:
			values[0] = BoolGetDatum(shorturl_rate_limit_when_full == RATE_FULL_ALLOW);
			nulls[1] = nulls[2] = true;
			break;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * ratelimit_stats reads the table's figures for shorturl.stats: keys in
 * use, keys reclaimed and requests answered by rate_limit_when_full.
 * False when the library is not preloaded.
 */
bool
ratelimit_stats(int64 *in_use, int64 *reclaimed, int64 *full)
{
	if (keys == NULL)
		return false;
	/* a count without the locks: a figure of the moment, not a promise */
	*in_use = (int64) hash_get_num_entries(keys);
	*reclaimed = (int64) pg_atomic_read_u64(&shared->reclaimed);
	*full = (int64) pg_atomic_read_u64(&shared->full);
	return true;
}
