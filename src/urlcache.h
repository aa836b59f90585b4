/*-------------------------------------------------------------------------
 *
 * urlcache.h
 *	  A cache of hot links in shared memory, in front of shorturl.links'
 *	  index on (code, domain) (urlcache.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_URLCACHE_H
#define SHORTURL_URLCACHE_H

#include "fmgr.h"
#include "access/xlogdefs.h"
#include "utils/relcache.h"

#include "lookup.h"

/* What a probe that missed remembers for the fill that may follow */
typedef struct urlcache_probe
{
	bool		usable;			/* the cache may answer and be filled */
	uint64		hash;
	uint64		gen;			/* of the key's partition, at the probe */
	Oid			relid;
	Oid			filenumber;
} urlcache_probe;

/*
 * The custom WAL resource manager that replays the cache's invalidations
 * on standbys.  128 is RM_EXPERIMENTAL_ID; this one is ours until the
 * PostgreSQL wiki's list of custom resource managers says otherwise (see
 * the README's "Read replicas").
 */
#define RM_SHORTURL_ID			171

extern void urlcache_register_rmgr(void);
extern void urlcache_announce(void);
extern Size urlcache_shmem_size(void);
extern void urlcache_request_shmem(void);
extern void urlcache_init_shmem(void);

extern bool urlcache_get(Relation links, const char *code, int code_len,
						 const char *domain, int domain_len, bool want_url,
						 link_row *row, urlcache_probe *probe);
extern void urlcache_fill(const urlcache_probe *probe, const char *code, int code_len,
						  const char *domain, int domain_len, const link_row *row);

typedef struct urlcache_figures
{
	int64		hits;
	int64		misses;
	int64		fills;
	int64		rejected;
	int64		evictions;
	int64		invalidations;
	int64		entries;
	int64		bytes;
	int64		size;
} urlcache_figures;

extern bool urlcache_stats(urlcache_figures *f);

#endif							/* SHORTURL_URLCACHE_H */
