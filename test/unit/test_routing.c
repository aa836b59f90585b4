/*-------------------------------------------------------------------------
 *
 * test_routing.c
 *	  Unit tests of the pure shard-routing core: XXH64 against published
 *	  vectors, the little-endian form of bigint keys, the properties of jump
 *	  consistent hashing, the validation done by route_map_prepare, and
 *	  route_pick against the naive definition of weighted rendezvous hashing
 *	  (every node scored, the highest score wins; among equal scores the
 *	  larger node hash, h >> 11; then the name that sorts first), which its
 *	  grouped fast path for equal weights must match.  The naive definition
 *	  computes node hashes and scores itself, from the formula in routing.h,
 *	  with its own copy of XXH64.
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "routing.h"
#include "unit.h"

/* the largest map the random tests build */
#define MAX_NODES	64

/* a small deterministic generator, so a failure reproduces */
static uint64_t
next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* hashes_to checks route_hash64 of a C string against a 64-bit value */
static int
hashes_to(const char *s, uint64_t want)
{
	return route_hash64(s, strlen(s)) == want;
}

/* le_hash hashes the 8 little-endian bytes of v, written out by hand */
static uint64_t
le_hash(int64_t v)
{
	uint64_t	u = (uint64_t) v;
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char) (u >> (8 * i));
	return route_hash64(b, sizeof(b));
}

/* name_cmp orders names bytewise, a shorter prefix first (COLLATE "C") */
static int
name_cmp(const route_node *a, const route_node *b)
{
	size_t		len = a->name_len < b->name_len ? a->name_len : b->name_len;
	int			c = memcmp(a->name, b->name, len);

	if (c != 0)
		return c;
	return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/*
 * naive_hash53 is the 53 bits of a node's hash that make u, written out from
 * the formula: h = XXH64(8-byte little-endian key_hash, seed = node seed),
 * then h >> 11.
 */
static uint64_t
naive_hash53(uint64_t key_hash, uint64_t seed)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char) (key_hash >> (8 * i));
	return (uint64_t) XXH64(b, sizeof(b), seed) >> 11;
}

/* naive_score is weight / -ln(u), u = (h53 + 0.5) / 2^53 */
static double
naive_score(uint64_t h53, double weight)
{
	double		u = ((double) h53 + 0.5) / 9007199254740992.0;

	return weight / -log(u);
}

/*
 * naive_pick is the definition route_pick implements: score every node and
 * keep the highest score; among equal scores the larger h53; then the name
 * that sorts first.
 */
static int
naive_pick(const route_node *nodes, int n, uint64_t key_hash)
{
	int			best = -1;
	double		best_score = 0.0;
	uint64_t	best_h = 0;

	for (int i = 0; i < n; i++)
	{
		uint64_t	h = naive_hash53(key_hash, nodes[i].seed);
		double		s = naive_score(h, nodes[i].weight);

		if (best < 0 || s > best_score ||
			(s == best_score &&
			 (h > best_h ||
			  (h == best_h && name_cmp(&nodes[i], &nodes[best]) < 0))))
		{
			best = i;
			best_score = s;
			best_h = h;
		}
	}
	return best;
}

/* a map's nodes and the storage of their names */
typedef struct test_map
{
	route_node	nodes[MAX_NODES];
	char		names[MAX_NODES][8];
	int			n;
} test_map;

/*
 * random_map builds n nodes named by i + 1 in binary, least significant
 * digit first, with 'a' for 0 and 'b' for 1 ("b", "ab", "bb", "aab", ...:
 * distinct, and often prefixes of each other), and weights drawn from the
 * given list (so that many are equal).  The caller prepares the map.
 */
static void
random_map(test_map *m, int n, const double *weights, int nweights, uint64_t *rng)
{
	m->n = n;
	for (int i = 0; i < n; i++)
	{
		size_t		len = 0;

		for (int v = i + 1; v > 0 && len < sizeof(m->names[i]); v >>= 1)
			m->names[i][len++] = (v & 1) ? 'b' : 'a';
		m->nodes[i].name = m->names[i];
		m->nodes[i].name_len = len;
		m->nodes[i].weight = weights[next_random(rng) % (uint64_t) nweights];
	}
}

/*
 * pick_mismatches routes keys random key hashes over a prepared map with
 * route_pick and naive_pick and counts the keys where they differ.
 */
