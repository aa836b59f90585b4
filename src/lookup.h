/*-------------------------------------------------------------------------
 *
 * lookup.h
 *	  Reading one link, or its stored visit count, through an index without
 *	  SQL (lookup.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_LOOKUP_H
#define SHORTURL_LOOKUP_H

#include "datatype/timestamp.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/* What the store knows of one link, as a redirect needs it */
typedef struct link_row
{
	bool		found;
	int64		id;
	text	   *url;			/* only when asked for */
	bool		has_expiry;
	TimestampTz expires_at;
	bool		has_max;
	int64		max_visits;
	bool		disabled;
} link_row;

extern bool lookup_link(Relation heap, const char *code, int code_len,
						const char *domain, int domain_len, Snapshot snapshot,
						bool want_url, link_row *row, bool *newest);
extern int64 lookup_stored_visits(int64 link_id, Snapshot snapshot);
extern bool lookup_link_by_id(int64 link_id, Snapshot snapshot, link_row *row);
extern bool lookup_link_may_exist(int64 link_id);
extern const char *lookup_standby_name(void);
extern bool lookup_batch_applied(const char *standby, uint64 seq, Snapshot snapshot);

/* A link that shorten(reuse => true) may hand out again */
typedef struct link_candidate
{
	link_row	row;			/* url always filled */
	text	   *code;
	text	   *domain;
	text	   *owner;			/* NULL for none */
	bool		is_alias;
	bool		exhausted;
} link_candidate;

extern int	lookup_newest_by_url_hash(int64 url_hash, Snapshot snapshot, int limit,
									  link_candidate *out);

#endif							/* SHORTURL_LOOKUP_H */
