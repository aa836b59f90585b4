/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *	  The shared table of rate-limit keys (ratelimit.c): rate_limit(), the
 *	  scan guard of resolve() and link_status(), and the owners' quotas of
 *	  shorten().
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_RATELIMIT_H
#define SHORTURL_RATELIMIT_H

#include "gcra.h"

/* What a key stands for: the kinds never share a key */
typedef enum ratelimit_kind
{
	RATE_KIND_LIMIT = 1,		/* a key of rate_limit() */
	RATE_KIND_SCAN = 2,			/* a client of resolve() and link_status() */
	RATE_KIND_QUOTA = 3			/* an owner of shorten() */
} ratelimit_kind;

/* How a request fared */
typedef enum ratelimit_result
{
	RATE_ALLOWED,
	RATE_REFUSED,
	RATE_TABLE_FULL				/* no room for a new key, none reclaimable */
} ratelimit_result;

/* shorturl.rate_limit_when_full */
typedef enum ratelimit_when_full
{
	RATE_FULL_REFUSE,
	RATE_FULL_ALLOW
} ratelimit_when_full;

extern Size ratelimit_shmem_size(void);
extern void ratelimit_request_shmem(void);
extern void ratelimit_init_shmem(void);
extern bool ratelimit_available(void);

extern ratelimit_result ratelimit_take(ratelimit_kind kind, const char *key, size_t len,
									   const gcra_limit *limit, gcra_decision *d);
extern bool ratelimit_client_blocked(const char *client, size_t len);
extern void ratelimit_client_missed(const char *client, size_t len);
extern void ratelimit_check_quota(const char *owner, size_t len);
extern bool ratelimit_stats(int64 *in_use, int64 *reclaimed, int64 *full);

#endif							/* SHORTURL_RATELIMIT_H */
