/*-------------------------------------------------------------------------
 *
 * pg_shorturl.c
 *	  Module entry point of pg_shorturl: the magic block, _PG_init, the
 *	  settings (GUCs) and the shared-memory hooks.
 *
 * Everything that must happen once per process when the library is loaded
 * (defining settings, registering cache callbacks and, when preloaded, the
 * shared memory, the launcher and the hooks) starts here and is delegated
 * to the file that owns it.  No other file calls into this one: they read
 * the settings' variables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "analytics.h"
#include "catalog.h"
#include "codes.h"
#include "compat.h"
#include "counters.h"
#include "counters_file.h"
#include "dbstate.h"
#include "blocklist.h"
#include "gcra.h"
#include "pg_shorturl.h"
#include "ratelimit.h"
#include "routing_sql.h"
#include "urlcache.h"
#include "worker.h"

COMPAT_MODULE_MAGIC("pg_shorturl", SHORTURL_VERSION);

/* Longest URL shorten() accepts, in bytes */
#define DEFAULT_MAX_URL_LENGTH	2048
#define MAX_MAX_URL_LENGTH		(1024 * 1024)

/*
 * Links whose counters shared memory holds, about 90 bytes each (9,005,064
 * bytes in pg_shmem_allocations at the default): 9 MB by default.  An entry stays until
 * its partition is full and a new link needs the room, so this should
 * cover the links clicked between two flushes with room to spare; a full
 * table makes clicks wait for a flush.
 */
#define DEFAULT_MAX_PENDING_LINKS	100000
#define MIN_MAX_PENDING_LINKS		1000

/* Databases whose state shared memory holds: one slot each */
#define DEFAULT_MAX_DATABASES	32

/* Workers at once; they count against max_worker_processes */
#define DEFAULT_MAX_WORKERS		2

#define DEFAULT_FLUSH_INTERVAL_MS	1000

/*
 * The worker writes dimensions and visitors every 10 s, not every flush: a
 * busy link's values and visitor sketch are then rewritten a tenth as often
 * (the test/bench/analytics.sh figures in the README).  A clean shutdown
 * keeps what is pending (counters_file.c); a crash loses up to this much.
 */
#define DEFAULT_ANALYTICS_FLUSH_INTERVAL_MS	10000
#define DEFAULT_PURGE_INTERVAL_S	60
#define DEFAULT_PURGE_GRACE_S		(24 * 60 * 60)
#define DEFAULT_PURGE_BATCH_SIZE	1000

/*
 * How long a call to another server may take: long enough for a busy
 * shard, short enough that a frozen one fails a redirect in seconds.
 */
#define DEFAULT_REMOTE_TIMEOUT_MS	5000

/*
 * A standby ships its clicks to the primary once a second (ship.c), and
 * gives up on a connection or an answer after 10 s, to try again with the
 * same batch.
 */
#define DEFAULT_SHIP_INTERVAL_MS	1000
#define DEFAULT_SHIP_TIMEOUT_MS		10000
#define DEFAULT_CLAIM_TIMEOUT_MS	1000

/* Analytics: values kept per link, day and dimension; how long hours and days stay */
#define DEFAULT_MAX_DIMENSION_VALUES	20
#define DEFAULT_HOURLY_RETENTION_S		(7 * 24 * 60 * 60)
#define DEFAULT_ANALYTICS_RETENTION_S	(400 * 24 * 60 * 60)

/*
 * Unflushed dimension values (136 bytes each) and visitors (56 bytes each)
 * shared memory can hold: a click with every dimension makes three values
 * and a visitor, so this covers some 20,000 clicks of distinct link-days
 * between two flushes (test/bench/analytics.sh: 13,000 a second, uniform
 * over 100,000 links).  Beyond, values go to "other" and visitors are not
 * counted (shorturl.stats says how many).
 */
#define DEFAULT_MAX_PENDING_DIMENSIONS	65536
#define DEFAULT_MAX_PENDING_VISITORS	131072

