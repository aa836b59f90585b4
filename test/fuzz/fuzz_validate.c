/*-------------------------------------------------------------------------
 *
 * fuzz_validate.c
 *	  libFuzzer target for the URL and alias validators (src/validate.c).
 *
 * Whatever the bytes, validation must not crash or read out of bounds, and
 * an accepted URL must really have what the rules promise: an http or https
 * scheme, a non-empty host, a length within the limit both as given and as
 * stored, well-formed UTF-8 with no control, space, invisible, bidi,
 * private-use or unassigned character, no userinfo unless allowed, no '%'
 * or backslash in the host, and a host whose canonical ASCII form is only
 * [a-z0-9.-] (or the lowercased host, for an ASCII name without "xn--"
 * labels or an IP literal).  Stored with that host, it is accepted again
 * with the same host.  A rejected URL must point inside the input, at the
 * start of a UTF-8 sequence after well-formed text, at a character of the
 * kind the status names.
 * The first input byte picks the rules, so they are fuzzed too: its high
 * bit allows userinfo, its low seven bits are the length limit (0 = the
 * default 2048).  Any violation aborts, which libFuzzer reports as a finding.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>

#include "validate.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* the default of shorturl.max_url_length */
#define DEFAULT_MAX_LEN 2048

/* the first byte's bit that allows userinfo, and its bits for max_len */
#define RULES_USERINFO_BIT 0x80
#define RULES_MAX_LEN_MASK 0x7F

/* room for a stored URL: fuzz inputs are at most 256 bytes (run.sh) */
#define STORED_MAX 4096

/* lower lowercases an ASCII letter */
static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* starts_ci tells whether s starts with the lowercase prefix p */
static int
starts_ci(const uint8_t *s, size_t len, const char *p)
{
	size_t		n = strlen(p);

	if (len < n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != p[i])
			return 0;
	return 1;
}

/*
 * decode reads one well-formed UTF-8 character at s (len > 0 bytes) into
 * *cp and returns its length, or 0; written apart from validate.c's, so the
 * two check each other.
 */
