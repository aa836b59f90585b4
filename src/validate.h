/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Pure validation of what shorten() accepts: target URLs and aliases.
 *
 * No PostgreSQL headers and no palloc: the fuzzer in
 * test/fuzz/fuzz_validate.c drives these directly, and url_check.c turns a
 * status into an error message naming the rule that failed.  Checking a
 * non-ASCII URL calls ICU (its IDNA and spoof checker), which may malloc
 * its own objects once per process; an ASCII URL never reaches ICU.
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
	URL_TOO_LONG,				/* more bytes than the maximum, as given or as
								 * stored (with its host in ASCII form) */
	URL_CONTROL_CHAR,			/* an ASCII control character (0x00-0x1F, 0x7F) */
	URL_SPACE,					/* an ASCII space */
	URL_BAD_SCHEME,				/* not http:// or https:// (any case) */
	URL_NO_HOST,				/* nothing between "//" and the path */
	URL_BAD_HOST,				/* a character not allowed in a host name */
	URL_BAD_PORT,				/* a port that is not 1..65535 */
	URL_BAD_UTF8,				/* bytes that are not well-formed UTF-8 */
	URL_INVISIBLE_CHAR,			/* a non-ASCII control, format, space,
								 * separator, bidi or default-ignorable
								 * character */
	URL_UNASSIGNED_CHAR,		/* a private-use, unassigned or noncharacter
								 * code point */
	URL_USERINFO,				/* "userinfo@" when the rules refuse it */
	URL_BAD_IDN,				/* a host that UTS #46 (IDNA) refuses */
	URL_RARE_HOST_CHAR,			/* a host label with a character outside the
								 * UTS #39 identifier set */
	URL_MIXED_SCRIPT_HOST,		/* a host label that mixes scripts or digit
								 * systems (UTS #39 restriction level) */
	URL_CONFUSABLE_HOST,		/* a host label that imitates an ASCII one */
	URL_ICU_ERROR				/* ICU could not be opened or failed */
} url_status;

/* what validate_url accepts */
typedef struct url_rules
{
	size_t		max_len;		/* the longest URL in bytes, as given and as
								 * stored */
	int			allow_userinfo; /* accept "userinfo@" before the host */
} url_rules;

/*
 * The parts of an accepted URL, as byte offsets and lengths in the input.
 * The authority ends where the path, query or fragment begins; the port, if
 * any, is what follows the host in the authority.
 */
typedef struct url_parts
{
	size_t		authority_off;	/* the first byte after "//" */
	size_t		authority_len;	/* up to the first '/', '?' or '#' */
	size_t		userinfo_len;	/* "userinfo@" with its '@'; 0 if none */
	size_t		host_off;		/* the host, brackets included for an IP
								 * literal */
	size_t		host_len;
	int			host_ascii;		/* 1 if every byte of the host is ASCII */
	int			host_ip_literal;	/* 1 for a bracketed IP literal */
	size_t		ascii_host_len; /* the length url_ascii_host gives */
} url_parts;

/*
 * validate_url checks the len bytes of url against the rules listed at the
 * top of validate.c.  On failure *bad_offset is the byte offset of the first
 * byte of the character or label the failed rule points at, or 0 when the
 * rule concerns the whole URL; it is below len whenever len > 0.  *parts is
 * filled completely on URL_OK; on failure only the fields found before the
 * failing check are set (the authority and userinfo for URL_USERINFO, the
 * host for the host and port checks after it) and the others are zero.
 */
extern url_status validate_url(const char *url, size_t len,
							   const url_rules *rules, url_parts *parts,
							   size_t *bad_offset);

/*
 * url_ascii_host writes the canonical ASCII form of a host that validate_url
 * accepted to out (cap bytes, not NUL-terminated) and its length to *out_len:
 * the host lowercased, with A-labels (punycode) for a non-ASCII name.  It
 * returns 0 on success, 1 if cap is too small (*out_len is then the length
 * needed) and -1 if the name is not valid IDNA or ICU failed.
 */
extern int	url_ascii_host(const char *host, size_t len, char *out, size_t cap,
						   size_t *out_len);

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

/*
 * Labels: a link's owner, title and tags.  Free text, but shown in lists
 * and dashboards, so without control characters, and bounded.  Lengths are
 * in characters of UTF-8 text.
 */
#define OWNER_MAX_LENGTH	200
#define TITLE_MAX_LENGTH	500
#define TAG_MAX_LENGTH		64
#define MAX_TAGS			32

typedef enum label_status
{
	LABEL_OK = 0,
	LABEL_EMPTY,
	LABEL_TOO_LONG,
	LABEL_CONTROL_CHAR			/* U+0000-U+001F, U+007F or U+0080-U+009F */
} label_status;

/*
 * validate_label checks a label of len bytes of well-formed UTF-8 against
 * max_chars; *bad_offset is the byte offset of a control character
 */
extern label_status validate_label(const char *label, size_t len, size_t max_chars,
								   size_t *bad_offset);

/* code_chars_ok tells whether every byte is one a code or alias may hold */
extern int	code_chars_ok(const char *s, size_t len);

#endif							/* SHORTURL_VALIDATE_H */
