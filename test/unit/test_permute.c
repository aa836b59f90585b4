/*-------------------------------------------------------------------------
 *
 * test_permute.c
 *	  Unit tests of the keyed permutation: exhaustive bijectivity on the
 *	  3- and 4-character code spaces (238,328 and 14,776,336 values), the
 *	  inverse on samples of every width, and that neighbours scatter.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "permute.h"
#include "unit.h"

static const unsigned char key_a[PERMUTE_KEY_BYTES] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f
};
static const unsigned char key_b[PERMUTE_KEY_BYTES] = {
	0x10, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f
};

/*
 * exhaustive checks that every x in [0, 62^width) maps into the domain, that
 * no image repeats (a bitmap of the domain), and that the inverse undoes it.
 */
static void
exhaustive(int width)
{
	uint64_t	n = permute_domain(width);
	unsigned char *seen = calloc((size_t) (n / 8 + 1), 1);
	uint64_t	out_of_domain = 0,
				repeats = 0,
				not_inverted = 0,
				fixed_points = 0;

	for (uint64_t x = 0; x < n; x++)
	{
		uint64_t	y = permute_forward(x, width, key_a);

		if (y >= n)
		{
			out_of_domain++;
			continue;
		}
		if (seen[y / 8] & (1u << (y % 8)))
			repeats++;
		seen[y / 8] |= (unsigned char) (1u << (y % 8));
		if (permute_inverse(y, width, key_a) != x)
			not_inverted++;
		if (y == x)
			fixed_points++;
	}
	printf("width %d: %llu values, %llu fixed points (about 1 expected)\n",
		   width, (unsigned long long) n, (unsigned long long) fixed_points);
	EXPECT(out_of_domain == 0);
	EXPECT(repeats == 0);
	EXPECT(not_inverted == 0);
	EXPECT(fixed_points < 20);
	free(seen);
}

int
main(void)
{
	/* the domains are the powers of 62 */
	EXPECT(permute_domain(1) == 62);
	EXPECT(permute_domain(7) == UINT64_C(3521614606208));
	EXPECT(permute_domain(10) == UINT64_C(839299365868340224));

	exhaustive(1);
	exhaustive(2);
	exhaustive(3);
	exhaustive(4);

	/* every width: inverse on samples, including the domain's ends */
	for (int w = PERMUTE_MIN_WIDTH; w <= PERMUTE_MAX_WIDTH; w++)
	{
		uint64_t	n = permute_domain(w);
		uint64_t	bad = 0;

		for (uint64_t i = 0; i < 20000; i++)
		{
			uint64_t	x = (i < 10000) ? i % n : n - 1 - (i * 2654435761u) % n;
			uint64_t	y = permute_forward(x, w, key_a);

			if (y >= n || permute_inverse(y, w, key_a) != x)
				bad++;
		}
		EXPECT(bad == 0);
	}

	/*
	 * Neighbours scatter: consecutive sequence numbers give codes whose
	 * differences look random.  Over 100,000 pairs at width 7, the images of
	 * x and x+1 are within 62^7/1000 of each other about 0.2% of the time.
	 */
	{
		uint64_t	n = permute_domain(7);
		int			close = 0;

		for (uint64_t x = 0; x < 100000; x++)
		{
			uint64_t	a = permute_forward(x, 7, key_a);
			uint64_t	b = permute_forward(x + 1, 7, key_a);
			uint64_t	d = a > b ? a - b : b - a;

			if (d < n / 1000)
				close++;
		}
		printf("width 7: %d of 100000 neighbours within 0.1%% of the domain\n", close);
		EXPECT(close < 400);
	}

	/* a different key gives a different permutation */
	{
		int			same = 0;

		for (uint64_t x = 0; x < 10000; x++)
			if (permute_forward(x, 7, key_a) == permute_forward(x, 7, key_b))
				same++;
		EXPECT(same == 0);
	}

	/* the same key and width always give the same code (stable across runs) */
	EXPECT(permute_forward(0, 7, key_a) == permute_forward(0, 7, key_a));

	return unit_done("test_permute");
}
