/*-------------------------------------------------------------------------
 *
 * chars.h
 *	  ASCII character classes that the pure validators share (validate.c,
 *	  idn.c).  No PostgreSQL headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_CHARS_H
#define SHORTURL_CHARS_H

#include <stddef.h>

/* is_alpha tells whether c is an ASCII letter */
static inline int
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* is_digit tells whether c is an ASCII digit */
static inline int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* is_hex tells whether c is an ASCII hex digit */
static inline int
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* to_lower lowercases an ASCII letter and leaves any other byte alone */
static inline unsigned char
to_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char) (c - 'A' + 'a') : c;
}

/*
 * is_host_char tells whether an ASCII byte may appear in a registered name:
 * RFC 3986 reg-name characters, except '%', because browsers decode percent
 * escapes in a host and so would go to a name we never saw.
 */
static inline int
is_host_char(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return 1;
	switch (c)
	{
		case '-': case '.': case '_': case '~':
		case '!': case '$': case '&': case '\'': case '(': case ')':
		case '*': case '+': case ',': case ';': case '=':
			return 1;
		default:
			return 0;
	}
}

/* is_ldh_char tells whether an ASCII byte may appear in an IDN (STD3 rules) */
static inline int
is_ldh_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.';
}

/* prefix_ci tells whether s starts with the lowercase ASCII prefix p */
static inline int
prefix_ci(const char *s, size_t len, const char *p, size_t plen)
{
	if (len < plen)
		return 0;
	for (size_t i = 0; i < plen; i++)
		if (to_lower((unsigned char) s[i]) != (unsigned char) p[i])
			return 0;
	return 1;
}

#endif							/* SHORTURL_CHARS_H */
