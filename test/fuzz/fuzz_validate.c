/*-------------------------------------------------------------------------
 *
 * fuzz_validate.c
 *	  libFuzzer target for the URL and alias validators (src/validate.c).
 *
 * Whatever the bytes, validation must not crash or read out of bounds, and
 * an accepted URL must really have what the rules promise: an http or https
 * scheme, a non-empty host, no control characters or spaces, and a length
 * within the limit.  A rejected one must point at a byte inside the input.
 * The first input byte picks the length limit, so the limit is fuzzed too.
 * Any violation aborts, which libFuzzer reports as a finding.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

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

static void
check_url(const uint8_t *data, size_t size, size_t max_len)
{
	size_t		bad = (size_t) -1;
	url_status	st = validate_url((const char *) data, size, max_len, &bad);

	if (st != URL_OK)
	{
		CHECK(bad == 0 || bad < size);
		if (st == URL_CONTROL_CHAR)
			CHECK(data[bad] < 0x20 || data[bad] == 0x7f);
		if (st == URL_SPACE)
			CHECK(data[bad] == ' ');
		if (st == URL_TOO_LONG)
			CHECK(size > max_len);
		return;
	}

	CHECK(size <= max_len);
	for (size_t i = 0; i < size; i++)
		CHECK(data[i] > 0x20 && data[i] != 0x7f);
	{
		size_t		start = starts_ci(data, size, "http://") ? 7 :
			starts_ci(data, size, "https://") ? 8 : 0;
		size_t		end = start;
		size_t		host = start;

		CHECK(start != 0);
		while (end < size && data[end] != '/' && data[end] != '?' && data[end] != '#')
			end++;
		for (size_t i = start; i < end; i++)
		{
			CHECK(data[i] != '\\');
			if (data[i] == '@')
				host = i + 1;
		}
		/* a host follows the userinfo, and is not just a port */
		CHECK(host < end && data[host] != ':');
	}
}

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

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		max_len;

	if (size == 0)
	{
		check_alias(data, 0);
		return 0;
	}
	/* first byte: the length limit (0 = the default 2048) */
	max_len = data[0] == 0 ? 2048 : data[0];
	check_url(data + 1, size - 1, max_len);
	check_alias(data + 1, size - 1);
	return 0;
}
