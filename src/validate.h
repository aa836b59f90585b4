/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Pure validation of what shorten() accepts: target URLs and aliases.
 *
 * No PostgreSQL headers, no allocation: the fuzzer in
 * test/fuzz/fuzz_validate.c drives these directly, and links.c turns a
 * status into an error message naming the rule that failed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_VALIDATE_H
#define SHORTURL_VALIDATE_H

#include <stddef.h>

/* aliases are 1..64 characters of [A-Za-z0-9_-] */
#define ALIAS_MAX_LENGTH	64

typedef enum url_status
{
	URL_OK = 0,
	URL_TOO_LONG,				/* more bytes than the configured maximum */
	URL_CONTROL_CHAR,			/* an ASCII control character (0x00-0x1F, 0x7F) */
	URL_SPACE,					/* an ASCII space */
	URL_BAD_SCHEME,				/* not http:// or https:// (any case) */
	URL_NO_HOST,				/* nothing between "//" and the path */
	URL_BAD_HOST,				/* a character not allowed in a host name */
	URL_BAD_PORT				/* a port that is not 1..65535 */
} url_status;

/*
 * validate_url checks the len bytes of url against the rules of the README
 * ("URL validation"); max_len is the longest accepted length in bytes.  On
 * failure *bad_offset is the byte offset the failed rule points at (0 when
 * the rule concerns the whole URL).
 */
extern url_status validate_url(const char *url, size_t len, size_t max_len,
							   size_t *bad_offset);

typedef enum alias_status
{
	ALIAS_OK = 0,
	ALIAS_EMPTY,
	ALIAS_TOO_LONG,
	ALIAS_BAD_CHAR
} alias_status;

/* validate_alias checks an alias; *bad_offset as for validate_url */
extern alias_status validate_alias(const char *alias, size_t len,
								   size_t *bad_offset);

/* code_chars_ok tells whether every byte is one a code or alias may hold */
extern int	code_chars_ok(const char *s, size_t len);

#endif							/* SHORTURL_VALIDATE_H */