/*
 * Rate-limit keys (rate_limit() keys, scanning clients, owners with a
 * quota) shared memory holds, 48 bytes each and 64 with the hash table's
 * own (postgres -C shared_memory_size: 8 MB at the default).  Keys whose buckets are
 * full are reclaimed when it fills, so this bounds the keys active at once.
 */
#define DEFAULT_MAX_RATE_KEYS		131072

/*
 * The URL cache (urlcache.c), in kB: planned at 200 bytes a link (a 64-byte
 * slot, two places of its index and two 64-byte chunks of 60 bytes of code,
 * domain and URL), 64 MB have 335,000 slots and chunks for some 320,000
 * links whose code, domain and URL take up to 120 bytes.  0: no cache.
 */
#define DEFAULT_URL_CACHE_SIZE_KB	(64 * 1024)
#define MAX_URL_CACHE_SIZE_KB		(INT_MAX / 2)

/*
 * Unknown codes a client of resolve() may ask for in a minute before it is
 * blocked, and for how long.  A visitor who mistypes a link misses a few
 * times; a scanner of a sparse code space misses almost every time, so 30
 * a minute stops it after 30 guesses and lets it try again only 10 minutes
 * later.
 */
#define DEFAULT_SCAN_LIMIT			30
#define DEFAULT_SCAN_COOLDOWN_S		600

int			shorturl_max_url_length = DEFAULT_MAX_URL_LENGTH;
bool		shorturl_allow_userinfo = false;
int			shorturl_max_pending_links = DEFAULT_MAX_PENDING_LINKS;
int			shorturl_max_databases = DEFAULT_MAX_DATABASES;
int			shorturl_max_workers = DEFAULT_MAX_WORKERS;
char	   *shorturl_database = NULL;
int			shorturl_flush_interval = DEFAULT_FLUSH_INTERVAL_MS;
int			shorturl_analytics_flush_interval = DEFAULT_ANALYTICS_FLUSH_INTERVAL_MS;
int			shorturl_purge_interval = DEFAULT_PURGE_INTERVAL_S;
int			shorturl_purge_grace = DEFAULT_PURGE_GRACE_S;
int			shorturl_purge_batch_size = DEFAULT_PURGE_BATCH_SIZE;
int			shorturl_remote_timeout = DEFAULT_REMOTE_TIMEOUT_MS;
int			shorturl_ship_interval = DEFAULT_SHIP_INTERVAL_MS;
int			shorturl_ship_timeout = DEFAULT_SHIP_TIMEOUT_MS;
int			shorturl_claim_timeout = DEFAULT_CLAIM_TIMEOUT_MS;
char	   *shorturl_primary_conninfo = NULL;
char	   *shorturl_standby_name = NULL;
bool		shorturl_count_bots = false;
int			shorturl_max_dimension_values = DEFAULT_MAX_DIMENSION_VALUES;
int			shorturl_hourly_retention = DEFAULT_HOURLY_RETENTION_S;
int			shorturl_analytics_retention = DEFAULT_ANALYTICS_RETENTION_S;
int			shorturl_max_pending_dimensions = DEFAULT_MAX_PENDING_DIMENSIONS;
int			shorturl_max_pending_visitors = DEFAULT_MAX_PENDING_VISITORS;
int			shorturl_max_rate_keys = DEFAULT_MAX_RATE_KEYS;
int			shorturl_url_cache_size = DEFAULT_URL_CACHE_SIZE_KB;
bool		shorturl_url_cache = true;
int			shorturl_url_cache_fill_wait = 0;
int			shorturl_rate_limit_when_full = RATE_FULL_REFUSE;
int			shorturl_scan_limit = DEFAULT_SCAN_LIMIT;
int			shorturl_scan_cooldown = DEFAULT_SCAN_COOLDOWN_S;
char	   *shorturl_shorten_quota = NULL;

