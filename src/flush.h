/*-------------------------------------------------------------------------
 *
 * flush.h
 *	  Writing the clicks held in shared memory to the tables (flush.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_FLUSH_H
#define SHORTURL_FLUSH_H

#include "datatype/timestamp.h"

/* Clicks of a link in an hour, shipped by a standby (ship.c) */
typedef struct shipped_row
{
	int64		link_id;
	TimestampTz hour;
	int64		visits;
	int64		bots;
	TimestampTz last_visit;
} shipped_row;

extern int64 flush_clicks(int first_partition, int npartitions, bool analytics);
extern int	flush_partitions(void);
extern int64 flush_reset_link(int64 link_id);
extern bool flush_reset_here(int64 link_id);
extern int64 flush_take_link(int64 link_id);
extern void flush_add_visits(int64 link_id, int64 visits);
extern int64 flush_apply_shipped(shipped_row *rows, int n);

#endif							/* SHORTURL_FLUSH_H */