static int
pick_mismatches(const test_map *m, int keys, uint64_t *rng)
{
	int			bad = 0;

	for (int k = 0; k < keys; k++)
	{
		uint64_t	h = next_random(rng);
		int			fast = route_pick(m->nodes, m->n, h);
		int			slow = naive_pick(m->nodes, m->n, h);

		if (fast != slow)
		{
			static int	shown = 0;

			if (shown++ < 3)
				fprintf(stderr, "route_pick chose \"%.*s\", the naive definition \"%.*s\" (key hash %llu, %d nodes, weight %g)\n",
						(int) m->nodes[fast].name_len, m->nodes[fast].name,
						(int) m->nodes[slow].name_len, m->nodes[slow].name,
						(unsigned long long) h, m->n, m->nodes[slow].weight);
			bad++;
		}
	}
	return bad;
}

/* prepare_named fills nodes from parallel arrays and prepares them */
static route_status
prepare_named(route_node *nodes, const char *const *names, const double *weights,
			  int n, int *bad)
{
	for (int i = 0; i < n; i++)
	{
		nodes[i].name = names[i];
		nodes[i].name_len = strlen(names[i]);
		nodes[i].weight = weights[i];
		nodes[i].seed = 0;
	}
	return route_map_prepare(nodes, n, bad);
}

