/*-------------------------------------------------------------------------
 *
 * purge.h
 *	  Deleting expired and exhausted links, and old analytics, in small
 *	  batches (purge.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_PURGE_H
#define SHORTURL_PURGE_H

typedef enum purge_kind
{
	PURGE_EXPIRED,
	PURGE_EXHAUSTED,
	PURGE_ORPHANS,
	PURGE_ANALYTICS				/* merge old hours into days; drop old days */
} purge_kind;

extern int64 purge_batch(purge_kind kind, int limit);

#endif							/* SHORTURL_PURGE_H */
