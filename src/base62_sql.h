/*-------------------------------------------------------------------------
 *
 * base62_sql.h
 *	  SQL-callable base62 functions, and the helper that shows a character
 *	  in an error message (base62_sql.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_BASE62_SQL_H
#define SHORTURL_BASE62_SQL_H

extern char *shorturl_describe_char(const char *p, int len);
extern char *shorturl_clip_for_message(const char *p, int len);

#endif							/* SHORTURL_BASE62_SQL_H */