int
main(void)
{
	uint64_t	rng = 0x9E3779B97F4A7C15u;
	route_node	nodes[MAX_NODES];
	int			bad = -1;

	/*
	 * XXH64, seed 0: published vectors.  Empty input is the xxHash
	 * specification's; "Nobody inspects ..." is python-xxhash's README; the
	 * others are widely quoted test vectors.  All were rechecked with
	 * python3-xxhash and a from-the-specification Python XXH64.
	 */
	EXPECT(route_hash64("", 0) == UINT64_C(0xEF46DB3751D8E999));
	EXPECT(route_hash64(NULL, 0) == UINT64_C(0xEF46DB3751D8E999));
	EXPECT(hashes_to("a", UINT64_C(0xD24EC4F1A98C6E5B)));
	EXPECT(hashes_to("abc", UINT64_C(0x44BC2CF5AD770999)));
	EXPECT(hashes_to("message digest", UINT64_C(0x066ED728FCEEB3BE)));
	EXPECT(hashes_to("abcdefghijklmnopqrstuvwxyz", UINT64_C(0xCFE1F278FA89835C)));
	EXPECT(hashes_to("Nobody inspects the spammish repetition", UINT64_C(0xFBCEA83C8A378BF1)));

	/* bytes 0, 1, ..., n-1: one stripe exactly, and stripes plus a tail (python3-xxhash) */
	{
		unsigned char b[100];

		for (int i = 0; i < 100; i++)
			b[i] = (unsigned char) i;
		EXPECT(route_hash64(b, 32) == UINT64_C(0xCBF59C5116FF32B4));
		EXPECT(route_hash64(b, 100) == UINT64_C(0x6AC1E58032166597));
	}

	/* a bigint hashes as its 8 little-endian bytes (values from python3-xxhash) */
	EXPECT(route_hash64_int8(1) == UINT64_C(0x9F29CB17A2A49995));
	EXPECT(route_hash64_int8(-1) == UINT64_C(0x85D136ADB773C6C9));
	EXPECT(route_hash64_int8(INT64_MIN) == UINT64_C(0x3F425EACF01544E0));
	{
		int			mismatches = 0;
		static const int64_t edges[] = {0, 1, -1, 255, 256, INT64_MAX, INT64_MIN,
		INT64_C(0x0102030405060708)};

		for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
			mismatches += route_hash64_int8(edges[i]) != le_hash(edges[i]);
		for (int i = 0; i < 100000; i++)
		{
			int64_t		v = (int64_t) next_random(&rng);

			mismatches += route_hash64_int8(v) != le_hash(v);
		}
		EXPECT(mismatches == 0);
	}

	/* route_mod is the plain remainder */
	EXPECT(route_mod(UINT64_MAX, 1) == 0);
	EXPECT(route_mod(UINT64_MAX, 10) == 5);
	EXPECT(route_mod(UINT64_MAX, UINT32_MAX) == 0);
	EXPECT(route_mod(UINT64_C(0xEF46DB3751D8E999), 7) == UINT64_C(0xEF46DB3751D8E999) % 7);

	/* jump: values of the Python reference (route_reference.py) */
	EXPECT(route_jump(route_hash64_int8(42), 1000) == 190);
	EXPECT(route_jump(route_hash64_int8(42), INT32_MAX) == 772152337);
	EXPECT(hashes_to("https://example.com/a?b=c", UINT64_C(7221325786184677828)));
	EXPECT(route_jump(UINT64_C(7221325786184677828), 1000) == 149);
	EXPECT(route_jump(UINT64_C(7221325786184677828), INT32_MAX) == 650010588);

	/* jump: one bucket is bucket 0; the result is in [0, n) for every n tried */
	{
		int			out_of_range = 0;
		int			not_zero = 0;
		static const int32_t counts[] = {1, 2, 3, 7, 10, 1000, 65536, INT32_MAX};

		for (int i = 0; i < 100000; i++)
		{
			uint64_t	h = next_random(&rng);

			not_zero += route_jump(h, 1) != 0;
			for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
			{
				int32_t		b = route_jump(h, counts[c]);

				out_of_range += b < 0 || b >= counts[c];
			}
		}
		not_zero += route_jump(0, 1) != 0 || route_jump(UINT64_MAX, 1) != 0;
		EXPECT(not_zero == 0);
		EXPECT(out_of_range == 0);
	}

	/*
	 * jump: growing from n to n + 1 buckets moves keys only into bucket n,
	 * about 1/(n + 1) of them (100,000 keys; within 0.5 percentage point,
	 * over five standard deviations).
	 */
	for (int32_t n = 1; n <= 40; n++)
	{
		int			moved = 0;
		int			moved_elsewhere = 0;
		const int	keys = 100000;

		for (int i = 0; i < keys; i++)
		{
			uint64_t	h = next_random(&rng);
			int32_t		a = route_jump(h, n);
			int32_t		b = route_jump(h, n + 1);

			if (a != b)
			{
				moved++;
				moved_elsewhere += b != n;
			}
		}
		EXPECT(moved_elsewhere == 0);
		EXPECT(fabs((double) moved / keys - 1.0 / (n + 1)) < 0.005);
	}

	/* prepare: an empty map */
	EXPECT(route_map_prepare(nodes, 0, &bad) == ROUTE_EMPTY);

	/* prepare: an empty name, reported at its index */
	{
		static const char *const names[] = {"a", "b", ""};
		static const double weights[] = {1, 1, 1};

		bad = -1;
		EXPECT(prepare_named(nodes, names, weights, 3, &bad) == ROUTE_BAD_NAME);
		EXPECT(bad == 2 && nodes[bad].name_len == 0);
	}

	/* prepare: a duplicate name (even with another weight); nodes[bad] is a copy */
	{
		static const char *const names[] = {"b", "a", "c", "a"};
		static const double weights[] = {1, 1, 1, 2};

		bad = -1;
		EXPECT(prepare_named(nodes, names, weights, 4, &bad) == ROUTE_DUPLICATE_NAME);
		EXPECT(bad >= 0 && bad < 4 && nodes[bad].name_len == 1 && nodes[bad].name[0] == 'a');
	}

	/* prepare: names are compared as bytes, so "a", "A", "ab" and "a\0" are distinct */
	{
		static const double weights[] = {1, 1, 1, 1};

		nodes[0].name = "a";
		nodes[1].name = "A";
		nodes[2].name = "ab";
		nodes[3].name = "a\0";
		for (int i = 0; i < 4; i++)
		{
			nodes[i].name_len = i == 3 ? 2 : strlen(nodes[i].name);
			nodes[i].weight = weights[i];
		}
		EXPECT(route_map_prepare(nodes, 4, &bad) == ROUTE_OK);
	}

	/* prepare: the bounds are those of the table's CHECK (weight BETWEEN 1e-9 AND 1e9) */
	EXPECT(ROUTE_MIN_WEIGHT == 1e-9);
	EXPECT(ROUTE_MAX_WEIGHT == 1e9);

	/*
	 * prepare: weights that are zero, negative zero, negative, NaN, infinite,
	 * or finite but outside [1e-9, 1e9] (the smallest and largest doubles,
	 * and the doubles just outside each bound), at their index
	 */
	{
		static const char *const names[] = {"a", "b", "c"};
		const double bad_weights[] = {0.0, -0.0, -1.0, -DBL_MIN, NAN, INFINITY, -INFINITY,
			DBL_TRUE_MIN, DBL_MIN, DBL_MAX, -1e-9, -1e9, 1e-10, 2e9,
		nextafter(1e-9, 0.0), nextafter(1e9, INFINITY)};

		for (size_t w = 0; w < sizeof(bad_weights) / sizeof(bad_weights[0]); w++)
		{
			double		weights[] = {1, 2, 3};

			weights[w % 3] = bad_weights[w];
			bad = -1;
			EXPECT(prepare_named(nodes, names, weights, 3, &bad) == ROUTE_BAD_WEIGHT);
			EXPECT(bad == (int) (w % 3));
		}
	}

	/* prepare: exactly 1e-9 and 1e9 are valid, and so are the doubles just inside them */
	{
		static const char *const names[] = {"a", "b", "c", "d"};
		const double weights[] = {1e-9, 1e9, nextafter(1e-9, 1.0), nextafter(1e9, 0.0)};

		EXPECT(prepare_named(nodes, names, weights, 2, &bad) == ROUTE_OK);
		EXPECT(prepare_named(nodes, names, weights, 4, &bad) == ROUTE_OK);
	}

	/*
	 * prepare: seeds are XXH64 of the names, and nodes end grouped as
	 * route_pick needs them: each weight in one run of adjacent nodes (in
	 * any order of runs), names ascending within a run.
	 */
	{
		static const char *const names[] = {"delta", "bravo", "alpha", "charlie", "ab", "e"};
		static const double weights[] = {2, 1, 2, 1, 2, 0.5};
		int			grouped = 1;
		int			seeded = 1;

		EXPECT(prepare_named(nodes, names, weights, 6, &bad) == ROUTE_OK);
		for (int i = 0; i < 6; i++)
		{
			seeded &= nodes[i].seed == route_hash64(nodes[i].name, nodes[i].name_len);
			if (i > 0 && nodes[i - 1].weight == nodes[i].weight)
				grouped &= name_cmp(&nodes[i - 1], &nodes[i]) < 0;
			/* a weight seen before, but not just before, is a second run */
			for (int j = 0; j + 1 < i; j++)
				grouped &= nodes[j].weight != nodes[i].weight ||
					nodes[i - 1].weight == nodes[i].weight;
		}
		EXPECT(seeded);
		EXPECT(grouped);
	}

	/*
	 * pick: the shards of bigint keys 1..24 under two maps, as the Python
	 * reference (test/route_reference.py) computes them: alpha 1, bravo 2,
	 * charlie 3, delta 4; and five equal weights with one of 2.5 (the fast
	 * path's runs of equal weights).
	 */
	{
		static const char *const names[] = {"alpha", "bravo", "charlie", "delta"};
		static const double weights[] = {1, 2, 3, 4};
		static const char *const want[] = {
			"delta", "delta", "delta", "delta", "delta", "delta", "charlie", "delta",
			"charlie", "charlie", "alpha", "charlie", "delta", "delta", "delta", "charlie",
			"delta", "delta", "delta", "delta", "charlie", "delta", "alpha", "delta"};
		static const char *const names6[] = {"s1", "s2", "s3", "s4", "s5", "s6"};
		static const double weights6[] = {1, 1, 1, 1, 1, 2.5};
		static const char *const want6[] = {
			"s5", "s4", "s2", "s5", "s6", "s6", "s6", "s1", "s5", "s6", "s1", "s2",
			"s3", "s2", "s5", "s3", "s6", "s3", "s3", "s4", "s6", "s3", "s5", "s3"};
		int			mismatches = 0;

		EXPECT(prepare_named(nodes, names, weights, 4, &bad) == ROUTE_OK);
		for (int k = 1; k <= 24; k++)
			mismatches += strcmp(nodes[route_pick(nodes, 4, route_hash64_int8(k))].name, want[k - 1]) != 0;
		EXPECT(prepare_named(nodes, names6, weights6, 6, &bad) == ROUTE_OK);
		for (int k = 1; k <= 24; k++)
			mismatches += strcmp(nodes[route_pick(nodes, 6, route_hash64_int8(k))].name, want6[k - 1]) != 0;
		EXPECT(mismatches == 0);
	}

	/*
	 * pick: equal hashes are a tie, won by the name that sorts first.  The
	 * tie is forced by giving every node of a prepared map one seed (the map
	 * stays sorted: the order is by weight and name, not seed).
	 */
	{
		static const char *const names[] = {"b", "ab", "a", "c"};
		static const double weights[] = {1, 1, 1, 1};
		int			not_first = 0;

		EXPECT(prepare_named(nodes, names, weights, 4, &bad) == ROUTE_OK);
		for (int i = 1; i < 4; i++)
			nodes[i].seed = nodes[0].seed;
		for (int i = 0; i < 1000; i++)
		{
			uint64_t	h = next_random(&rng);

			not_first += strcmp(nodes[route_pick(nodes, 4, h)].name, "a") != 0;
			not_first += naive_pick(nodes, 4, h) != route_pick(nodes, 4, h);
		}
		EXPECT(not_first == 0);
	}

	/* pick: a single node takes every key */
	{
		static const char *const names[] = {"only"};
		static const double weights[] = {0.001};
		int			elsewhere = 0;

		EXPECT(prepare_named(nodes, names, weights, 1, &bad) == ROUTE_OK);
		for (int i = 0; i < 10000; i++)
			elsewhere += route_pick(nodes, 1, next_random(&rng)) != 0;
		EXPECT(elsewhere == 0);
	}

	/*
	 * pick: route_pick equals the naive argmax over many random maps, 1 to
	 * 64 nodes, with weights from short lists so that runs of equal weights
	 * (the fast path) are common, and from a continuous range.
	 */
	{
		static const double all_equal[] = {1.0};
		static const double few[] = {0.5, 1.0, 1.0, 1.0, 2.0, 3.25};
		static const double two[] = {1.0, 1.0000000000000002};
		const double *lists[] = {all_equal, few, two};
		const int	sizes[] = {1, 6, 2};
		int			mismatches = 0;
		int			failed_prepares = 0;
		test_map	m;

		for (int map = 0; map < 3000; map++)
		{
			int			list = map % 3;
			int			n = 1 + (int) (next_random(&rng) % MAX_NODES);

			random_map(&m, n, lists[list], sizes[list], &rng);
			if (route_map_prepare(m.nodes, m.n, &bad) != ROUTE_OK)
				failed_prepares++;
			else
				mismatches += pick_mismatches(&m, 300, &rng);
		}
		for (int map = 0; map < 1000; map++)
		{
			int			n = 1 + (int) (next_random(&rng) % MAX_NODES);
			double		weights[MAX_NODES];

			for (int i = 0; i < n; i++)
				weights[i] = 0.01 + (double) (next_random(&rng) % 100000) / 1000.0;
			random_map(&m, n, weights, n, &rng);
			if (route_map_prepare(m.nodes, m.n, &bad) != ROUTE_OK)
				failed_prepares++;
			else
				mismatches += pick_mismatches(&m, 300, &rng);
		}
		EXPECT(failed_prepares == 0);
		EXPECT(mismatches == 0);
	}

	/* score: route_score is the formula, bit for bit (100,000 random keys and seeds) */
	{
		static const double weights[] = {1e-9, 0.3, 1.0, 7.25, 1e9};
		int			mismatches = 0;

		for (int i = 0; i < 100000; i++)
		{
			uint64_t	key = next_random(&rng);
			uint64_t	seed = next_random(&rng);
			double		w = weights[i % 5];

			mismatches += route_score(key, seed, w) != naive_score(naive_hash53(key, seed), w);
		}
		EXPECT(mismatches == 0);
	}

	/*
	 * pick: equal scores from different hashes go to the larger hash, even
	 * when its name sorts last.  For each of 2,000 random keys, node "a" has
	 * weight 1 and node "b" a weight chosen to tie: x_b / x_a (x = -ln(u)),
	 * nudged by up to a few ulps until b's score equals a's bit for bit.  The
	 * weights differ, so the tie is between two runs of the fast path.
	 */
	{
		static const char *const names[] = {"a", "b"};
		uint64_t	seed_a = route_hash64("a", 1);
		uint64_t	seed_b = route_hash64("b", 1);
		int			ties = 0;
		int			b_wins = 0;
		int			mismatches = 0;

		for (int k = 0; k < 2000; k++)
		{
			uint64_t	key = next_random(&rng);
			uint64_t	ha = naive_hash53(key, seed_a);
			uint64_t	hb = naive_hash53(key, seed_b);
			double		score_a = naive_score(ha, 1.0);
			double		guess = log(((double) hb + 0.5) / 9007199254740992.0) /
				log(((double) ha + 0.5) / 9007199254740992.0);
			double		up = guess;
			double		down = guess;
			double		wb = 0.0;
			double		weights[2];
			const char *want;

			for (int step = 0; step < 8 && wb == 0.0; step++)
			{
				if (naive_score(hb, up) == score_a)
					wb = up;
				else if (naive_score(hb, down) == score_a)
					wb = down;
				up = nextafter(up, INFINITY);
				down = nextafter(down, 0.0);
			}
			if (wb == 0.0 || wb == 1.0 || ha == hb ||
				wb < ROUTE_MIN_WEIGHT || wb > ROUTE_MAX_WEIGHT)
				continue;
			ties++;
			weights[0] = 1.0;
			weights[1] = wb;
			if (prepare_named(nodes, names, weights, 2, &bad) != ROUTE_OK)
			{
				mismatches++;
				continue;
			}
			want = hb > ha ? "b" : "a";
			b_wins += hb > ha;
			mismatches += route_score(key, seed_a, 1.0) != route_score(key, seed_b, wb);
			mismatches += strcmp(nodes[route_pick(nodes, 2, key)].name, want) != 0;
			mismatches += strcmp(nodes[naive_pick(nodes, 2, key)].name, want) != 0;
		}
		EXPECT(ties >= 1000);
		EXPECT(b_wins >= 100);
		EXPECT(mismatches == 0);
	}

	/*
	 * pick: weights at the bounds.  Every score is a normal, finite number
	 * (routing.h), and route_pick matches the naive definition with equal
	 * weights at either bound (one run of the fast path), with distinct
	 * weights just below the upper bound (adjacent doubles, one run each),
	 * and over the whole range, 1e-9 to 1e9.
	 */
	{
		static const double low[] = {1e-9};
		static const double high[] = {1e9};
		static const double span[] = {1e-9, 1e-3, 1.0, 1e3, 1e9};
		int			abnormal = 0;
		int			failed_prepares = 0;
		int			low_mismatches = 0;
		int			high_mismatches = 0;
		int			adjacent_mismatches = 0;
		int			span_mismatches = 0;
		test_map	m;

		for (int i = 0; i < 100000; i++)
		{
			uint64_t	key = next_random(&rng);
			uint64_t	seed = next_random(&rng);

			abnormal += !isnormal(route_score(key, seed, ROUTE_MIN_WEIGHT));
			abnormal += !isnormal(route_score(key, seed, ROUTE_MAX_WEIGHT));
		}
		EXPECT(abnormal == 0);

		for (int map = 0; map < 200; map++)
		{
			int			n = 2 + map % 16;
			double		w = ROUTE_MAX_WEIGHT;

			random_map(&m, n, low, 1, &rng);
			if (route_map_prepare(m.nodes, m.n, &bad) != ROUTE_OK)
				failed_prepares++;
			else
				low_mismatches += pick_mismatches(&m, 200, &rng);

			random_map(&m, n, high, 1, &rng);
			if (route_map_prepare(m.nodes, m.n, &bad) != ROUTE_OK)
				failed_prepares++;
			else
				high_mismatches += pick_mismatches(&m, 200, &rng);

			random_map(&m, n, high, 1, &rng);
			for (int i = 0; i < m.n; i++)
			{
				m.nodes[i].weight = w;
				w = nextafter(w, 0.0);
			}
			if (route_map_prepare(m.nodes, m.n, &bad) != ROUTE_OK)
				failed_prepares++;
			else
				adjacent_mismatches += pick_mismatches(&m, 200, &rng);

			random_map(&m, n, span, 5, &rng);
			if (route_map_prepare(m.nodes, m.n, &bad) != ROUTE_OK)
				failed_prepares++;
			else
				span_mismatches += pick_mismatches(&m, 200, &rng);
		}
		EXPECT(failed_prepares == 0);
		EXPECT(low_mismatches == 0);
		EXPECT(high_mismatches == 0);
		EXPECT(adjacent_mismatches == 0);
		EXPECT(span_mismatches == 0);
	}

	return unit_done("test_routing");
}
