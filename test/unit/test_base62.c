/*-------------------------------------------------------------------------
 *
 * test_base62.c
 *	  Unit tests of the pure base62 codec: published boundary values, the
 *	  ordering promise of the alphabet, and a sweep of round trips.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <string.h>

#include "base62.h"
#include "unit.h"

/* encodes_to checks that value encodes (unpadded) to exactly want */
static int
encodes_to(int64_t value, const char *want)
{
	char		out[BASE62_MAX_WIDTH];
	size_t		len = 0;

	return base62_encode(value, 0, out, &len) == BASE62_OK &&
		len == strlen(want) && memcmp(out, want, len) == 0;
}

static int
decodes_to(const char *in, int64_t want)
{
	int64_t		v = -1;
	size_t		bad = 0;

	return base62_decode(in, strlen(in), &v, &bad) == BASE62_OK && v == want;
}

/* a small deterministic generator, so a failure reproduces */
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
	char		out[BASE62_MAX_WIDTH];
	size_t		len = 0;
	int64_t		v = 0;
	size_t		bad = 0;
	uint64_t	rng = 0x9E3779B97F4A7C15u;

	/* the boundaries of one, two and three digits */
	EXPECT(encodes_to(0, "0"));
	EXPECT(encodes_to(61, "z"));
	EXPECT(encodes_to(62, "10"));
	EXPECT(encodes_to(3843, "zz"));
	EXPECT(encodes_to(3844, "100"));
	EXPECT(encodes_to(INT64_MAX, "AzL8n0Y58m7"));
	EXPECT(decodes_to("AzL8n0Y58m7", INT64_MAX));
	EXPECT(decodes_to("0000000000000AzL8n0Y58m7", INT64_MAX));

	/* one past INT64_MAX, and every longer string of digits, is out of range */
	EXPECT(base62_decode("AzL8n0Y58m8", 11, &v, &bad) == BASE62_OUT_OF_RANGE);
	EXPECT(base62_decode("zzzzzzzzzzz", 11, &v, &bad) == BASE62_OUT_OF_RANGE);
	EXPECT(base62_decode("100000000000", 12, &v, &bad) == BASE62_OUT_OF_RANGE);
	EXPECT(decodes_to("zzzzzzzzzz", 839299365868340223));	/* 62^10 - 1 */

	/* a bad digit wins over overflow, at its first offset */
	EXPECT(base62_decode("zzzzzzzzzzzz-", 13, &v, &bad) == BASE62_INVALID_DIGIT && bad == 12);
	EXPECT(base62_decode("ab+c", 4, &v, &bad) == BASE62_INVALID_DIGIT && bad == 2);
	EXPECT(base62_decode(" 1", 2, &v, &bad) == BASE62_INVALID_DIGIT && bad == 0);
	EXPECT(base62_decode("", 0, &v, &bad) == BASE62_EMPTY);

	/* width limits and padding */
	EXPECT(base62_encode(5, 64, out, &len) == BASE62_OK && len == 64 &&
		   out[0] == '0' && out[63] == '5');
	EXPECT(base62_encode(5, 65, out, &len) == BASE62_BAD_WIDTH);
	EXPECT(base62_encode(5, -1, out, &len) == BASE62_BAD_WIDTH);
	EXPECT(base62_encode(-1, 0, out, &len) == BASE62_NEGATIVE);
	EXPECT(base62_encode(INT64_MIN, 0, out, &len) == BASE62_NEGATIVE);

	/* digit values follow byte order, so equal-width codes sort like numbers */
	for (int c = 1; c < 256; c++)
	{
		int			a = base62_digit_value((unsigned char) (c - 1));
		int			b = base62_digit_value((unsigned char) c);

		if (a >= 0 && b >= 0)
			EXPECT(a < b);
	}
	for (int i = 0; i < 100000; i++)
	{
		int64_t		x = (int64_t) (next_random(&rng) >> 1);
		int64_t		y = (int64_t) (next_random(&rng) >> 1);
		char		bx[BASE62_MAX_WIDTH],
					by[BASE62_MAX_WIDTH];
		size_t		lx,
					ly;
		int			cmp;

		base62_encode(x, 11, bx, &lx);
		base62_encode(y, 11, by, &ly);
		cmp = memcmp(bx, by, 11);
		EXPECT((cmp < 0) == (x < y) && (cmp == 0) == (x == y));
	}

	/* round trips across magnitudes and widths */
	for (int i = 0; i < 200000; i++)
	{
		int64_t		x = (int64_t) (next_random(&rng) >> (1 + i % 63));
		int			w = i % (BASE62_MAX_WIDTH + 1);

		if (base62_encode(x, w, out, &len) != BASE62_OK ||
			base62_decode(out, len, &v, &bad) != BASE62_OK || v != x)
			EXPECT(!"round trip");
	}

	return unit_done("test_base62");
}
