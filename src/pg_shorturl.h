/*-------------------------------------------------------------------------
 *
 * pg_shorturl.h
 *	  What the PostgreSQL-facing files of pg_shorturl share: the schema's
 *	  name, the classes of its advisory locks, and the settings.
 *
 * The settings are defined in pg_shorturl.c; other files only read them.
 * The pure cores (base62.h and friends) never include this header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_SHORTURL_H
#define PG_SHORTURL_H

/* the extension's fixed schema (pg_shorturl.control) */
#define SHORTURL_SCHEMA "shorturl"

/* the extension's version, for the module magic block */
#define SHORTURL_VERSION "0.11"

/*
 * Classes (locktag_field4) of pg_shorturl's advisory locks, chosen apart
 * from the 1 and 2 of pg_advisory_lock(), so they never meet users' locks.
 * They show in pg_locks as advisory locks with these objsubid values.
 */
#define SHORTURL_LOCK_REUSE		0x5301	/* shorten(reuse => true), per URL hash */
#define SHORTURL_LOCK_LINK		0x5302	/* a limited link's count, per link */
#define SHORTURL_LOCK_FLUSH		0x5303	/* a flush, per database */

/* settings (pg_shorturl.c) */
extern int	shorturl_max_url_length;
extern bool shorturl_allow_userinfo;
extern int	shorturl_max_pending_links;
extern int	shorturl_max_databases;
extern int	shorturl_max_workers;
extern char *shorturl_database;
extern int	shorturl_flush_interval;
extern int	shorturl_analytics_flush_interval;
extern int	shorturl_purge_interval;
extern int	shorturl_purge_grace;
extern int	shorturl_purge_batch_size;
extern int	shorturl_remote_timeout;
extern int	shorturl_ship_interval;
extern int	shorturl_ship_timeout;
extern int	shorturl_claim_timeout;
extern char *shorturl_primary_conninfo;
extern char *shorturl_standby_name;
extern bool shorturl_count_bots;
extern int	shorturl_max_dimension_values;
extern int	shorturl_hourly_retention;
extern int	shorturl_analytics_retention;
extern int	shorturl_max_pending_dimensions;
extern int	shorturl_max_pending_visitors;
extern int	shorturl_max_rate_keys;
extern int	shorturl_rate_limit_when_full;
extern int	shorturl_scan_limit;
extern int	shorturl_scan_cooldown;
extern char *shorturl_shorten_quota;
extern int	shorturl_url_cache_size;
extern bool shorturl_url_cache;
extern int	shorturl_url_cache_fill_wait;

#endif							/* PG_SHORTURL_H */
