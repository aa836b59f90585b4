/*-------------------------------------------------------------------------
 *
 * routing_sql.h
 *	  SQL-callable shard routing and the per-backend shard-map cache
 *	  (routing_sql.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_ROUTING_SQL_H
#define SHORTURL_ROUTING_SQL_H

extern void routing_init(void);

#endif							/* SHORTURL_ROUTING_SQL_H */
