/*-------------------------------------------------------------------------
 *
 * test_validate.c
 *	  Unit tests of the pure URL validator (src/validate.c): every status
 *	  with the offset it points at, every class of deceptive character and
 *	  host, legitimate internationalised names and their A-label form, and
 *	  the boundaries of length, port and host.
 *
 * Non-ASCII test strings are written as \x escapes of their UTF-8 bytes,
 * with the characters named in a comment.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <string.h>

#include "validate.h"
#include "unit.h"

/* the default of shorturl.max_url_length */
#define DEFAULT_MAX_LEN 2048

static const url_rules default_rules = {DEFAULT_MAX_LEN, 0};
static const url_rules userinfo_rules = {DEFAULT_MAX_LEN, 1};

/*
 * rejects_with tells whether url is refused with status want, pointing at
 * byte offset off, under the given rules; it prints what it got otherwise.
 */
static int
rejects_with(const char *url, const url_rules *rules, url_status want,
			 size_t off)
{
	url_parts	parts;
	size_t		bad = (size_t) -1;
	url_status	st = validate_url(url, strlen(url), rules, &parts, &bad);

	if (st != want || bad != off)
		fprintf(stderr, "  \"%s\": status %d at %zu, want %d at %zu\n",
				url, (int) st, bad, (int) want, off);
	return st == want && bad == off;
}

/* rejects is rejects_with under the default rules */
static int
rejects(const char *url, url_status want, size_t off)
{
	return rejects_with(url, &default_rules, want, off);
}

/*
 * stored builds what url_check stores for an accepted url into out: the URL
 * byte for byte, but for a non-ASCII host, which takes its A-label form.
 * It returns 0 and prints the status if url is refused.
 */
static int
stored(const char *url, const url_rules *rules, char *out, size_t cap)
{
	size_t		len = strlen(url);
	url_parts	parts;
	size_t		bad = 0;
	url_status	st = validate_url(url, len, rules, &parts, &bad);
	size_t		host_len = 0;
	size_t		tail;

	if (st != URL_OK)
	{
		fprintf(stderr, "  \"%s\": status %d at %zu, want URL_OK\n",
				url, (int) st, bad);
		return 0;
	}
	if (parts.host_ascii)
	{
		if (len >= cap)
			return 0;
		memcpy(out, url, len);
		out[len] = '\0';
		return 1;
	}
	tail = len - parts.host_off - parts.host_len;
	if (parts.host_off + parts.ascii_host_len + tail >= cap)
		return 0;
	memcpy(out, url, parts.host_off);
	if (url_ascii_host(url + parts.host_off, parts.host_len,
					   out + parts.host_off, cap - parts.host_off,
					   &host_len) != 0 || host_len != parts.ascii_host_len)
		return 0;
	memcpy(out + parts.host_off + host_len,
		   url + parts.host_off + parts.host_len, tail);
	out[parts.host_off + host_len + tail] = '\0';
	return 1;
}

/* accepts_as tells whether url is accepted and stored exactly as want */
static int
accepts_as(const char *url, const char *want)
{
	char		out[DEFAULT_MAX_LEN];

	if (!stored(url, &default_rules, out, sizeof(out)))
		return 0;
	if (strcmp(out, want) != 0)
		fprintf(stderr, "  \"%s\": stored as \"%s\", want \"%s\"\n",
				url, out, want);
	return strcmp(out, want) == 0;
}

/* accepts tells whether url is accepted and stored byte for byte */
static int
accepts(const char *url)
{
	return accepts_as(url, url);
}

/* ascii_host_is tells whether the accepted url's canonical host is want */
static int
ascii_host_is(const char *url, const char *want)
{
	url_parts	parts;
	size_t		bad = 0;
	char		out[DEFAULT_MAX_LEN];
	size_t		n = 0;

	if (validate_url(url, strlen(url), &default_rules, &parts, &bad) != URL_OK)
		return 0;
	if (url_ascii_host(url + parts.host_off, parts.host_len, out,
					   sizeof(out), &n) != 0)
		return 0;
	return n == strlen(want) && memcmp(out, want, n) == 0;
}

