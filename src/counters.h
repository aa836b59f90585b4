/*-------------------------------------------------------------------------
 *
 * counters.h
 *	  Click counters in shared memory (counters.c): the interface links.c,
 *	  purge.c and worker.c use.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_COUNTERS_H
#define SHORTURL_COUNTERS_H

#include "datatype/timestamp.h"
#include "storage/latch.h"

/* What counters_bump did with a click */
typedef enum counter_result
{
	COUNTER_COUNTED,			/* counted in shared memory */
	COUNTER_EXHAUSTED,			/* the link has no visits left: not counted */
	COUNTER_GONE,				/* the link vanished meanwhile: not counted */
	COUNTER_FULL				/* no room: count it synchronously (the link's
								 * lock is held to the end of the transaction) */
} counter_result;

/* The link a click is for, as the caller found it */
typedef struct counter_link
{
	Oid			relid;			/* shorturl.links */
	const char *code;
	int			code_len;
	TimestampTz created_at;		/* tells incarnations of a code apart */
	bool		has_max;
	int64		max_visits;
} counter_link;

/* counters.c */
extern void counters_init(void);
extern bool counters_serving(void);
extern counter_result counters_bump(const counter_link *link);
extern bool counters_peek(const counter_link *link, int64 *total);
extern int64 counters_flush(void);
extern void counters_note_purge(int64 rows);
extern void counters_note_error(const char *message);
extern void counters_set_served_database(Oid dboid);
extern Oid	counters_served_database(void);
extern bool counters_claim_worker(int pid, Latch *latch);
extern void counters_release_worker(int pid);
extern int	counters_worker_pid(void);
extern bool counters_take_flush_request(void);
extern void counters_note_database_drop(Oid dboid);
extern void counters_discard_except(Oid keep);
extern bool counters_database_drop_pending(Oid dboid);

/* links.c: the link's visits as of a fresh snapshot, false if it is gone */
extern bool links_latest_visits(Oid relid, const char *code, int code_len,
								TimestampTz created_at, int64 *visits);

#endif							/* SHORTURL_COUNTERS_H */
