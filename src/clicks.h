/*-------------------------------------------------------------------------
 *
 * clicks.h
 *	  Counting a click, and reading a link's live visit count (clicks.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_CLICKS_H
#define SHORTURL_CLICKS_H

#include "datatype/timestamp.h"
#include "utils/snapshot.h"

#include "dbstate.h"

typedef enum click_result
{
	CLICK_COUNTED,				/* counted */
	CLICK_EXHAUSTED,			/* the link has no visits left: not counted */
	CLICK_REFUSED				/* could not be counted where it would stick:
								 * not served (limited links) */
} click_result;

/* How this backend counts clicks */
typedef enum click_mode
{
	CLICKS_SHARED,				/* in shared memory, flushed by the worker */
	CLICKS_TABLE,				/* in the tables, in the caller's transaction */
	CLICKS_STANDBY,				/* on a hot standby: in shared memory,
								 * shipped to the primary (ship.c) */
	CLICKS_NONE					/* on a hot standby that does not ship:
								 * not counted */
} click_mode;

/*
 * What shared memory holds of a link's clicks beyond its stored rows, at
 * one moment (clicks_live_read()): pending clicks, first_hour's share of
 * them, and the in-flight clicks of a flush not yet visible.
 */
typedef struct clicks_live_parts
{
	int64		pending;
	int64		pending_bots;
	uint64		first_hour;		/* as counter_entry keeps it */
	TimestampTz last_visit;
	int64		inflight;
	int64		inflight_bots;
} clicks_live_parts;

typedef void (*clicks_stored_reader) (Snapshot snapshot, void *arg);

extern click_mode clicks_mode(void);
extern struct db_state *clicks_stats_slot(void);
extern uint64 clicks_hour(TimestampTz t);
extern click_result clicks_count(int64 link_id, bool has_max, int64 max_visits, bool bot);
extern void clicks_live_read(int64 link_id, clicks_stored_reader read, void *arg,
							 clicks_live_parts *out);
extern int64 clicks_live_visits(int64 link_id);
extern int64 clicks_pending(int64 link_id);
extern void clicks_forget(int64 link_id);

#endif							/* SHORTURL_CLICKS_H */