static size_t
decode(const uint8_t *s, size_t len, int32_t *cp)
{
	size_t		n;
	int32_t		v;

	if (s[0] < 0x80)
	{
		*cp = s[0];
		return 1;
	}
	n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
	if (n == 0 || n > len || s[0] > 0xF4)
		return 0;
	v = s[0] & (0x7F >> n);
	for (size_t i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if ((n == 2 && v < 0x80) || (n == 3 && v < 0x800) ||
		(n == 4 && v < 0x10000) || v > 0x10FFFF ||
		(v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

/* well_formed tells whether s[0..len) is well-formed UTF-8 */
static int
well_formed(const uint8_t *s, size_t len)
{
	size_t		i = 0;
	int32_t		cp;

	while (i < len)
	{
		size_t		n = decode(s + i, len - i, &cp);

		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* deceptive tells whether a non-ASCII code point must never be accepted */
static int
deceptive(int32_t cp)
{
	int8_t		t = u_charType(cp);

	return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR ||
		t == U_SPACE_SEPARATOR || t == U_LINE_SEPARATOR ||
		t == U_PARAGRAPH_SEPARATOR || t == U_UNASSIGNED ||
		t == U_PRIVATE_USE_CHAR || t == U_SURROGATE ||
		u_hasBinaryProperty(cp, UCHAR_DEFAULT_IGNORABLE_CODE_POINT) ||
		u_hasBinaryProperty(cp, UCHAR_BIDI_CONTROL) ||
		u_hasBinaryProperty(cp, UCHAR_WHITE_SPACE) ||
		cp == 0x2800;
}

/* check_rejected checks what a refusal of data[0..size) points at */
static void
check_rejected(const uint8_t *data, size_t size, const url_rules *rules,
			   url_status st, size_t bad)
{
	int32_t		cp = -1;

	CHECK(size == 0 ? bad == 0 : bad < size);
	/* the length is checked before anything is read */
	if (st == URL_TOO_LONG)
		CHECK(bad == 0);
	else
	{
		/* the offset follows well-formed text and starts a character */
		CHECK(well_formed(data, bad));
		if (st == URL_BAD_UTF8)
		{
			CHECK(decode(data + bad, size - bad, &cp) == 0);
			return;
		}
		if (bad < size)
			CHECK(decode(data + bad, size - bad, &cp) != 0);
	}

	switch (st)
	{
		case URL_TOO_LONG:
			/* too long as given, or as stored with a non-ASCII host */
			if (size <= rules->max_len)
			{
				int			non_ascii = 0;

				for (size_t i = 0; i < size; i++)
					if (data[i] >= 0x80)
						non_ascii = 1;
				CHECK(non_ascii);
			}
			break;
		case URL_CONTROL_CHAR:
			CHECK(data[bad] < 0x20 || data[bad] == 0x7f);
			break;
		case URL_SPACE:
			CHECK(data[bad] == ' ');
			break;
		case URL_INVISIBLE_CHAR:
		case URL_UNASSIGNED_CHAR:
			CHECK(cp >= 0x80 && deceptive(cp));
			break;
		case URL_USERINFO:
			CHECK(!rules->allow_userinfo);
			CHECK(memchr(data + bad, '@', size - bad) != NULL);
			break;
		default:
			break;
	}
}

/* check_accepted checks that an accepted URL has what the rules promise */
static void
check_accepted(const uint8_t *data, size_t size, const url_rules *rules,
			   const url_parts *parts)
{
	size_t		start = starts_ci(data, size, "http://") ? 7 :
		starts_ci(data, size, "https://") ? 8 : 0;
	size_t		end = start;
	size_t		host = start;
	size_t		i = 0;
	int			ascii = 1;
	int			ace = 0;
	char		ascii_host[STORED_MAX];
	size_t		alen = 0;

	CHECK(size <= rules->max_len);
	CHECK(start != 0);

	/* no ASCII control or space; only well-formed, visible, assigned text */
	while (i < size)
	{
		int32_t		cp;
		size_t		n = decode(data + i, size - i, &cp);

		CHECK(n != 0);
		CHECK(cp > 0x20 && cp != 0x7f);
		if (cp >= 0x80)
			CHECK(!deceptive(cp));
		i += n;
	}

	while (end < size && data[end] != '/' && data[end] != '?' && data[end] != '#')
		end++;
	for (i = start; i < end; i++)
	{
		CHECK(data[i] != '\\');
		if (data[i] == '@')
			host = i + 1;
	}
	/* no userinfo unless allowed; the parts say where everything is */
	CHECK(host == start || rules->allow_userinfo);
	CHECK(parts->authority_off == start && parts->authority_len == end - start);
	CHECK(parts->userinfo_len == host - start);
	CHECK(parts->host_off == host && parts->host_len > 0);
	CHECK(host + parts->host_len <= end);
	CHECK(host + parts->host_len == end || data[host + parts->host_len] == ':');
	/* a host follows the userinfo, and is not just a port */
	CHECK(data[host] != ':');

	for (i = host; i < host + parts->host_len; i++)
	{
		CHECK(data[i] != '%');
		if (data[i] >= 0x80)
			ascii = 0;
		if ((i == host || data[i - 1] == '.') &&
			starts_ci(data + i, host + parts->host_len - i, "xn--"))
			ace = 1;
	}
	CHECK(parts->host_ascii == ascii);
	if (parts->host_ip_literal)
		CHECK(data[host] == '[' && data[host + parts->host_len - 1] == ']');

	/* the canonical ASCII host */
	CHECK(url_ascii_host((const char *) data + host, parts->host_len,
						 ascii_host, sizeof(ascii_host), &alen) == 0);
	CHECK(alen == parts->ascii_host_len && alen > 0);
	if (!ascii || (ace && !parts->host_ip_literal))
	{
		for (i = 0; i < alen; i++)
		{
			char		c = ascii_host[i];

			CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				  c == '-' || c == '.');
		}
	}
	else
	{
		CHECK(alen == parts->host_len);
		for (i = 0; i < alen; i++)
			CHECK(ascii_host[i] == lower(data[host + i]));
	}

	/* stored with that host, it fits and is accepted again, unchanged */
	{
		char		again[STORED_MAX];
		size_t		tail = size - host - parts->host_len;
		size_t		len2 = ascii ? size : host + alen + tail;
		url_rules	rules2 = *rules;
		url_parts	parts2;
		size_t		bad2 = 0;
		char		host2[STORED_MAX];
		size_t		alen2 = 0;

		CHECK(len2 <= rules->max_len && len2 <= sizeof(again));
		memcpy(again, data, host);
		memcpy(again + host, ascii ? (const char *) data + host : ascii_host,
			   ascii ? parts->host_len : alen);
		memcpy(again + host + (ascii ? parts->host_len : alen),
			   data + host + parts->host_len, tail);
		CHECK(validate_url(again, len2, &rules2, &parts2, &bad2) == URL_OK);
		CHECK(parts2.host_ascii && parts2.host_off == host);
		CHECK(url_ascii_host(again + host, parts2.host_len, host2,
							 sizeof(host2), &alen2) == 0);
		CHECK(alen2 == alen && memcmp(host2, ascii_host, alen) == 0);
	}
}

/* check_url validates data[0..size) and checks the outcome */
static void
check_url(const uint8_t *data, size_t size, const url_rules *rules)
{
	size_t		bad = (size_t) -1;
	url_parts	parts;
	url_status	st = validate_url((const char *) data, size, rules, &parts,
								  &bad);

	CHECK(st != URL_ICU_ERROR);
	if (st == URL_OK)
		check_accepted(data, size, rules, &parts);
	else
		check_rejected(data, size, rules, st, bad);
}

/* check_alias checks the alias validator against code_chars_ok */
static void
check_alias(const uint8_t *data, size_t size)
{
	size_t		bad = (size_t) -1;
	alias_status st = validate_alias((const char *) data, size, &bad);
	int			chars_ok = code_chars_ok((const char *) data, size);

	if (st == ALIAS_OK)
	{
		CHECK(size >= 1 && size <= ALIAS_MAX_LENGTH);
		CHECK(chars_ok);
	}
	else if (st == ALIAS_BAD_CHAR)
	{
		CHECK(bad < size && !chars_ok);
	}
	else if (st == ALIAS_TOO_LONG)
		CHECK(size > ALIAS_MAX_LENGTH && chars_ok);
	else
		CHECK(size == 0);
}

/*
 * check_label checks the label validator against a plain reading of its
 * rules: a control character is reported at its first byte, the length in
 * characters counts the bytes that start one
 */
static void
check_label(const uint8_t *data, size_t size)
{
	size_t		bad = (size_t) -1;
	label_status st = validate_label((const char *) data, size, TAG_MAX_LENGTH, &bad);
	size_t		chars = 0;
	size_t		first_control = size;

	for (size_t i = 0; i < size; i++)
	{
		if (first_control == size &&
			(data[i] < 0x20 || data[i] == 0x7F ||
			 (data[i] == 0xC2 && i + 1 < size && data[i + 1] >= 0x80 && data[i + 1] <= 0x9F)))
			first_control = i;
		chars += (data[i] & 0xC0) != 0x80;
	}
	if (size == 0)
		CHECK(st == LABEL_EMPTY);
	else if (first_control < size)
		CHECK(st == LABEL_CONTROL_CHAR && bad == first_control);
	else if (chars > TAG_MAX_LENGTH)
		CHECK(st == LABEL_TOO_LONG);
	else
		CHECK(st == LABEL_OK);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput: the first byte picks the rules, the rest is input */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	url_rules	rules;

	if (size == 0)
	{
		check_alias(data, 0);
		check_label(data, 0);
		return 0;
	}
	rules.max_len = (data[0] & RULES_MAX_LEN_MASK) == 0 ? DEFAULT_MAX_LEN :
		(size_t) (data[0] & RULES_MAX_LEN_MASK);
	rules.allow_userinfo = (data[0] & RULES_USERINFO_BIT) != 0;
	check_url(data + 1, size - 1, &rules);
	check_alias(data + 1, size - 1);
	check_label(data + 1, size - 1);
	return 0;
}
