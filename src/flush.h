/*-------------------------------------------------------------------------
 *
 * flush.h
 *	  Writing the clicks held in shared memory to the tables (flush.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_FLUSH_H
#define SHORTURL_FLUSH_H

extern int64 flush_clicks(int first_partition, int npartitions, bool analytics);
extern int	flush_partitions(void);
extern int64 flush_reset_link(int64 link_id);
extern bool flush_reset_here(int64 link_id);
extern int64 flush_take_link(int64 link_id);
extern void flush_add_visits(int64 link_id, int64 visits);

#endif							/* SHORTURL_FLUSH_H */