static const struct config_enum_entry when_full_options[] = {
	{"refuse", RATE_FULL_REFUSE, false},
	{"allow", RATE_FULL_ALLOW, false},
	{NULL, 0, false}
};

#ifdef COMPAT_HAS_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* check_shorten_quota accepts '' or a quota quota_parse reads */
static bool
check_shorten_quota(char **newval, void **extra pg_attribute_unused(), GucSource source pg_attribute_unused())
{
	quota_spec	q;
	size_t		bad;

	switch (quota_parse(*newval, strlen(*newval), &q, &bad))
	{
		case QUOTA_OK:
		case QUOTA_EMPTY:
			return true;
		case QUOTA_BAD_COUNT:
			GUC_check_errdetail("The count must be a whole number from 1 to %d.", QUOTA_MAX_COUNT);
			break;
		case QUOTA_NO_SLASH:
			GUC_check_errdetail("A quota is a count, a slash and a period, such as '100/hour'.");
			break;
		case QUOTA_BAD_PERIOD:
			GUC_check_errdetail("The period is second, minute, hour, day or week.");
			break;
	}
	return false;
}

/*
 * check_standby_name accepts '' or a name the primary keeps: up to 63
 * bytes, as in shorturl.standby_batches.
 */
static bool
check_standby_name(char **newval, void **extra pg_attribute_unused(), GucSource source pg_attribute_unused())
{
	if (strlen(*newval) < NAMEDATALEN)
		return true;
	GUC_check_errdetail("A standby's name has at most %d bytes.", NAMEDATALEN - 1);
	return false;
}

