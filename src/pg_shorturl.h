/*-------------------------------------------------------------------------
 *
 * pg_shorturl.h
 *	  Declarations shared by the PostgreSQL-facing files of pg_shorturl.
 *
 * The pure cores (base62.h and friends) have their own headers and never
 * include this one.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_SHORTURL_H
#define PG_SHORTURL_H

/* the extension's fixed schema (pg_shorturl.control) */
#define SHORTURL_SCHEMA "shorturl"

/* base62_sql.c */
extern char *shorturl_describe_char(const char *p, int len);

/* routing_sql.c */
extern void routing_init(void);

#endif							/* PG_SHORTURL_H */
