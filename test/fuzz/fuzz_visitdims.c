/*-------------------------------------------------------------------------
 *
 * fuzz_visitdims.c
 *	  libFuzzer target for the pure visit dimensions (src/visitdims.c).
 *
 * Every input is used whole, three times:
 *	- as a User-Agent: the class is in range and named; it is the class a
 *	  deliberately naive second opinion gives (every token of the table
 *	  searched at every offset of a lowercased copy, the rules applied
 *	  again), which holds the one-pass scan and its chains to the table;
 *	  and it is the same for the input upper-cased and lower-cased;
 *	- as a Referer: the value is NUL-terminated, its length is the one
 *	  returned, and it agrees with the status: "direct" exactly for the
 *	  empty input, "other" for an invalid one, otherwise a lowercase host
 *	  of at most 253 bytes, of name characters in non-empty labels or an
 *	  IPv6 literal in brackets, that occurs in the input, and that gives
 *	  itself back when put in "http://" host "/"; upper-casing the input
 *	  changes nothing;
 *	- as a country code: accepted exactly when it is two ASCII letters,
 *	  and then written upper-cased.
 * Each function also runs on a copy of the input followed by bytes that
 * would change its result if they were read ("bot", "Mobile", ".x" ...),
 * and must give the same result.
 *
 * The target includes visitdims.c rather than linking it, to reach its
 * token table for the second opinion; run.sh lists no source for it.
 *
 * Any violation aborts, which libFuzzer reports as a finding.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "visitdims.c"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/*
 * The second opinion searches every token at every offset; left out of
 * libFuzzer's comparison tracing, it costs a fraction of what it would,
 * and guides nothing that the code under test does not already.
 */
#if defined(__clang__) && __clang_major__ >= 13
#define NOT_TRACED __attribute__((no_sanitize("coverage"), noinline))
#else
#define NOT_TRACED
#endif

/* what follows the input in the copies: bytes every parser would notice */
static const char trailer[] = "bot Mobile iPad .x:1/ZZ";

/* ascii_lower and ascii_upper are a second opinion on ASCII case */
static unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
}

static unsigned char
ascii_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char) (c - 32) : c;
}

static int
ascii_letter(unsigned char c)
{
	return ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z';
}

/* with_trailer copies the input to a new buffer and appends the trailer */
static char *
with_trailer(const uint8_t *data, size_t size)
{
	char	   *p = malloc(size + sizeof(trailer));

	CHECK(p != NULL);
	if (size > 0)
		memcpy(p, data, size);
	memcpy(p + size, trailer, sizeof(trailer));
	return p;
}

/* recased copies the input with every ASCII letter passed through f */
NOT_TRACED static char *
recased(const uint8_t *data, size_t size, unsigned char (*f) (unsigned char))
{
	char	   *p = malloc(size + 1);

	CHECK(p != NULL);
	for (size_t i = 0; i < size; i++)
		p[i] = (char) f(data[i]);
	return p;
}

/*
 * naive_counts is the second opinion on one occurrence of token t at
 * offset at of the lowercased input low: its conditions, written out.
 */
NOT_TRACED static int
naive_counts(const char *low, size_t len, size_t at, const ua_token *t)
{
	size_t		end = at + t->len;
	const char *before[2] = {t->not_preceded_by, t->not_preceded_by2};

	if (t->flags & TOKEN_WORD_START)
	{
		if (at > 0)
		{
			unsigned char c = (unsigned char) low[at - 1];

			if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
				return 0;
		}
	}
	if (t->flags & TOKEN_WORD_END)
	{
		if (end < len && low[end] >= 'a' && low[end] <= 'z')
			return 0;
	}
	for (int k = 0; k < 2; k++)
	{
		size_t		n = before[k] ? strlen(before[k]) : 0;

		if (n > 0 && at >= n && memcmp(low + at - n, before[k], n) == 0)
			return 0;
	}
	if (t->not_followed_by)
	{
		size_t		n = strlen(t->not_followed_by);

		if (end + n <= len && memcmp(low + end, t->not_followed_by, n) == 0)
			return 0;
	}
	return 1;
}

/* naive_class classifies by searching every token at every offset */
NOT_TRACED static visit_device
naive_class(const uint8_t *data, size_t size)
{
	char	   *low = recased(data, size, ascii_lower);
	unsigned	found = 0;
	visit_device d;

	for (size_t k = 0; k < NTOKENS(ua_tokens); k++)
	{
		const ua_token *t = &ua_tokens[k];

		for (size_t at = 0; at + t->len <= size; at++)
		{
			if (low[at] == t->text[0] &&
				memcmp(low + at, t->text, t->len) == 0 &&
				naive_counts(low, size, at, t))
			{
				found |= 1u << t->group;
				break;
			}
		}
	}
	free(low);

#define HAS(g)	((found & (1u << (g))) != 0)
	if (HAS(GROUP_BOT))
		d = DEVICE_BOT;
	else if (HAS(GROUP_TV))
		d = DEVICE_OTHER;
	else if (HAS(GROUP_TABLET) ||
			 (HAS(PROBE_ANDROID) && HAS(PROBE_MOZILLA) && !HAS(PROBE_MOBI)) ||
			 (HAS(PROBE_MACINTOSH) && HAS(PROBE_MOBILE_SLASH)))
		d = DEVICE_TABLET;
	else if (HAS(GROUP_MOBILE))
		d = DEVICE_MOBILE;
	else if (HAS(GROUP_DESKTOP))
		d = DEVICE_DESKTOP;
	else
		d = DEVICE_OTHER;
#undef HAS
	return d;
}

