/*-------------------------------------------------------------------------
 *
 * analytics.h
 *	  The dimensions and visitors of clicks in shared memory, and their
 *	  flush (analytics.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_ANALYTICS_H
#define SHORTURL_ANALYTICS_H

#include <stdio.h>

#include "datatype/timestamp.h"

typedef enum analytics_dim
{
	DIM_REFERRER,
	DIM_COUNTRY,
	DIM_DEVICE,
	ANALYTICS_DIMS
} analytics_dim;

/*
 * A dimension value has at most ANALYTICS_VALUE_SIZE - 1 bytes; a longer
 * referrer host (rare: DNS allows 253) counts as "other".  The size keeps
 * an entry of the shared table at about a third of what any host would.
 */
#define ANALYTICS_VALUE_SIZE	64

/* Where values go beyond shorturl.max_dimension_values, or without room */
#define ANALYTICS_OTHER		"other"

extern const char *const analytics_dim_names[ANALYTICS_DIMS];

extern Size analytics_shmem_size(void);
extern void analytics_request_shmem(void);
extern void analytics_init_shmem(void);

extern int32 analytics_day(TimestampTz t);
extern void analytics_record(int64 link_id, TimestampTz when,
							 const char *const values[ANALYTICS_DIMS],
							 bool has_visitor, uint64 visitor_hash, bool bot);
extern void analytics_pending(int64 *ndims, int64 *nvisitors);
extern int64 analytics_discard_database(Oid dbid);
extern void analytics_forget_links(const int64 *links, int n);
extern void analytics_flush(Oid relid);
extern bool analytics_filling(void);
extern void analytics_settle(bool committed);

/* across a clean restart, in the counters' file (counters_file.c) */
/*
 * What a standby ships of its clicks' analytics (ship.c), and its primary
 * takes in (apply.c): a value's clicks in a link-day, and a visitor.
 */
typedef struct analytics_shipped_dim
{
	int64		link_id;
	int32		day;			/* days since 2000-01-01, UTC */
	int32		dim;			/* analytics_dim */
	int64		visits;
	int64		bots;
	char		value[ANALYTICS_VALUE_SIZE];
} analytics_shipped_dim;

typedef struct analytics_shipped_visitor
{
	int64		link_id;
	int32		day;
	uint64		vhash;
} analytics_shipped_visitor;

extern void analytics_take_for_ship(Oid relid, analytics_shipped_dim **dims, int *ndims,
									analytics_shipped_visitor **visitors, int *nvisitors);
extern void analytics_give_back(Oid relid, const analytics_shipped_dim *dims, int ndims,
								const analytics_shipped_visitor *visitors, int nvisitors);
extern void analytics_take_shipped(Oid relid, const analytics_shipped_dim *dims, int ndims,
								   const analytics_shipped_visitor *visitors, int nvisitors);

typedef struct analytics_saved analytics_saved;
extern uint64 analytics_unsaved(void);
extern bool analytics_file_write(FILE *file);
extern analytics_saved *analytics_file_read(FILE *file, const char **why);
extern void analytics_file_restore(analytics_saved *saved);

#endif							/* SHORTURL_ANALYTICS_H */