/* utf8_encode writes the UTF-8 form of code point cp to out, returns length */
static size_t
utf8_encode(int32_t cp, char *out)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/*
 * refuses_everywhere tells whether code point cp is refused with status
 * want, at its own offset, in the path, in the query and in the host.
 */
static int
refuses_everywhere(int32_t cp, url_status want)
{
	static const char *const before[] = {
		"https://example.com/a", "https://example.com/?q=", "https://ex"
	};
	static const char *const after[] = {"b", "", "ample.com/"};
	int			ok = 1;

	for (int i = 0; i < 3; i++)
	{
		char		url[64];
		size_t		n = strlen(before[i]);

		memcpy(url, before[i], n);
		n += utf8_encode(cp, url + n);
		strcpy(url + n, after[i]);
		if (!rejects(url, want, strlen(before[i])))
		{
			fprintf(stderr, "  (code point U+%04X)\n", (unsigned) cp);
			ok = 0;
		}
	}
	return ok;
}

/* a deterministic generator, so the sweep below reproduces */
static uint64_t
next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

int
main(void)
{
	/* invisible, space-like and bidirectional code points */
	static const int32_t invisible[] = {
		0x0080, 0x0085, 0x009B, 0x009F,	/* C1 controls */
		0x00A0, 0x1680, 0x2000, 0x2007, 0x200A, 0x202F, 0x205F, 0x3000,	/* Zs */
		0x2028, 0x2029,			/* line and paragraph separators */
		0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E,	/* zero-width */
		0x200E, 0x200F, 0x061C, /* LRM, RLM, ALM */
		0x202A, 0x202B, 0x202C, 0x202D, 0x202E,	/* embeddings, overrides */
		0x2066, 0x2067, 0x2068, 0x2069,	/* isolates */
		0x115F, 0x1160, 0x3164, 0xFFA0,	/* Hangul fillers */
		0xFE00, 0xFE0F, 0xE0100, 0x034F,	/* variation selectors, CGJ */
		0xE0001, 0xE0041,		/* tags */
		0x2800					/* BRAILLE PATTERN BLANK */
	};
	/* private-use, unassigned and noncharacter code points (Unicode 15) */
	static const int32_t unassigned[] = {
		0xE000, 0xF8FF, 0xF0000, 0x10FFFD,	/* private use */
		0x0378, 0x0530, 0x1FAFF, 0x2FFFD,	/* unassigned */
		0xFDD0, 0xFFFE, 0xFFFF, 0x1FFFF, 0x10FFFF	/* noncharacters */
	};
	url_parts	parts;
	size_t		bad = 0;
	char		out[DEFAULT_MAX_LEN];
	size_t		n = 0;
	uint64_t	rng = 0x9E3779B97F4A7C15u;

	/* length: exactly max_len is accepted, one byte more is not */
	{
		const char *url = "https://example.com/abc";	/* 23 bytes */
		url_rules	r23 = {23, 0};
		url_rules	r22 = {22, 0};

		EXPECT(validate_url(url, 23, &r23, &parts, &bad) == URL_OK);
		EXPECT(validate_url(url, 23, &r22, &parts, &bad) == URL_TOO_LONG && bad == 0);
		EXPECT(rejects_with(url, &r22, URL_TOO_LONG, 0));
	}

	/* ASCII control characters and spaces, wherever they are */
	EXPECT(rejects("http://example.com/\x01", URL_CONTROL_CHAR, 19));
	EXPECT(rejects("http://exa\tmple.com/", URL_CONTROL_CHAR, 10));
	EXPECT(rejects("http://example.com/\x7f", URL_CONTROL_CHAR, 19));
	EXPECT(validate_url("http://a/\0b", 11, &default_rules, &parts, &bad) ==
		   URL_CONTROL_CHAR && bad == 9);
	EXPECT(rejects("http://example.com/a b", URL_SPACE, 20));
	EXPECT(rejects(" http://example.com/", URL_SPACE, 0));
	/* the first offending character wins, whatever its kind */
	EXPECT(rejects("http://e\xc2\xa0x.com/ \x01", URL_INVISIBLE_CHAR, 8));	/* U+00A0 */
	EXPECT(rejects("http://ex.com/ \xc2\xa0", URL_SPACE, 14));

	/* the scheme: http or https in any case, and nothing else */
	EXPECT(accepts("HtTpS://example.com"));
	EXPECT(rejects("ftp://example.com/", URL_BAD_SCHEME, 0));
	EXPECT(rejects("http:/example.com/", URL_BAD_SCHEME, 0));
	EXPECT(rejects("javascript:alert(1)//http://x", URL_BAD_SCHEME, 0));
	EXPECT(rejects("", URL_BAD_SCHEME, 0));
	EXPECT(rejects("\xef\xbd\x88ttp://example.com/", URL_BAD_SCHEME, 0));	/* full-width h */

	/* no host */
	EXPECT(rejects("http://", URL_NO_HOST, 0));
	EXPECT(rejects("http:///path", URL_NO_HOST, 0));
	EXPECT(rejects("http://:80/", URL_NO_HOST, 0));
	EXPECT(rejects("http://?q", URL_NO_HOST, 0));
	EXPECT(rejects("http://[]/", URL_NO_HOST, 0));
	EXPECT(rejects_with("http://user@/", &userinfo_rules, URL_NO_HOST, 0));

	/* characters a host may not hold */
	EXPECT(rejects("http://exa^mple.com/", URL_BAD_HOST, 10));
	EXPECT(rejects("http://exa\"mple.com/", URL_BAD_HOST, 10));
	EXPECT(rejects("http://evil.example\\@good.example/", URL_BAD_HOST, 19));
	EXPECT(rejects("http://evil.example\\good.example/", URL_BAD_HOST, 19));
	EXPECT(rejects("http://a:80\\@b/", URL_BAD_HOST, 11));
	EXPECT(accepts("http://a-b_c~d!$&'()*+,;=e.example/"));

	/* a percent escape in the host: "%65vil.com" would be evil.com */
	EXPECT(rejects("http://%65vil.com/", URL_BAD_HOST, 7));
	EXPECT(rejects("http://evil%2ecom/", URL_BAD_HOST, 11));
	EXPECT(accepts("http://example.com/%65vil?%20#%41"));
	EXPECT(accepts("http://example.com:8080/%2F"));

	/* IP literals */
	EXPECT(accepts("http://[::1]:8080/"));
	EXPECT(accepts("http://[2001:DB8::1.2.3.4]/"));
	EXPECT(rejects("http://[::1/", URL_BAD_HOST, 7));	/* no ']' */
	EXPECT(rejects("http://[::1", URL_BAD_HOST, 7));
	EXPECT(rejects("http://[", URL_BAD_HOST, 7));
	EXPECT(rejects("http://[::g]/", URL_BAD_HOST, 10));
	EXPECT(rejects("http://[fe80::1%25eth0]/", URL_BAD_HOST, 15));
	EXPECT(rejects("http://[::1]x/", URL_BAD_HOST, 12));
	/* the right characters, but no IPv6 address */
	EXPECT(rejects("https://[:]/", URL_BAD_HOST, 8));
	EXPECT(rejects("https://[....]/", URL_BAD_HOST, 8));
	EXPECT(rejects("https://[1.2.3.4]/", URL_BAD_HOST, 8));
	EXPECT(rejects("https://[1:2:3:4:5:6:7:8:9]/", URL_BAD_HOST, 8));
	EXPECT(rejects("https://[0000000000000000000000000000000000000000000000::1]/", URL_BAD_HOST, 8));
	EXPECT(accepts("https://[2001:db8:0:0:0:0:0:1]/"));
	EXPECT(accepts("https://[::ffff:192.0.2.1]/path"));
	EXPECT(rejects("http://[::\xc3\xbc]/", URL_BAD_HOST, 10));	/* u-umlaut */
	EXPECT(ascii_host_is("http://[FE80::1]:80/", "[fe80::1]"));

	/* ports: 1..65535, or empty */
	EXPECT(accepts("http://example.com:65535/"));
	EXPECT(accepts("http://example.com:1"));
	EXPECT(accepts("http://example.com:/"));
	EXPECT(accepts("http://example.com:00080/"));
	EXPECT(rejects("http://example.com:65536/", URL_BAD_PORT, 19));
	EXPECT(rejects("http://example.com:0/", URL_BAD_PORT, 19));
	EXPECT(rejects("http://example.com:000/", URL_BAD_PORT, 19));
	EXPECT(rejects("http://example.com:8a/", URL_BAD_PORT, 19));
	EXPECT(rejects("http://example.com:99999999999999999999999/", URL_BAD_PORT, 19));
	EXPECT(rejects("http://example.com:1:2/", URL_BAD_PORT, 19));
	EXPECT(rejects("http://example.com:\xef\xbc\x98\xef\xbc\x90/", URL_BAD_PORT, 19));	/* full-width 80 */

	/* userinfo disguises the host unless the caller allows it */
	EXPECT(rejects("https://good.com:443@evil.com/", URL_USERINFO, 8));
	EXPECT(validate_url("https://good.com:443@evil.com/", 30, &default_rules,
						&parts, &bad) == URL_USERINFO &&
		   parts.authority_off == 8 && parts.userinfo_len == 13);
	EXPECT(rejects("http://user@example.com/", URL_USERINFO, 7));
	EXPECT(rejects("http://user:pass@example.com/", URL_USERINFO, 7));
	EXPECT(rejects("http://@example.com/", URL_USERINFO, 7));
	EXPECT(rejects("http://a@b@example.com/", URL_USERINFO, 7));
	EXPECT(accepts("http://example.com/@evil.com"));
	EXPECT(accepts("http://example.com/?u=a@b#@c"));
	EXPECT(validate_url("https://good.com:443@evil.com/", 30, &userinfo_rules,
						&parts, &bad) == URL_OK &&
		   parts.userinfo_len == 13 && parts.host_off == 21 && parts.host_len == 8);
	EXPECT(validate_url("http://u%40:p@example.com/", 26, &userinfo_rules,
						&parts, &bad) == URL_OK && parts.host_off == 14);
	EXPECT(rejects_with("http://u@%65vil.com/", &userinfo_rules, URL_BAD_HOST, 9));

	/* ill-formed UTF-8 */
	EXPECT(rejects("http://example.com/\xc3", URL_BAD_UTF8, 19));	/* truncated */
	EXPECT(rejects("http://example.com/\xe2\x80", URL_BAD_UTF8, 19));
	EXPECT(rejects("http://example.com/\x80" "abc", URL_BAD_UTF8, 19));	/* stray */
	EXPECT(rejects("http://example.com/\xc0\xaf", URL_BAD_UTF8, 19));	/* overlong '/' */
	EXPECT(rejects("http://example.com/\xe0\x80\xaf", URL_BAD_UTF8, 19));
	EXPECT(rejects("http://example.com/\xed\xa0\x80", URL_BAD_UTF8, 19));	/* surrogate */
	EXPECT(rejects("http://example.com/\xf4\x90\x80\x80", URL_BAD_UTF8, 19));	/* > U+10FFFF */
	EXPECT(rejects("http://example.com/\xff", URL_BAD_UTF8, 19));
	EXPECT(rejects("http://ex\xc3\x28.com/", URL_BAD_UTF8, 9));
	EXPECT(rejects("\xc3\xa9http://example.com/", URL_BAD_SCHEME, 0));

	/* invisible, space-like and bidirectional characters, wherever they are */
	for (size_t i = 0; i < sizeof(invisible) / sizeof(invisible[0]); i++)
		EXPECT(refuses_everywhere(invisible[i], URL_INVISIBLE_CHAR));
	/* U+202E RIGHT-TO-LEFT OVERRIDE after the host */
	EXPECT(rejects("https://example.com/\xe2\x80\xaegpj.exe", URL_INVISIBLE_CHAR, 20));
	/* U+200B ZERO WIDTH SPACE inside a host */
	EXPECT(rejects("https://pay\xe2\x80\x8bpal.com/", URL_INVISIBLE_CHAR, 11));
	/* U+3164 HANGUL FILLER as a whole label */
	EXPECT(rejects("https://\xe3\x85\xa4.com/", URL_INVISIBLE_CHAR, 8));
	/* U+0085 NEXT LINE, U+2028 LINE SEPARATOR: line breaks for some parsers */
	EXPECT(rejects("https://example.com/a\xc2\x85" "b", URL_INVISIBLE_CHAR, 21));
	EXPECT(rejects("https://example.com/a\xe2\x80\xa8" "b", URL_INVISIBLE_CHAR, 21));

	/* characters with no agreed appearance */
	for (size_t i = 0; i < sizeof(unassigned) / sizeof(unassigned[0]); i++)
		EXPECT(refuses_everywhere(unassigned[i], URL_UNASSIGNED_CHAR));

	/* compatibility forms that UTS #46 maps to a character a host cannot hold */
	/* U+FF0F FULLWIDTH SOLIDUS */
	EXPECT(rejects("https://evil.com\xef\xbc\x8fgood.com/", URL_BAD_HOST, 16));
	/* U+FF20 FULLWIDTH COMMERCIAL AT */
	EXPECT(rejects("https://good.com\xef\xbc\xa0" "evil.com/", URL_BAD_HOST, 16));
	/* U+FF1A FULLWIDTH COLON, U+FF05 FULLWIDTH PERCENT, U+FF3C FULLWIDTH BACKSLASH */
	EXPECT(rejects("https://evil.com\xef\xbc\x9a" "443/", URL_BAD_HOST, 16));
	EXPECT(rejects("https://\xef\xbc\x85" "65vil.com/", URL_BAD_HOST, 8));
	EXPECT(rejects("https://evil\xef\xbc\xbcgood.com/", URL_BAD_HOST, 12));
	/* U+2488 DIGIT ONE FULL STOP maps to "1." */
	EXPECT(rejects("https://a\xe2\x92\x88" "com/", URL_BAD_HOST, 9));
	/* in the path they are only characters */
	EXPECT(accepts("https://example.com/\xef\xbc\x8f\xef\xbc\xa0"));
	/* ASCII an internationalised name may not hold (STD3 rules) */
	EXPECT(rejects("https://b\xc3\xbc" "cher_x.de/", URL_BAD_HOST, 15));
	EXPECT(rejects("https://xn--bcher-kva.de_x/", URL_BAD_HOST, 24));
	EXPECT(rejects("https://b\xc3\xbc" "cher.de!/", URL_BAD_HOST, 18));

	/* mixed-script lookalikes: a Cyrillic a (U+0430) among Latin letters */
	EXPECT(rejects("https://p\xd0\xb0ypal.com/", URL_MIXED_SCRIPT_HOST, 8));
	EXPECT(rejects("https://www.p\xd0\xb0ypal.com/login", URL_MIXED_SCRIPT_HOST, 12));
	/* the same name written as its A-label */
	EXPECT(rejects("https://xn--pypal-4ve.com/", URL_MIXED_SCRIPT_HOST, 8));
	/* Latin with Armenian o (U+0585): fine at Moderately, not at Highly */
	EXPECT(rejects("https://g\xd6\x85\xd6\x85gle.com/", URL_MIXED_SCRIPT_HOST, 8));
	/* ASCII 8 with Bengali four (U+09EA): two digit systems */
	EXPECT(rejects("https://8\xe0\xa7\xaa.com/", URL_MIXED_SCRIPT_HOST, 8));

	/* whole-script confusables: Cyrillic U+0430 U+0440 U+0440 U+04CF U+0435 look like "apple" */
	EXPECT(rejects("https://\xd0\xb0\xd1\x80\xd1\x80\xd3\x8f\xd0\xb5.com/",
				   URL_CONFUSABLE_HOST, 8));
	EXPECT(rejects("https://xn--80ak6aa92e.com/", URL_CONFUSABLE_HOST, 8));
	/* Cyrillic U+0441 U+043E as a top-level label imitating .co */
	EXPECT(rejects("https://example.\xd1\x81\xd0\xbe/", URL_CONFUSABLE_HOST, 16));
	/* U+2010 HYPHEN among ASCII letters looks like "a-b" */
	EXPECT(rejects("https://a\xe2\x80\x90" "b.com/", URL_CONFUSABLE_HOST, 8));
	/* i with U+0307 COMBINING DOT ABOVE hides the dot in the i's own */
	EXPECT(rejects("https://i\xcc\x87.com/", URL_CONFUSABLE_HOST, 8));

	/* characters outside the UTS #39 identifier set */
	/* Cherokee U+13DF U+13AA U+13A1 look like CAR */
	EXPECT(rejects("https://\xe1\x8f\x9f\xe1\x8e\xaa\xe1\x8e\xa1.com/",
				   URL_RARE_HOST_CHAR, 8));
	/* U+2044 FRACTION SLASH, valid IDNA, reads as '/' */
	EXPECT(rejects("https://evil.com\xe2\x81\x84good.com/", URL_RARE_HOST_CHAR, 13));
	/* U+2603 SNOWMAN */
	EXPECT(rejects("https://\xe2\x98\x83.net/", URL_RARE_HOST_CHAR, 8));
	EXPECT(rejects("https://xn--n3h.net/", URL_RARE_HOST_CHAR, 8));

	/* names UTS #46 refuses */
	EXPECT(rejects("https://ab--\xc3\xbc.de/", URL_BAD_IDN, 8));	/* "--" at 3-4 */
	EXPECT(rejects("https://-b\xc3\xbc" "cher.de/", URL_BAD_IDN, 8));
	EXPECT(rejects("https://www.b\xc3\xbc" "cher-.de/", URL_BAD_IDN, 12));
	EXPECT(rejects("https://\xcc\x81" "a.de/", URL_BAD_IDN, 8));	/* leading U+0301 */
	EXPECT(rejects("https://b\xc3\xbc" "cher..de/", URL_BAD_IDN, 16));	/* empty label */
	EXPECT(rejects("https://.b\xc3\xbc" "cher.de/", URL_BAD_IDN, 8));
	EXPECT(rejects("https://a\xd7\x90.com/", URL_BAD_IDN, 8));	/* Latin + Hebrew alef */
	EXPECT(rejects("https://\xd7\x90\xd7\x91.1a/", URL_BAD_IDN, 8));	/* Bidi across labels */
	EXPECT(rejects("https://example.xn--abc/", URL_BAD_IDN, 16));	/* bad punycode */
	EXPECT(rejects("https://xn--.de/", URL_BAD_IDN, 8));
	EXPECT(rejects("https://xn--a.de/", URL_BAD_IDN, 8));
	/* a label of 64 bytes in A-label form: 62 a's and a u-umlaut */
	EXPECT(rejects("https://www.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				   "\xc3\xbc.de/", URL_BAD_IDN, 12));
	/* ZWNJ is refused as invisible before IDNA's ContextJ rule could allow it */
	EXPECT(rejects("https://a\xe2\x80\x8c.de/", URL_INVISIBLE_CHAR, 9));

	/* legitimate internationalised names, stored with A-labels */
	/* пример.рф */
	EXPECT(accepts_as("https://\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84/",
					  "https://xn--e1afmkfd.xn--p1ai/"));
	/* bücher.de */
	EXPECT(accepts_as("https://b\xc3\xbc" "cher.de/", "https://xn--bcher-kva.de/"));
	/* 例え.jp */
	EXPECT(accepts_as("https://\xe4\xbe\x8b\xe3\x81\x88.jp/", "https://xn--r8jz45g.jp/"));
	/* münchen.de/straße: the path keeps its bytes */
	EXPECT(accepts_as("https://m\xc3\xbcnchen.de/stra\xc3\x9f" "e",
					  "https://xn--mnchen-3ya.de/stra\xc3\x9f" "e"));
	/* BÜCHER.de: the A-label form is lowercase */
	EXPECT(accepts_as("HTTPS://B\xc3\x9c" "CHER.de:8443/X?Y#Z",
					  "HTTPS://xn--bcher-kva.de:8443/X?Y#Z"));
	/* 例え。jp with U+3002 IDEOGRAPHIC FULL STOP */
	EXPECT(accepts_as("https://\xe4\xbe\x8b\xe3\x81\x88\xe3\x80\x82jp/", "https://xn--r8jz45g.jp/"));
	/* bücher.de. with the root label */
	EXPECT(accepts_as("https://b\xc3\xbc" "cher.de./", "https://xn--bcher-kva.de./"));
	/* full-width ｅｘａｍｐｌｅ.com is example.com */
	EXPECT(accepts_as("https://\xef\xbd\x85\xef\xbd\x98\xef\xbd\x81\xef\xbd\x8d\xef\xbd\x90"
					  "\xef\xbd\x8c\xef\xbd\x85.com/", "https://example.com/"));
	/* straße.de keeps its ß (nontransitional) */
	EXPECT(accepts_as("https://stra\xc3\x9f" "e.de/", "https://xn--strae-oqa.de/"));
	/* Greek, Hebrew, Turkish and Danish names */
	EXPECT(accepts_as("https://\xce\xb1\xce\xb2\xce\xb3.gr/", "https://xn--mxacd.gr/"));
	EXPECT(accepts_as("https://\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d.com/", "https://xn--9dbne9b.com/"));
	EXPECT(accepts_as("https://k\xc4\xb1rm\xc4\xb1z\xc4\xb1.com.tr/", "https://xn--krmz-lzacb.com.tr/"));
	EXPECT(accepts_as("https://\xc3\xa6" "ble.dk/", "https://xn--ble-xla.dk/"));
	/* Latin mixed with Han is Highly Restrictive */
	EXPECT(accepts_as("https://abc\xe4\xb8\xad\xe6\x96\x87.com/", "https://xn--abc-x68do18h.com/"));
	/* non-ASCII in the path only: stored byte for byte */
	EXPECT(accepts("https://example.com/caf\xc3\xa9?q=\xe4\xbe\x8b#\xd0\xb0"));
	/* an A-label given in ASCII is kept as given, case and all */
	EXPECT(accepts("https://XN--BCHER-KVA.de/"));
	EXPECT(ascii_host_is("https://XN--BCHER-KVA.de/", "xn--bcher-kva.de"));

	/* ASCII URLs keep every byte, and their parts point into them */
	EXPECT(accepts("HTTP://WWW.Example.COM:8080/Path?Q=1#F"));
	EXPECT(validate_url("HTTP://WWW.Example.COM:8080/P", 29, &default_rules,
						&parts, &bad) == URL_OK &&
		   parts.authority_off == 7 && parts.authority_len == 20 &&
		   parts.userinfo_len == 0 && parts.host_off == 7 &&
		   parts.host_len == 15 && parts.host_ascii == 1 &&
		   parts.host_ip_literal == 0 && parts.ascii_host_len == 15);
	EXPECT(ascii_host_is("HTTP://WWW.Example.COM:8080/P", "www.example.com"));
	EXPECT(validate_url("http://[::1]:8080/", 18, &default_rules, &parts, &bad) ==
		   URL_OK && parts.host_off == 7 && parts.host_len == 5 &&
		   parts.host_ip_literal == 1);
	EXPECT(validate_url("https://b\xc3\xbc" "cher.de:8443/", 24, &default_rules,
						&parts, &bad) == URL_OK && parts.host_off == 8 &&
		   parts.host_len == 10 && parts.host_ascii == 0 &&
		   parts.ascii_host_len == 16);

	/* the stored form counts against max_len: 19 bytes given, 25 stored */
	{
		const char *url = "https://b\xc3\xbc" "cher.de/";
		url_rules	r25 = {25, 0};
		url_rules	r24 = {24, 0};

		EXPECT(strlen(url) == 19);
		EXPECT(validate_url(url, 19, &r25, &parts, &bad) == URL_OK);
		EXPECT(validate_url(url, 19, &r24, &parts, &bad) == URL_TOO_LONG && bad == 0);
	}

	/* url_ascii_host: room, invalid names */
	EXPECT(url_ascii_host("b\xc3\xbc" "cher.de", 10, out, 3, &n) == 1 && n == 16);
	EXPECT(url_ascii_host("b\xc3\xbc" "cher.de", 10, out, 16, &n) == 0 && n == 16 &&
		   memcmp(out, "xn--bcher-kva.de", 16) == 0);
	EXPECT(url_ascii_host("Example.COM", 11, out, 10, &n) == 1 && n == 11);
	EXPECT(url_ascii_host("Example.COM", 11, out, 11, &n) == 0 &&
		   memcmp(out, "example.com", 11) == 0);
	EXPECT(url_ascii_host("ab--\xc3\xbc.de", 9, out, sizeof(out), &n) == -1);
	EXPECT(url_ascii_host("xn--abc.de", 10, out, sizeof(out), &n) == -1);

	/* aliases and code characters are unchanged */
	EXPECT(validate_alias("my-alias_01", 11, &bad) == ALIAS_OK);
	EXPECT(validate_alias("", 0, &bad) == ALIAS_EMPTY);
	EXPECT(validate_alias("a.b", 3, &bad) == ALIAS_BAD_CHAR && bad == 1);
	EXPECT(code_chars_ok("aZ09_-", 6) && !code_chars_ok("a b", 3));

	/*
	 * Every prefix and every random mutation of some URLs: the offset stays
	 * inside the input, at the start of a character, and what is accepted
	 * is accepted again in its stored form, with the same canonical host.
	 */
	{
		static const char *const samples[] = {
			"https://m\xc3\xbcnchen.de:8443/stra\xc3\x9f" "e?q=1#f",
			"http://u:p@[::1]:80/\xe2\x80\xae",
			"https://p\xd0\xb0ypal.com\xef\xbc\x8f@x/",
			"https://\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84/%41",
		};

		for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++)
		{
			size_t		len = strlen(samples[s]);

			for (int round = 0; round < 2000; round++)
			{
				char		url[128];
				size_t		cut = round < (int) len + 1 ? (size_t) round : len;
				url_status	st;

				memcpy(url, samples[s], len);
				if (round > (int) len)
				{
					/* flip, replace or insert a byte */
					uint64_t	r = next_random(&rng);
					size_t		at = (size_t) (r % len);

					url[at] = (char) (r >> 8);
				}
				st = validate_url(url, cut, &userinfo_rules, &parts, &bad);
				if (st != URL_OK)
				{
					EXPECT(cut == 0 ? bad == 0 : bad < cut);
					if (st != URL_BAD_UTF8 && bad > 0)
						EXPECT(((unsigned char) url[bad] & 0xC0) != 0x80);
				}
				else
				{
					char		again[512];
					url_parts	parts2;
					url_rules	any = {sizeof(again), 1};

					url[cut] = '\0';
					EXPECT(stored(url, &userinfo_rules, again, sizeof(again)));
					EXPECT(validate_url(again, strlen(again), &any, &parts2, &bad) == URL_OK &&
						   parts2.host_ascii && parts2.host_len == parts.ascii_host_len);
				}
			}
		}
	}

	/* labels: owner, title, tag */
	EXPECT(validate_label("team-7", 6, TAG_MAX_LENGTH, &bad) == LABEL_OK);
	EXPECT(validate_label("", 0, TAG_MAX_LENGTH, &bad) == LABEL_EMPTY && bad == 0);
	EXPECT(validate_label("a\tb", 3, TAG_MAX_LENGTH, &bad) == LABEL_CONTROL_CHAR && bad == 1);
	EXPECT(validate_label("ab\x7f", 3, TAG_MAX_LENGTH, &bad) == LABEL_CONTROL_CHAR && bad == 2);
	EXPECT(validate_label("a\0", 2, TAG_MAX_LENGTH, &bad) == LABEL_CONTROL_CHAR && bad == 1);
	/* U+0085 (NEL), a C1 control; U+00A0 is no control */
	EXPECT(validate_label("x\xc2\x85", 3, TAG_MAX_LENGTH, &bad) == LABEL_CONTROL_CHAR && bad == 1);
	EXPECT(validate_label("x\xc2\xa0", 3, TAG_MAX_LENGTH, &bad) == LABEL_OK);
	/* the length counts characters: 3 x U+00E9 is 6 bytes, 3 characters */
	EXPECT(validate_label("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 3, &bad) == LABEL_OK);
	EXPECT(validate_label("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 2, &bad) == LABEL_TOO_LONG);
	{
		char		tag[TAG_MAX_LENGTH + 1];

		memset(tag, 'x', sizeof(tag));
		EXPECT(validate_label(tag, TAG_MAX_LENGTH, TAG_MAX_LENGTH, &bad) == LABEL_OK);
		EXPECT(validate_label(tag, TAG_MAX_LENGTH + 1, TAG_MAX_LENGTH, &bad) == LABEL_TOO_LONG);
	}

	return unit_done("test_validate");
}
