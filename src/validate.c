/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Pure validation of target URLs and aliases; see validate.h.
 *
 * A URL is accepted when, in this order of checks:
 *	1. it is at most max_len bytes long;
 *	2. it holds no ASCII control character and no space anywhere (a
 *	   redirect target with those is either an attack on a log or header
 *	   parser or a copy-and-paste accident; percent-encode them);
 *	3. it starts with "http://" or "https://", in any case;
 *	4. its authority (up to the first '/', '?' or '#') names a host: after
 *	   an optional "userinfo@", a non-empty registered name of RFC 3986
 *	   characters (letters, digits, "-._~", "!$&'()*+,;=", '%' escapes and
 *	   any non-ASCII byte, for internationalised names), or an IP literal in
 *	   brackets of hex digits, ':' and '.';
 *	5. an optional ":port" is empty or a number from 1 to 65535.
 * The rest of the URL (path, query, fragment) is stored as given.  A
 * backslash is refused in the authority, because browsers read it as '/',
 * which lets "http://evil.example\@good.example" pass for good.example.
 *
 *-------------------------------------------------------------------------
 */
#include "validate.h"

#define MAX_PORT 65535

static int
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* RFC 3986 reg-name characters, plus non-ASCII bytes for IDNs */
static int
is_host_char(unsigned char c)
{
	if (is_alpha(c) || is_digit(c) || c >= 0x80)
		return 1;
	switch (c)
	{
		case '-': case '.': case '_': case '~': case '%':
		case '!': case '$': case '&': case '\'': case '(': case ')':
		case '*': case '+': case ',': case ';': case '=':
			return 1;
		default:
			return 0;
	}
}

/* prefix_ci tells whether s starts with the lowercase ASCII prefix p */
static int
prefix_ci(const char *s, size_t len, const char *p, size_t plen)
{
	if (len < plen)
		return 0;
	for (size_t i = 0; i < plen; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char) (c - 'A' + 'a');
		if (c != (unsigned char) p[i])
			return 0;
	}
	return 1;
}

url_status
validate_url(const char *url, size_t len, size_t max_len, size_t *bad_offset)
{
	const unsigned char *u = (const unsigned char *) url;
	size_t		start;
	size_t		end;
	size_t		host;
	size_t		host_end;

	*bad_offset = 0;
	if (len > max_len)
		return URL_TOO_LONG;

	for (size_t i = 0; i < len; i++)
	{
		if (u[i] < 0x20 || u[i] == 0x7f)
		{
			*bad_offset = i;
			return URL_CONTROL_CHAR;
		}
		if (u[i] == ' ')
		{
			*bad_offset = i;
			return URL_SPACE;
		}
	}

	if (prefix_ci(url, len, "http://", 7))
		start = 7;
	else if (prefix_ci(url, len, "https://", 8))
		start = 8;
	else
		return URL_BAD_SCHEME;

	/* the authority ends at the first '/', '?' or '#' */
	end = start;
	while (end < len && u[end] != '/' && u[end] != '?' && u[end] != '#')
		end++;

	/* skip userinfo: everything up to the last '@' of the authority */
	host = start;
	for (size_t i = start; i < end; i++)
		if (u[i] == '@')
			host = i + 1;
	for (size_t i = start; i < host; i++)
	{
		if (u[i] == '\\')
		{
			*bad_offset = i;
			return URL_BAD_HOST;
		}
	}

	if (host < end && u[host] == '[')
	{
		/* IP literal: "[" hex, ':' and '.' "]" */
		host_end = host + 1;
		while (host_end < end && u[host_end] != ']')
		{
			if (!is_hex(u[host_end]) && u[host_end] != ':' && u[host_end] != '.')
			{
				*bad_offset = host_end;
				return URL_BAD_HOST;
			}
			host_end++;
		}
		if (host_end >= end)
		{
			*bad_offset = host;
			return URL_BAD_HOST;	/* no closing ']' */
		}
		if (host_end == host + 1)
			return URL_NO_HOST;
		host_end++;				/* past ']' */
	}
	else
	{
		host_end = host;
		while (host_end < end && u[host_end] != ':')
		{
			if (!is_host_char(u[host_end]))
			{
				*bad_offset = host_end;
				return URL_BAD_HOST;
			}
			host_end++;
		}
		if (host_end == host)
			return URL_NO_HOST;
	}

	/* what may follow the host: nothing, or ":" and an optional port */
	if (host_end < end)
	{
		unsigned long port = 0;
		size_t		p = host_end + 1;

		if (u[host_end] != ':')
		{
			*bad_offset = host_end;
			return URL_BAD_HOST;
		}
		if (p < end)
		{
			for (; p < end; p++)
			{
				if (!is_digit(u[p]) || port > MAX_PORT)
				{
					*bad_offset = host_end + 1;
					return URL_BAD_PORT;
				}
				port = port * 10 + (unsigned long) (u[p] - '0');
			}
			if (port < 1 || port > MAX_PORT)
			{
				*bad_offset = host_end + 1;
				return URL_BAD_PORT;
			}
		}
	}
	return URL_OK;
}

int
code_chars_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

alias_status
validate_alias(const char *alias, size_t len, size_t *bad_offset)
{
	*bad_offset = 0;
	if (len == 0)
		return ALIAS_EMPTY;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) alias[i];

		if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-')
		{
			*bad_offset = i;
			return ALIAS_BAD_CHAR;
		}
	}
	if (len > ALIAS_MAX_LENGTH)
		return ALIAS_TOO_LONG;
	return ALIAS_OK;
}
