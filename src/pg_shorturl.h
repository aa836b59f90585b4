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

/* base62_sql.c */
extern char *shorturl_describe_char(const char *p, int len);

#endif							/* PG_SHORTURL_H */