static void
check_device(const uint8_t *data, size_t size)
{
	visit_device d = visit_device_class((const char *) data, size);
	const char *name = visit_device_name(d);
	char	   *copy;

	CHECK(d >= DEVICE_DESKTOP && d <= DEVICE_OTHER);
	CHECK(strcmp(name, "desktop") == 0 || strcmp(name, "mobile") == 0 ||
		  strcmp(name, "tablet") == 0 || strcmp(name, "bot") == 0 ||
		  strcmp(name, "other") == 0);
	if (size == 0)
		CHECK(d == DEVICE_OTHER);

	CHECK(naive_class(data, size) == d);

	copy = recased(data, size, ascii_upper);
	CHECK(visit_device_class(copy, size) == d);
	free(copy);
	copy = recased(data, size, ascii_lower);
	CHECK(visit_device_class(copy, size) == d);
	free(copy);

	copy = with_trailer(data, size);
	CHECK(visit_device_class(copy, size) == d);
	free(copy);
}

/* host_ok checks the shape of a host visit_referrer_host returned */
static void
host_ok(const char *h, size_t n)
{
	CHECK(n >= 1 && n <= VISIT_HOST_MAX_LEN);
	if (h[0] == '[')
	{
		CHECK(n >= 4 && h[n - 1] == ']');
		for (size_t i = 1; i + 1 < n; i++)
			CHECK((h[i] >= '0' && h[i] <= '9') ||
				  (h[i] >= 'a' && h[i] <= 'f') || h[i] == ':' || h[i] == '.');
		return;
	}
	CHECK(h[0] != '.' && h[n - 1] != '.');
	for (size_t i = 0; i < n; i++)
	{
		CHECK((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= '0' && h[i] <= '9') ||
			  h[i] == '-' || h[i] == '.' || h[i] == '_');
		if (h[i] == '.')
			CHECK(h[i + 1] != '.');
	}
}

/* occurs_ci tells whether the lowercase text h occurs in the input */
NOT_TRACED static int
occurs_ci(const uint8_t *data, size_t size, const char *h, size_t n)
{
	for (size_t at = 0; at + n <= size; at++)
	{
		size_t		k = 0;

		while (k < n && ascii_lower(data[at + k]) == (unsigned char) h[k])
			k++;
		if (k == n)
			return 1;
	}
	return 0;
}

static void
check_referrer(const uint8_t *data, size_t size)
{
	char		out[VISIT_HOST_BUFSIZE];
	char		again[VISIT_HOST_BUFSIZE];
	size_t		out_len = (size_t) -1;
	size_t		again_len = (size_t) -1;
	visit_referrer_status st;
	char	   *copy;

	memset(out, 0x7f, sizeof(out));
	st = visit_referrer_host((const char *) data, size, out, &out_len);
	CHECK(st == VISIT_REFERRER_HOST || st == VISIT_REFERRER_DIRECT ||
		  st == VISIT_REFERRER_INVALID);
	CHECK(memchr(out, '\0', sizeof(out)) != NULL);
	CHECK(strlen(out) == out_len);
	CHECK((st == VISIT_REFERRER_DIRECT) == (size == 0));
	if (st == VISIT_REFERRER_DIRECT)
		CHECK(strcmp(out, "direct") == 0);
	else if (st == VISIT_REFERRER_INVALID)
		CHECK(strcmp(out, "other") == 0);
	else
	{
		char		url[VISIT_HOST_BUFSIZE + 16];
		int			n;

		host_ok(out, out_len);
		CHECK(occurs_ci(data, size, out, out_len));

		/* a host put back into a URL is the same host */
		n = snprintf(url, sizeof(url), "http://%s/", out);
		CHECK(n > 0 && (size_t) n < sizeof(url));
		CHECK(visit_referrer_host(url, (size_t) n, again, &again_len) ==
			  VISIT_REFERRER_HOST);
		CHECK(again_len == out_len && strcmp(again, out) == 0);
	}

	/* the case of the input does not matter */
	copy = recased(data, size, ascii_upper);
	CHECK(visit_referrer_host(copy, size, again, &again_len) == st);
	CHECK(again_len == out_len && strcmp(again, out) == 0);
	free(copy);

	/* nor what follows it */
	copy = with_trailer(data, size);
	CHECK(visit_referrer_host(copy, size, again, &again_len) == st);
	CHECK(again_len == out_len && strcmp(again, out) == 0);
	free(copy);
}

static void
check_country(const uint8_t *data, size_t size)
{
	char		out[3] = {'?', '?', '?'};
	bool		ok = visit_country_code((const char *) data, size, out);
	bool		want = (size == 2 &&
							ascii_letter(data[0]) && ascii_letter(data[1]));
	char	   *copy;
	char		again[3];

	CHECK(ok == want);
	if (ok)
	{
		CHECK(out[0] == (char) ascii_upper(data[0]));
		CHECK(out[1] == (char) ascii_upper(data[1]));
		CHECK(out[2] == '\0');
	}
	else
		CHECK(out[0] == '\0');

	copy = with_trailer(data, size);
	CHECK(visit_country_code(copy, size, again) == ok);
	CHECK(strcmp(again, out) == 0);
	free(copy);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_device(data, size);
	check_referrer(data, size);
	check_country(data, size);
	return 0;
}
