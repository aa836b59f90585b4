/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Pure validation of target URLs and aliases; see validate.h.
 *
 * A short link sends people wherever its target says, so a target must not
 * read as something other than where it leads.  A URL is accepted when, in
 * this order of checks:
 *	1. it is at most max_len bytes long;
 *	2. every character, in order, is well-formed UTF-8 and none is:
 *	   - an ASCII control character or space (a redirect target with those
 *		 is either an attack on a log or header parser or a copy-and-paste
 *		 accident; percent-encode them);
 *	   - an invisible one: a C1 control, a format character (zero-width,
 *		 bidirectional marks, embeddings, overrides and isolates, the BOM),
 *		 a non-ASCII space or line or paragraph separator, a default-
 *		 ignorable code point (Hangul fillers, variation selectors) or the
 *		 blank Braille pattern;
 *	   - a private-use, unassigned or noncharacter code point, which has no
 *		 agreed appearance;
 *	3. it starts with "http://" or "https://", in any case;
 *	4. its authority (up to the first '/', '?' or '#') holds no backslash,
 *	   because browsers read it as '/', which lets
 *	   "http://evil.example\@good.example" pass for good.example;
 *	5. it has no "userinfo@" before the host unless the rules allow it:
 *	   "https://good.example:443@evil.example/" leads to evil.example;
 *	6. its host is non-empty and is either an IP literal in brackets of hex
 *	   digits, ':' and '.', or a registered name of RFC 3986 characters
 *	   (letters, digits, "-._~!$&'()*+,;=") and non-ASCII characters, but no
 *	   '%' escape (browsers decode escapes in a host, so "%65vil.example" is
 *	   evil.example); a name with a non-ASCII character or an "xn--" label is
 *	   an internationalised one, which may hold only letters, digits, '-' and
 *	   '.' in ASCII and no character that UTS #46 disallows (FULLWIDTH
 *	   SOLIDUS U+FF0F and FULLWIDTH COMMERCIAL AT U+FF20 stand for '/' and
 *	   '@');
 *	7. an optional ":port" is empty or a number from 1 to 65535;
 *	8. an internationalised name passes UTS #46 processing (nontransitional,
 *	   STD3 rules, CheckHyphens, CheckBidi, CheckJoiners, DNS lengths), and
 *	   an "xn--" label given in ASCII is the canonical A-label of its
 *	   U-label;
 *	9. each non-ASCII label of its Unicode form uses only characters of the
 *	   UTS #39 identifier set (Recommended and Inclusion), meets the Highly
 *	   Restrictive level (one script, or Latin with Han and Japanese or
 *	   Korean scripts, one digit system), has no hidden overlay, and, unless
 *	   all of its non-ASCII characters are Latin, has no all-ASCII
 *	   skeleton: Cyrillic U+0430 U+0440 U+0440 U+04CF U+0435 looks exactly
 *	   like "apple";
 *	10. stored with a non-ASCII host replaced by its A-label form, it is
 *	   still at most max_len bytes long.
 * Everything else is stored as given.  An ASCII URL reaches ICU only for
 * an "xn--" label.
 *
 * Restriction level: Highly Restrictive rather than Moderately, because it
 * is the level Chrome requires before it shows a name in Unicode, and
 * because Moderately would let Latin mix in one label with Armenian
 * (U+0585, U+057D, U+0578 look like o, u, n), Georgian and others, which
 * legitimate names hardly ever need.
 *
 * The Unicode rules (2, 6 for internationalised names, 8 to 10) are in
 * idn.c; this file applies the others in order and calls it.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "chars.h"
#include "idn.h"
#include "validate.h"

#define MAX_PORT 65535

/*
 * validate_url applies the rules at the top of this file in their order;
 * see validate.h for the contract.
 */
url_status
validate_url(const char *url, size_t len, const url_rules *rules,
			 url_parts *parts, size_t *bad_offset)
{
	const unsigned char *u = (const unsigned char *) url;
	size_t		start;
	size_t		end;
	size_t		host;
	size_t		host_end;
	int			idn = 0;
	url_status	st;

	*bad_offset = 0;
	memset(parts, 0, sizeof(*parts));
	if (len > rules->max_len)
		return URL_TOO_LONG;

	st = idn_check_chars(u, len, bad_offset);
	if (st != URL_OK)
		return st;

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
	parts->authority_off = start;
	parts->authority_len = end - start;

	for (size_t i = start; i < end; i++)
	{
		if (u[i] == '\\')
		{
			*bad_offset = i;
			return URL_BAD_HOST;
		}
	}

	/* userinfo: everything up to the last '@' of the authority */
	host = start;
	for (size_t i = start; i < end; i++)
		if (u[i] == '@')
			host = i + 1;
	parts->userinfo_len = host - start;
	if (host > start && !rules->allow_userinfo)
	{
		*bad_offset = start;
		return URL_USERINFO;
	}
	parts->host_off = host;

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
		/* an IPv6 address, as inet_pton reads one (RFC 4291 text forms) */
		{
			char		addr[INET6_ADDRSTRLEN + 1];
			unsigned char bin[16];
			size_t		n = host_end - host - 1;

			if (n >= sizeof(addr))
			{
				*bad_offset = host;
				return URL_BAD_HOST;
			}
			memcpy(addr, u + host + 1, n);
			addr[n] = '\0';
			if (inet_pton(AF_INET6, addr, bin) != 1)
			{
				*bad_offset = host;
				return URL_BAD_HOST;
			}
		}
		host_end++;				/* past ']' */
		parts->host_ip_literal = 1;
		parts->host_ascii = 1;
	}
	else
	{
		host_end = host;
		while (host_end < end && u[host_end] != ':')
			host_end++;
		if (host_end == host)
			return URL_NO_HOST;
		parts->host_ascii = 1;
		for (size_t i = host; i < host_end; i++)
			if (u[i] >= 0x80)
				parts->host_ascii = 0;
		idn = !parts->host_ascii || idn_has_ace_label(u + host, host_end - host);
		if (idn && !idn_open())
			return URL_ICU_ERROR;
		st = idn_check_name_chars(u, host, host_end, idn, bad_offset);
		if (st != URL_OK)
			return st;
	}
	parts->host_len = host_end - host;
	parts->ascii_host_len = parts->host_len;

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

	if (idn)
		return idn_check(u, len, rules, parts, bad_offset);
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

/* validate_alias: see validate.h */
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

/* validate_label: see validate.h */
label_status
validate_label(const char *label, size_t len, size_t max_chars, size_t *bad_offset)
{
	const unsigned char *u = (const unsigned char *) label;
	size_t		chars = 0;

	*bad_offset = 0;
	if (len == 0)
		return LABEL_EMPTY;
	for (size_t i = 0; i < len; i++)
	{
		/* C0 and DEL; C1 is 0xC2 followed by 0x80..0x9F */
		if (u[i] < 0x20 || u[i] == 0x7F ||
			(u[i] == 0xC2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F))
		{
			*bad_offset = i;
			return LABEL_CONTROL_CHAR;
		}
		if ((u[i] & 0xC0) != 0x80)
			chars++;
	}
	if (chars > max_chars)
		return LABEL_TOO_LONG;
	return LABEL_OK;
}