/* define_settings defines every shorturl.* setting */
static void
define_settings(void)
{
	DefineCustomIntVariable("shorturl.max_url_length",
							"Longest URL, in bytes, that shorturl.shorten() accepts.",
							NULL,
							&shorturl_max_url_length,
							DEFAULT_MAX_URL_LENGTH,
							1, MAX_MAX_URL_LENGTH,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("shorturl.allow_userinfo",
							 "Whether shorturl.shorten() accepts URLs with userinfo (user:password@host).",
							 "Userinfo is a classic way to disguise the real host of a link.",
							 &shorturl_allow_userinfo,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.flush_interval",
							"Time between the starts of two flushes of the click counters.",
							"It bounds what a crash can lose, together with the time a flush takes.",
							&shorturl_flush_interval,
							DEFAULT_FLUSH_INTERVAL_MS,
							10, 24 * 60 * 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.analytics_flush_interval",
							"Time between two flushes of the visit dimensions and visitors.",
							"The worker also writes them when a flush finds either table half full. "
							"A crash can lose this much of them; counts and hours go with every flush.",
							&shorturl_analytics_flush_interval,
							DEFAULT_ANALYTICS_FLUSH_INTERVAL_MS,
							0, 24 * 60 * 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.purge_interval",
							"Time between two purges of expired and exhausted links.",
							NULL,
							&shorturl_purge_interval,
							DEFAULT_PURGE_INTERVAL_S,
							1, 7 * 24 * 60 * 60,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.purge_grace",
							"How long an exhausted link (no visits left) is kept before it is purged.",
							"During that time it answers link_status() with exhausted rather than unknown.",
							&shorturl_purge_grace,
							DEFAULT_PURGE_GRACE_S,
							0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.purge_batch_size",
							"Links deleted per transaction by the purge.",
							NULL,
							&shorturl_purge_batch_size,
							DEFAULT_PURGE_BATCH_SIZE,
							1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.remote_timeout",
							"Time a call to another server may take before it fails.",
							"A coordinator's calls to its shards use it (in whole seconds, for connecting and for each answer).",
							&shorturl_remote_timeout,
							DEFAULT_REMOTE_TIMEOUT_MS,
							1000, 24 * 60 * 60 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.ship_interval",
							"Time between two shipments of a standby's clicks to the primary.",
							"0: a standby serves links without max_visits uncounted.  "
							"A standby's crash can lose this much of its clicks.",
							&shorturl_ship_interval,
							DEFAULT_SHIP_INTERVAL_MS,
							0, 24 * 60 * 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.ship_timeout",
							"Time a standby waits for the primary to connect or to answer a shipment.",
							"Then it closes the connection and sends the same batch again later.",
							&shorturl_ship_timeout,
							DEFAULT_SHIP_TIMEOUT_MS,
							100, 24 * 60 * 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.claim_timeout",
							"Time a standby's resolve() of a link with max_visits waits for the primary to connect or to answer its claim.",
							"Then the link resolves to NULL, and link_status() says unreachable.",
							&shorturl_claim_timeout,
							DEFAULT_CLAIM_TIMEOUT_MS,
							10, 60 * 1000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("shorturl.primary_conninfo",
							   "Connection string a standby ships its clicks and claims visits with; empty for the server's primary_conninfo.",
							   "The database is always the one whose clicks are shipped.",
							   &shorturl_primary_conninfo,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("shorturl.standby_name",
							   "The name a standby ships its clicks under, unique among the primary's standbys; empty for cluster_name.",
							   "With neither set, a standby does not ship.",
							   &shorturl_standby_name,
							   "",
							   PGC_SIGHUP,
							   0,
							   check_standby_name, NULL, NULL);

	DefineCustomIntVariable("shorturl.max_workers",
							"Workers that flush and purge at the same time, one database each.",
							"They count against max_worker_processes; with more databases than workers, the databases take turns.",
							&shorturl_max_workers,
							DEFAULT_MAX_WORKERS,
							1, 1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("shorturl.url_cache",
							 "Whether this session's resolve(), link_status() and visits() use the URL cache.",
							 "Changes to links invalidate the cache whatever this says.",
							 &shorturl_url_cache,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.url_cache_fill_wait",
							"For tests: a fill of the URL cache first waits for this advisory lock (0: none).",
							"The isolation specs use it to stop a fill between reading a link and inserting it.",
							&shorturl_url_cache_fill_wait,
							0,
							0, INT_MAX,
							PGC_SUSET,
							GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("shorturl.count_bots",
							 "Whether visit_series() and visit_breakdown() count bots' clicks.",
							 "Bots' clicks always count in a link's visits; the analytics keep them apart.",
							 &shorturl_count_bots,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.max_dimension_values",
							"Values a link's day keeps per dimension; further ones count as \"other\".",
							NULL,
							&shorturl_max_dimension_values,
							DEFAULT_MAX_DIMENSION_VALUES,
							1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.hourly_retention",
							"How long a link's hourly visit counts stay before the worker merges them into days.",
							NULL,
							&shorturl_hourly_retention,
							DEFAULT_HOURLY_RETENTION_S,
							60 * 60, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.analytics_retention",
							"How long visit analytics stay before the worker deletes them.",
							"Links' visit counts are kept whatever it says.",
							&shorturl_analytics_retention,
							DEFAULT_ANALYTICS_RETENTION_S,
							24 * 60 * 60, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.scan_limit",
							"Unknown codes a client of resolve() or link_status() may look up in a minute before it is blocked; 0 turns the guard off.",
							"Only calls that pass a client are counted.",
							&shorturl_scan_limit,
							DEFAULT_SCAN_LIMIT,
							0, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("shorturl.scan_cooldown",
							"How long a client that passed shorturl.scan_limit gets NULL for every code.",
							NULL,
							&shorturl_scan_cooldown,
							DEFAULT_SCAN_COOLDOWN_S,
							1, 7 * 24 * 60 * 60,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("shorturl.shorten_quota",
							   "Links shorten() makes per owner and period, such as '100/hour'; empty for no quota.",
							   "The period is second, minute, hour, day or week.  Calls without an owner are not counted.",
							   &shorturl_shorten_quota,
							   "",
							   PGC_SUSET,
							   0,
							   check_shorten_quota, NULL, NULL);

	DefineCustomEnumVariable("shorturl.rate_limit_when_full",
							 "What rate_limit() and the quotas answer for a new key when the table of keys is full: refuse or allow.",
							 NULL,
							 &shorturl_rate_limit_when_full,
							 RATE_FULL_REFUSE,
							 when_full_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	/*
	 * Settings read at server start exist only when the library is
	 * preloaded: PostgreSQL refuses to define them later, and without
	 * preloading there is no shared memory or worker for them to shape.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("shorturl.max_pending_links",
								"Links whose unflushed clicks shared memory can hold.",
								"When it is full, a click waits for the worker to flush.",
								&shorturl_max_pending_links,
								DEFAULT_MAX_PENDING_LINKS,
								MIN_MAX_PENDING_LINKS, INT_MAX / 4,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("shorturl.max_pending_dimensions",
								"Unflushed dimension values (link, day, dimension, value) shared memory can hold.",
								"When it is full, new values count as \"other\".",
								&shorturl_max_pending_dimensions,
								DEFAULT_MAX_PENDING_DIMENSIONS,
								128, INT_MAX / 512,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("shorturl.max_pending_visitors",
								"Unflushed visitors (link, day, visitor) shared memory can hold.",
								"When it is full, new visitors are not counted.",
								&shorturl_max_pending_visitors,
								DEFAULT_MAX_PENDING_VISITORS,
								128, INT_MAX / 128,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("shorturl.max_rate_keys",
								"Rate-limit keys, scanning clients and owners with a quota that shared memory can hold.",
								"When it is full, keys whose buckets are full are forgotten; if none is, shorturl.rate_limit_when_full answers.",
								&shorturl_max_rate_keys,
								DEFAULT_MAX_RATE_KEYS,
								100, INT_MAX / 128,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("shorturl.url_cache_size",
								"Shared memory for the cache of hot links that resolve(), link_status() and visits() read first.",
								"0 turns the cache off.",
								&shorturl_url_cache_size,
								DEFAULT_URL_CACHE_SIZE_KB,
								0, MAX_URL_CACHE_SIZE_KB,
								PGC_POSTMASTER,
								GUC_UNIT_KB,
								NULL, NULL, NULL);

		DefineCustomIntVariable("shorturl.max_databases",
								"Databases whose clicks shared memory can count.",
								"Databases beyond it count clicks synchronously.",
								&shorturl_max_databases,
								DEFAULT_MAX_DATABASES,
								1, 10000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomStringVariable("shorturl.database",
								   "Databases the workers serve, as a comma-separated list of names; empty for all.",
								   "Clicks in other databases are counted synchronously.",
								   &shorturl_database,
								   "",
								   PGC_POSTMASTER,
								   0,
								   NULL, NULL, NULL);
	}

	compat_reserve_guc_prefix("shorturl");
}

/* shmem_request asks for every piece of shared memory and every lock */
static void
shmem_request(void)
{
#ifdef COMPAT_HAS_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	counters_request_shmem();
	dbstate_request_shmem();
	analytics_request_shmem();
	ratelimit_request_shmem();
	urlcache_request_shmem();
}

/* shmem_startup attaches every piece of shared memory */
static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	dbstate_init_shmem();
	analytics_init_shmem();
	ratelimit_init_shmem();
	urlcache_init_shmem();
	/* the postmaster restores what the last clean shutdown saved */
	if (counters_init_shmem() && !IsUnderPostmaster)
		counters_file_load();
	if (!IsUnderPostmaster)
		on_shmem_exit(counters_file_save, (Datum) 0);
}

/*
 * _PG_init runs when a backend (or, with shared_preload_libraries, the
 * postmaster) loads the library.
 */
void
_PG_init(void)
{
	define_settings();
	catalog_init();
	codes_init();
	routing_init();
	blocklist_init();

	/* shared memory, the launcher and hooks exist only when preloaded */
	if (!process_shared_preload_libraries_in_progress)
		return;
	urlcache_register_rmgr();
#ifdef COMPAT_HAS_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
#else
	shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
	launcher_init();
}
