/*-------------------------------------------------------------------------
 *
 * routing.c
 *	  Pure shard-routing core (no PostgreSQL headers); see routing.h.
 *
 * The hash is XXH64 from Debian's libxxhash-dev, compiled in with
 * XXH_INLINE_ALL so there is no run-time library to install.
 *
 * Weighted rendezvous hashing (highest random weight with logarithmic
 * weighting, Schindelhauer & Schomaker 2005; Resch's "weighted rendezvous
 * hashing" formulation): every node scores every key independently, the
 * highest score wins.  Adding a node can only take keys for itself, and
 * removing one only frees its own keys, because no other node's score
 * changes.  A key lands on node i with probability w_i / sum(w).
 *
 * Speed: a node's score is monotonic in its hash when weights are equal, so
 * route_pick keeps, for each run of equal weights, only the node with the
 * largest hash and takes the logarithm once per run rather than once per
 * node.  With equal weights a pick costs n short hashes and one log().
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "routing.h"

/* Jump hash's linear congruential step, from Lamping & Veach (2014) */
#define JUMP_LCG_MULTIPLIER UINT64_C(2862933555777941757)

/* u keeps 53 bits of the hash, a double's full mantissa */
#define SCORE_SHIFT		11
#define SCORE_SCALE		9007199254740992.0	/* 2^53 */

/* relative margin on the score bound of route_pick: far above rounding */
#define BOUND_SLACK		(1.0 + 1e-9)

uint64_t
route_hash64(const void *data, size_t len)
{
	return (uint64_t) XXH64(data, len, 0);
}

/*
 * store_le64 writes v as 8 little-endian bytes whatever the host's byte
 * order, so a bigint hashes the same on every platform.  One 8-byte store
 * where the host is little-endian: XXH64 reads the buffer back as one word,
 * and eight byte stores in front of that load would stall it.
 */
static inline void
store_le64(unsigned char *out, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(out, &v, sizeof(v));
#else
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char) (v >> (8 * i));
#endif
}

uint64_t
route_hash64_int8(int64_t v)
{
	unsigned char buf[8];

	store_le64(buf, (uint64_t) v);
	return (uint64_t) XXH64(buf, sizeof(buf), 0);
}

uint32_t
route_mod(uint64_t hash, uint32_t n)
{
	return (uint32_t) (hash % n);
}

/*
 * route_jump is the published algorithm, line for line: the key drives a
 * linear congruential generator, and each step jumps forward to the next
 * bucket the key would move to as the bucket count grows.  The product
 * (b + 1) * (2^31 / ((key >> 33) + 1)) is at most 2^31 * 2^31, which fits
 * an int64_t and is exact in a double.
 */
int32_t
route_jump(uint64_t hash, int32_t n)
{
	int64_t		b = -1;
	int64_t		j = 0;

	while (j < n)
	{
		b = j;
		hash = hash * JUMP_LCG_MULTIPLIER + 1;
		j = (int64_t) ((double) (b + 1) *
					   ((double) (INT64_C(1) << 31) / (double) ((hash >> 33) + 1)));
	}
	return (int32_t) b;
}

/* node_hash is the per-node hash of a key: XXH64(le64(key_hash), seed) */
static inline uint64_t
node_hash(uint64_t key_hash, uint64_t node_seed)
{
	unsigned char buf[8];

	store_le64(buf, key_hash);
	return (uint64_t) XXH64(buf, sizeof(buf), node_seed);
}

/*
 * score_of turns a node hash into weight / -ln(u).  For the largest 53-bit
 * hashes, h + 0.5 rounds up to 2^53 and u to 1: the score is then taken to
 * be its limit, +infinity (a division would give -infinity).
 */
static inline double
score_of(uint64_t h, double weight)
{
	double		u = ((double) (h >> SCORE_SHIFT) + 0.5) / SCORE_SCALE;

	if (u >= 1.0)
		return HUGE_VAL;
	return weight / -log(u);
}

double
route_score(uint64_t key_hash, uint64_t node_seed, double weight)
{
	return score_of(node_hash(key_hash, node_seed), weight);
}

