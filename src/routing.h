/*-------------------------------------------------------------------------
 *
 * routing.h
 *	  Pure shard-routing core: the public 64-bit hash, modulo and jump
 *	  consistent hashing, and weighted rendezvous hashing over a shard map.
 *
 * Every function here is a fixed, documented formula over bytes (see the
 * README's "Shard routing" chapter), so applications can compute the same
 * answer in any language.  No PostgreSQL headers, no allocation; the
 * SQL-callable wrappers and the per-backend shard-map cache live in
 * routing_sql.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_ROUTING_H
#define SHORTURL_ROUTING_H

#include <stddef.h>
#include <stdint.h>

/* route_hash64 is XXH64 with seed 0 over len bytes */
extern uint64_t route_hash64(const void *data, size_t len);

/* route_hash64_int8 hashes the 8-byte little-endian form of v */
extern uint64_t route_hash64_int8(int64_t v);

/* route_mod is hash modulo n (n >= 1) */
extern uint32_t route_mod(uint64_t hash, uint32_t n);

/* route_jump is Lamping & Veach's jump consistent hash into n >= 1 buckets */
extern int32_t route_jump(uint64_t hash, int32_t n);

/*
 * One node of a weighted shard map.  The caller fills name, name_len and
 * weight; route_map_prepare fills seed.  name need not be NUL-terminated.
 */
typedef struct route_node
{
	const char *name;
	size_t		name_len;
	double		weight;
	uint64_t	seed;			/* route_hash64(name) */
} route_node;

/*
 * Weights are bounded so that scores are normal doubles: with -ln(u)
 * between about 1e-16 and 37.4, scores stay between 2.7e-11 and 9e24 (but
 * for u rounding to 1, once in 2^53, whose score is +infinity), and shares
 * follow weights.  A map's largest and smallest weights can
 * still differ by a factor of 10^18.
 */
#define ROUTE_MIN_WEIGHT	1e-9
#define ROUTE_MAX_WEIGHT	1e9

typedef enum route_status
{
	ROUTE_OK = 0,
	ROUTE_EMPTY,				/* no nodes */
	ROUTE_BAD_NAME,				/* an empty name */
	ROUTE_DUPLICATE_NAME,		/* two nodes share a name */
	ROUTE_BAD_WEIGHT			/* a weight outside [ROUTE_MIN_WEIGHT, ROUTE_MAX_WEIGHT] */
} route_status;

/*
 * route_map_prepare validates nodes[0..n), computes their seeds and sorts
 * them in place, heaviest first and by name within a weight, so that
 * route_pick can treat nodes of equal weight as one group.  On failure *bad is the index of an offending
 * node in nodes as they are on return (their order is then unspecified).
 */
extern route_status route_map_prepare(route_node *nodes, int n, int *bad);

/*
 * route_pick returns the index, in a map prepared by route_map_prepare, of
 * the node that owns a key whose hash64 is key_hash: the highest score;
 * among equal scores the larger node hash (h >> 11); then the name that
 * sorts first.
 */
extern int	route_pick(const route_node *nodes, int n, uint64_t key_hash);

/*
 * route_score is the rendezvous score of one node for one key:
 * weight / -ln(u), u = ((h >> 11) + 0.5) / 2^53,
 * h = XXH64(8-byte little-endian key_hash, seed = node seed); +infinity
 * when u rounds to 1.
 */
extern double route_score(uint64_t key_hash, uint64_t node_seed, double weight);

#endif							/* SHORTURL_ROUTING_H */
