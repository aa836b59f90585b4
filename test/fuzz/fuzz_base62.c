/*-------------------------------------------------------------------------
 *
 * fuzz_base62.c
 *	  libFuzzer target for the pure base62 codec (src/base62.c).
 *
 * Every input is used twice:
 *	- as a code: decode must not crash, must agree with an independent
 *	  128-bit reference decoder on value, error kind and error offset, and a
 *	  successful decode must re-encode to the canonical form (leading zeros
 *	  stripped) and, padded to the input's width, to the input itself;
 *	- as a value: its first 8 bytes (sign bit cleared) and a width byte are
 *	  encoded, and decoding the result must give the value back.
 *
 * Any violation aborts, which libFuzzer reports as a finding.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base62.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* reference_digit is a deliberately naive second opinion on the alphabet */
static int
reference_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 36;
	return -1;
}

static void
check_decode(const uint8_t *data, size_t size)
{
	int64_t		value = -1;
	size_t		bad = (size_t) -1;
	base62_status st = base62_decode((const char *) data, size, &value, &bad);
	unsigned __int128 acc = 0;
	int			big = 0;
	size_t		first_bad = size;

	for (size_t i = 0; i < size; i++)
	{
		int			d = reference_digit(data[i]);

		if (d < 0)
		{
			first_bad = i;
			break;
		}
		if (!big)
		{
			acc = acc * 62 + (unsigned) d;
			if (acc > (unsigned __int128) INT64_MAX)
				big = 1;
		}
	}

	if (size == 0)
	{
		CHECK(st == BASE62_EMPTY);
		return;
	}
	if (first_bad < size)
	{
		CHECK(st == BASE62_INVALID_DIGIT);
		CHECK(bad == first_bad);
		return;
	}
	if (big)
	{
		CHECK(st == BASE62_OUT_OF_RANGE);
		return;
	}
	CHECK(st == BASE62_OK);
	CHECK((unsigned __int128) value == acc);

	/* encode(decode(x)) is the canonical form: x without leading zeros */
	{
		char		out[BASE62_MAX_WIDTH];
		size_t		len = 0;
		size_t		skip = 0;

		CHECK(base62_encode(value, 0, out, &len) == BASE62_OK);
		while (skip + 1 < size && data[skip] == '0')
			skip++;
		CHECK(len == size - skip);
		CHECK(memcmp(out, data + skip, len) == 0);

		/* and padded back to the input's width it is the input itself */
		if (size <= BASE62_MAX_WIDTH)
		{
			CHECK(base62_encode(value, (int) size, out, &len) == BASE62_OK);
			CHECK(len == size);
			CHECK(memcmp(out, data, size) == 0);
		}
	}
}

static void
check_encode(const uint8_t *data, size_t size)
{
	uint64_t	raw = 0;
	int64_t		value;
	int			width;
	char		out[BASE62_MAX_WIDTH];
	size_t		len = 0;
	int64_t		back = -1;
	size_t		bad = 0;

	if (size < 9)
		return;
	memcpy(&raw, data, sizeof(raw));
	value = (int64_t) (raw >> 1);	/* any non-negative int64 */
	width = data[8] % (BASE62_MAX_WIDTH + 1);

	CHECK(base62_encode(value, width, out, &len) == BASE62_OK);
	CHECK(len >= (size_t) width && len <= BASE62_MAX_WIDTH);
	CHECK(base62_decode(out, len, &back, &bad) == BASE62_OK);
	CHECK(back == value);

	/* out-of-range arguments are refused, never written past the buffer */
	CHECK(base62_encode(-value - 1, 0, out, &len) == BASE62_NEGATIVE);
	CHECK(base62_encode(value, BASE62_MAX_WIDTH + 1 + data[8], out, &len) == BASE62_BAD_WIDTH);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decode(data, size);
	check_encode(data, size);
	return 0;
}