/* name_cmp orders names bytewise, a shorter prefix first (like COLLATE "C") */
static int
name_cmp(const route_node *a, const route_node *b)
{
	size_t		len = a->name_len < b->name_len ? a->name_len : b->name_len;
	int			c = memcmp(a->name, b->name, len);

	if (c != 0)
		return c;
	return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static int
by_name(const void *a, const void *b)
{
	return name_cmp(a, b);
}

/* heaviest first: the likeliest winners are scored first (see route_pick) */
static int
by_weight_then_name(const void *a, const void *b)
{
	const route_node *x = a;
	const route_node *y = b;

	if (x->weight != y->weight)
		return x->weight > y->weight ? -1 : 1;
	return name_cmp(x, y);
}

route_status
route_map_prepare(route_node *nodes, int n, int *bad)
{
	if (n <= 0)
		return ROUTE_EMPTY;

	for (int i = 0; i < n; i++)
	{
		*bad = i;
		if (nodes[i].name_len == 0)
			return ROUTE_BAD_NAME;
		/* written so that NaN fails too: every comparison with NaN is false */
		if (!(nodes[i].weight >= ROUTE_MIN_WEIGHT && nodes[i].weight <= ROUTE_MAX_WEIGHT))
			return ROUTE_BAD_WEIGHT;
		nodes[i].seed = route_hash64(nodes[i].name, nodes[i].name_len);
	}

	qsort(nodes, (size_t) n, sizeof(route_node), by_name);
	for (int i = 1; i < n; i++)
	{
		if (name_cmp(&nodes[i - 1], &nodes[i]) == 0)
		{
			*bad = i;
			return ROUTE_DUPLICATE_NAME;
		}
	}

	qsort(nodes, (size_t) n, sizeof(route_node), by_weight_then_name);
	return ROUTE_OK;
}

/*
 * route_pick: the winner is the node with the highest score; among equal
 * scores, the one with the larger hash; then the one whose name sorts
 * first.  Three shortcuts keep it cheap, none of which changes the answer:
 *	- within a run of equal weights the score never falls as the hash grows
 *	  (log and division are monotonic), so the run's best node is its first
 *	  node with the largest hash, and only it needs a logarithm;
 *	- a map whose weights are all equal needs no logarithm at all;
 *	- since -ln(u) >= 1 - u, a run's score is at most w / (1 - u); a run
 *	  whose bound is below the best score so far cannot win and is not
 *	  scored.  Runs come heaviest first, so good scores come early.
 */
int
route_pick(const route_node *nodes, int n, uint64_t key_hash)
{
	unsigned char buf[8];
	int			best = -1;
	double		best_score = 0.0;
	uint64_t	best_h = 0;
	int			i = 0;

	store_le64(buf, key_hash);
	while (i < n)
	{
		double		weight = nodes[i].weight;
		int			cand = i;
		uint64_t	cand_h = (uint64_t) XXH64(buf, sizeof(buf), nodes[i].seed) >> SCORE_SHIFT;
		double		score;

		for (i++; i < n && nodes[i].weight == weight; i++)
		{
			uint64_t	h = (uint64_t) XXH64(buf, sizeof(buf), nodes[i].seed) >> SCORE_SHIFT;

			if (h > cand_h)
			{
				cand = i;
				cand_h = h;
			}
		}

		/* one run only: its best node wins without a score */
		if (best < 0 && i == n)
			return cand;
		/*
		 * The bound, u = (cand_h + 0.5) / 2^53, widened by BOUND_SLACK so
		 * that rounding in log() and the divisions can never make a real
		 * score exceed it.
		 */
		if (best >= 0 &&
			weight / (1.0 - ((double) cand_h + 0.5) / SCORE_SCALE) * BOUND_SLACK < best_score)
			continue;

		score = score_of(cand_h << SCORE_SHIFT, weight);
		if (best < 0 || score > best_score ||
			(score == best_score &&
			 (cand_h > best_h ||
			  (cand_h == best_h && name_cmp(&nodes[cand], &nodes[best]) < 0))))
		{
			best = cand;
			best_score = score;
			best_h = cand_h;
		}
	}
	return best;
}
