/*-------------------------------------------------------------------------
 *
 * route_methods.c
 *	  Weighted rendezvous hashing, as route() does it (src/routing.c),
 *	  against a consistent-hash ring with virtual nodes: balance, cost,
 *	  memory and movement when a node is added, printed as one table.
 *
 * The issue asked us to choose between the two and to justify the choice
 * with measurements; this program is that measurement (test/bench/
 * route_methods.sh builds and runs it).  It uses no PostgreSQL: it links
 * the pure cores src/routing.c (route_map_prepare, route_pick) and
 * src/base62.c (to make the keys), and builds the ring here with XXH64,
 * the hash route() uses too.
 *
 * Keys are the 7-character base62 codes of KEY_COUNT consecutive ids, and a
 * key's hash is route_hash64 of its code, as shorturl.route(code) computes
 * it.  Both methods are timed from that key hash to the chosen node; the
 * key hash itself is timed apart, since both pay it.
 *
 * The ring: a node of weight w gets round(w * V) points, point i at
 * XXH64(name "#" i, seed 0); a key goes to the first point at or after its
 * hash, wrapping around.  Besides the share of the KEY_COUNT keys, the
 * ring's exact share (the arcs each node owns, as a fraction of 2^64) is
 * given, which has no sampling noise: it is the imbalance the ring has by
 * construction.  Rendezvous has none by construction (a node's exact share
 * is w / sum(w)), so its measured deviation is sampling noise only.
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base62.h"
#include "bench_timing.h"
#include "routing.h"

/* 300,000 keys, as the issue asks: enough that a share is known to ~0.05 pp */
#define KEY_COUNT		300000

/* 62^6, the first id whose code has 7 digits, so every key is 7 characters */
#define KEY_FIRST_ID	INT64_C(56800235584)
#define KEY_WIDTH		7

/* Timing: passes over all keys per repetition, and repetitions (median) */
#define TIMING_PASSES	3
#define TIMING_REPS		7

/* The largest map: 64 nodes, plus the one added to measure movement */
#define MAX_NODES		65
#define NAME_SIZE		16

/* How many points per unit of weight the rings get */
static const int ring_vnodes[] = {16, 64, 256, 1024};

#define N_VNODES		((int) (sizeof(ring_vnodes) / sizeof(ring_vnodes[0])))

static const int map_sizes[] = {4, 16, 64};

#define N_SIZES			((int) (sizeof(map_sizes) / sizeof(map_sizes[0])))

typedef enum weight_pattern
{
	WEIGHTS_EQUAL,				/* every node 1 */
	WEIGHTS_CYCLE,				/* 1, 2, 3, 4, 1, 2, ... */
	WEIGHTS_DISTINCT			/* 1 + i/n: all different, route_pick's worst case */
} weight_pattern;

static const char *const pattern_names[] = {"equal", "1..4", "distinct"};

#define N_PATTERNS		3

/* node names shard01, shard02, ...; a node's id is its index here */
static char node_names[MAX_NODES][NAME_SIZE];

static uint64_t key_hashes[KEY_COUNT];

/* the owner (node id) of every key under a map, before and after adding */
static int	owner_before[KEY_COUNT];
static int	owner_after[KEY_COUNT];

/* keeps the timed loops from being optimised away */
static volatile uint64_t sink;

/* ---------------------------------------------------------------------
 * Keys, weights, statistics
 * ---------------------------------------------------------------------
 */

/* make_keys fills key_hashes with route_hash64 of KEY_COUNT 7-digit codes */
static void
make_keys(void)
{
	for (int k = 0; k < KEY_COUNT; k++)
	{
		char		code[BASE62_MAX_WIDTH];
		size_t		len = 0;

		if (base62_encode(KEY_FIRST_ID + k, KEY_WIDTH, code, &len) != BASE62_OK)
		{
			fprintf(stderr, "route_methods: cannot encode key %d\n", k);
			exit(1);
		}
		key_hashes[k] = route_hash64(code, len);
	}
}

/* weight_of is the weight of node i (0-based) in a map of n under pattern p */
static double
weight_of(weight_pattern p, int i, int n)
{
	switch (p)
	{
		case WEIGHTS_EQUAL:
			return 1.0;
		case WEIGHTS_CYCLE:
			return 1.0 + i % 4;
		case WEIGHTS_DISTINCT:
			return 1.0 + (double) i / n;
	}
	return 1.0;
}

/*
 * Balance of an assignment: the largest gap between a node's share and its
 * target w / sum(w), in percentage points and as a percentage of the target.
 */
typedef struct balance
{
	double		dev_pp;
	double		dev_rel;
} balance;

static balance
balance_of(const double *share, const double *weights, int n)
{
	double		total = 0.0;
	balance		b = {0.0, 0.0};

	for (int i = 0; i < n; i++)
		total += weights[i];
	for (int i = 0; i < n; i++)
	{
		double		target = weights[i] / total;
		double		gap = fabs(share[i] - target);

		if (gap * 100.0 > b.dev_pp)
			b.dev_pp = gap * 100.0;
		if (gap / target * 100.0 > b.dev_rel)
			b.dev_rel = gap / target * 100.0;
	}
	return b;
}

/* key_shares turns owners of the keys into each node's share of them */
static void
key_shares(const int *owner, int n, double *share)
{
	long		count[MAX_NODES] = {0};

	for (int k = 0; k < KEY_COUNT; k++)
		count[owner[k]]++;
	for (int i = 0; i < n; i++)
		share[i] = (double) count[i] / KEY_COUNT;
}

/* ---------------------------------------------------------------------
 * Rendezvous, through the extension's own core
 * ---------------------------------------------------------------------
 */
typedef struct rv_map
{
	route_node	nodes[MAX_NODES];
	int			n;
} rv_map;

/* rv_build prepares a map of nodes 0..n) with the given weights */
static void
rv_build(rv_map *map, const double *weights, int n)
{
	int			bad = 0;

	for (int i = 0; i < n; i++)
	{
		map->nodes[i].name = node_names[i];
		map->nodes[i].name_len = strlen(node_names[i]);
		map->nodes[i].weight = weights[i];
	}
	map->n = n;
	if (route_map_prepare(map->nodes, n, &bad) != ROUTE_OK)
	{
		fprintf(stderr, "route_methods: bad map (node %d)\n", bad);
		exit(1);
	}
}

/* rv_node_id maps a position in the prepared (sorted) map to a node id */
static int
rv_node_id(const rv_map *map, int pos)
{
	return (int) ((map->nodes[pos].name - node_names[0]) / NAME_SIZE);
}

/* rv_assign records the node id route_pick chooses for every key */
static void
rv_assign(const rv_map *map, int *owner)
{
	for (int k = 0; k < KEY_COUNT; k++)
		owner[k] = rv_node_id(map, route_pick(map->nodes, map->n, key_hashes[k]));
}

/* rv_pass times one repetition: ns per lookup over TIMING_PASSES passes */
static double
rv_pass(const rv_map *map)
{
	uint64_t	acc = 0;
	double		t0 = now_ns();
	double		ns;

	for (int p = 0; p < TIMING_PASSES; p++)
		for (int k = 0; k < KEY_COUNT; k++)
			acc += (uint64_t) route_pick(map->nodes, map->n, key_hashes[k]);
	ns = (now_ns() - t0) / ((double) TIMING_PASSES * KEY_COUNT);
	sink += acc;
	return ns;
}

/* ---------------------------------------------------------------------
 * The ring
 * ---------------------------------------------------------------------
 */
typedef struct ring_point
{
	uint64_t	hash;
	int			owner;
} ring_point;

/* points sorted by hash, and their owners, in two arrays: 12 bytes a point */
typedef struct ring
{
	uint64_t   *hashes;
	uint32_t   *owners;
	size_t		len;
} ring;

static int
cmp_point(const void *a, const void *b)
{
	const ring_point *x = a;
	const ring_point *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	/* a 64-bit collision is all but impossible; break it by node anyway */
	return (x->owner > y->owner) - (x->owner < y->owner);
}

/* ring_build places round(w * vnodes) points per node of nodes 0..n) */
static void
ring_build(ring *r, const double *weights, int n, int vnodes)
{
	size_t		len = 0;
	size_t		at = 0;
	ring_point *pts;

	for (int i = 0; i < n; i++)
		len += (size_t) lround(weights[i] * vnodes);
	pts = malloc(len * sizeof(ring_point));
	r->hashes = malloc(len * sizeof(uint64_t));
	r->owners = malloc(len * sizeof(uint32_t));
	if (pts == NULL || r->hashes == NULL || r->owners == NULL)
	{
		fprintf(stderr, "route_methods: out of memory\n");
		exit(1);
	}

	for (int i = 0; i < n; i++)
	{
		long		count = lround(weights[i] * vnodes);

		for (long v = 0; v < count; v++)
		{
			char		label[NAME_SIZE + 24];
			int			label_len = snprintf(label, sizeof(label), "%s#%ld",
											 node_names[i], v);

			pts[at].hash = (uint64_t) XXH64(label, (size_t) label_len, 0);
			pts[at].owner = i;
			at++;
		}
	}
	qsort(pts, len, sizeof(ring_point), cmp_point);
	for (size_t j = 0; j < len; j++)
	{
		r->hashes[j] = pts[j].hash;
		r->owners[j] = (uint32_t) pts[j].owner;
	}
	r->len = len;
	free(pts);
}

static void
ring_free(ring *r)
{
	free(r->hashes);
	free(r->owners);
}

/*
 * ring_pick: the owner of the first point at or after the key's hash, or of
 * the first point if there is none (the ring wraps).  Kept out of line, as
 * route_pick is from this file, so that neither is inlined into its loop.
 */
static __attribute__((noinline)) int
ring_pick(const ring *r, uint64_t key_hash)
{
	size_t		lo = 0;
	size_t		hi = r->len;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (r->hashes[mid] < key_hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (int) r->owners[lo == r->len ? 0 : lo];
}

/*
 * ring_exact_shares: each node's share of the hash space, the arcs ending
 * at its points; the arc before the first point wraps from the last one.
 */
static void
ring_exact_shares(const ring *r, int n, double *share)
{
	for (int i = 0; i < n; i++)
		share[i] = 0.0;
	for (size_t j = 0; j < r->len; j++)
	{
		uint64_t	prev = r->hashes[j == 0 ? r->len - 1 : j - 1];

		/* unsigned subtraction wraps, which is what the first arc needs */
		share[r->owners[j]] += (double) (r->hashes[j] - prev) / 18446744073709551616.0;
	}
}

/* ring_assign records the node id the ring chooses for every key */
static void
ring_assign(const ring *r, int *owner)
{
	for (int k = 0; k < KEY_COUNT; k++)
		owner[k] = ring_pick(r, key_hashes[k]);
}

/* ring_pass times one repetition: ns per lookup over TIMING_PASSES passes */
static double
ring_pass(const ring *r)
{
	uint64_t	acc = 0;
	double		t0 = now_ns();
	double		ns;

	for (int p = 0; p < TIMING_PASSES; p++)
		for (int k = 0; k < KEY_COUNT; k++)
			acc += (uint64_t) ring_pick(r, key_hashes[k]);
	ns = (now_ns() - t0) / ((double) TIMING_PASSES * KEY_COUNT);
	sink += acc;
	return ns;
}

/* ---------------------------------------------------------------------
 * The table
 * ---------------------------------------------------------------------
 */

/* One row: a method over one map, and what adding one node does to it */
typedef struct row
{
	const char *method;
	int			vnodes;			/* ring only */
	size_t		points;			/* ring only */
	size_t		memory;			/* bytes */
	double		ns;
	balance		keys;			/* over the KEY_COUNT keys */
	balance		exact;			/* ring only: arcs */
	double		moved;			/* fraction of keys that changed node */
	int			all_to_new;		/* did every moved key go to the new node? */
	double		new_share;		/* new node's share of keys / its target */
} row;

/*
 * movement compares owner_before and owner_after when node n (the new one,
 * weight new_weight) joins a map of total weight total.
 */
static void
movement(row *out, int n, double new_weight, double total)
{
	long		moved = 0;
	long		to_new = 0;
	long		on_new = 0;

	for (int k = 0; k < KEY_COUNT; k++)
	{
		if (owner_after[k] != owner_before[k])
		{
			moved++;
			if (owner_after[k] == n)
				to_new++;
		}
		if (owner_after[k] == n)
			on_new++;
	}
	out->moved = (double) moved / KEY_COUNT;
	out->all_to_new = (moved == to_new);
	out->new_share = ((double) on_new / KEY_COUNT) /
		(new_weight / (total + new_weight));
}

static void
print_header(void)
{
	printf("| nodes | weights | method | points | memory | ns/lookup "
		   "| max dev, keys (pp) | worst node, keys | max dev, exact (pp) "
		   "| +1 node: keys moved | ideal | all to new node | new node's share / target |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void
print_row(int n, weight_pattern p, const row *r, double ideal_moved)
{
	char		memory[32];
	char		points[32];
	char		exact[32];
	char		method[32];

	if (r->memory >= 1024 * 1024)
		snprintf(memory, sizeof(memory), "%.1f MiB", r->memory / 1048576.0);
	else if (r->memory >= 1024)
		snprintf(memory, sizeof(memory), "%.1f KiB", r->memory / 1024.0);
	else
		snprintf(memory, sizeof(memory), "%zu B", r->memory);
	if (r->vnodes > 0)
	{
		snprintf(method, sizeof(method), "ring V=%d", r->vnodes);
		snprintf(points, sizeof(points), "%zu", r->points);
		snprintf(exact, sizeof(exact), "%.3f", r->exact.dev_pp);
	}
	else
	{
		snprintf(method, sizeof(method), "%s", r->method);
		snprintf(points, sizeof(points), "-");
		snprintf(exact, sizeof(exact), "0 (by construction)");
	}
	printf("| %d | %s | %s | %s | %s | %.1f | %.3f | %.1f%% | %s | %.2f%% | %.2f%% | %s | %.3f |\n",
		   n, pattern_names[p], method, points, memory, r->ns,
		   r->keys.dev_pp, r->keys.dev_rel, exact,
		   r->moved * 100.0, ideal_moved * 100.0,
		   r->all_to_new ? "yes" : "NO", r->new_share);
}

/*
 * time_methods times rendezvous (method 0) and the rings (1..N_VNODES) in
 * interleaved repetitions, the first method of each repetition rotating, so
 * that drift (the other core, frequency changes) spreads over all alike;
 * ns[m] is the median for method m.
 */
static void
time_methods(const rv_map *map, const ring *rings, double *ns)
{
	double		samples[1 + N_VNODES][TIMING_REPS];

	for (int r = 0; r < TIMING_REPS; r++)
		for (int i = 0; i <= N_VNODES; i++)
		{
			int			m = (i + r) % (1 + N_VNODES);

			samples[m][r] = m == 0 ? rv_pass(map) : ring_pass(&rings[m - 1]);
		}
	for (int m = 0; m <= N_VNODES; m++)
		ns[m] = median_of(samples[m], TIMING_REPS);
}

/* run_map measures rendezvous and every ring over one map, and prints them */
static void
run_map(int n, weight_pattern p)
{
	double		weights[MAX_NODES];
	double		share[MAX_NODES];
	double		ns[1 + N_VNODES];
	double		total = 0.0;
	double		new_weight = weight_of(p, n, n);
	double		ideal_moved;
	row			r;
	rv_map	   *map = malloc(sizeof(rv_map));
	ring		rings[N_VNODES];

	if (map == NULL)
	{
		fprintf(stderr, "route_methods: out of memory\n");
		exit(1);
	}
	for (int i = 0; i <= n; i++)
		weights[i] = weight_of(p, i, n);
	for (int i = 0; i < n; i++)
		total += weights[i];
	ideal_moved = new_weight / (total + new_weight);

	rv_build(map, weights, n);
	for (int v = 0; v < N_VNODES; v++)
		ring_build(&rings[v], weights, n, ring_vnodes[v]);
	time_methods(map, rings, ns);

	/* rendezvous */
	memset(&r, 0, sizeof(r));
	r.method = "rendezvous";
	r.memory = (size_t) n * (sizeof(route_node) + strlen(node_names[0]));
	r.ns = ns[0];
	rv_assign(map, owner_before);
	key_shares(owner_before, n, share);
	r.keys = balance_of(share, weights, n);
	rv_build(map, weights, n + 1);
	rv_assign(map, owner_after);
	movement(&r, n, new_weight, total);
	print_row(n, p, &r, ideal_moved);

	/* rings */
	for (int v = 0; v < N_VNODES; v++)
	{
		ring		after;

		memset(&r, 0, sizeof(r));
		r.method = "ring";
		r.vnodes = ring_vnodes[v];
		r.points = rings[v].len;
		r.memory = rings[v].len * (sizeof(uint64_t) + sizeof(uint32_t));
		r.ns = ns[1 + v];
		ring_assign(&rings[v], owner_before);
		key_shares(owner_before, n, share);
		r.keys = balance_of(share, weights, n);
		ring_exact_shares(&rings[v], n, share);
		r.exact = balance_of(share, weights, n);
		ring_build(&after, weights, n + 1, r.vnodes);
		ring_assign(&after, owner_after);
		movement(&r, n, new_weight, total);
		print_row(n, p, &r, ideal_moved);
		ring_free(&rings[v]);
		ring_free(&after);
	}
	free(map);
}

/* key_hash_ns times route_hash64 of a 7-character code, which both pay */
static double
key_hash_ns(void)
{
	double		ns[TIMING_REPS];
	char		codes[KEY_WIDTH * 1024];

	for (int i = 0; i < 1024; i++)
	{
		size_t		len = 0;

		base62_encode(KEY_FIRST_ID + i * INT64_C(7919), KEY_WIDTH,
					  codes + i * KEY_WIDTH, &len);
	}
	for (int r = 0; r < TIMING_REPS; r++)
	{
		uint64_t	acc = 0;
		double		t0 = now_ns();

		for (int k = 0; k < TIMING_PASSES * KEY_COUNT; k++)
			acc += route_hash64(codes + (k & 1023) * KEY_WIDTH, KEY_WIDTH);
		ns[r] = (now_ns() - t0) / ((double) TIMING_PASSES * KEY_COUNT);
		sink += acc;
	}
	return median_of(ns, TIMING_REPS);
}

int
main(void)
{
	for (int i = 0; i < MAX_NODES; i++)
		snprintf(node_names[i], NAME_SIZE, "shard%02d", i + 1);
	make_keys();

	printf("%d keys: the 7-character base62 codes of ids from 62^6 on, hashed with route_hash64 (XXH64)\n",
		   KEY_COUNT);
	printf("ns/lookup: key hash to node, median of %d interleaved repetitions of %d lookups; "
		   "a key's hash itself costs %.1f ns more, for either method\n\n",
		   TIMING_REPS, TIMING_PASSES * KEY_COUNT, key_hash_ns());
	print_header();
	for (int s = 0; s < N_SIZES; s++)
		for (int p = 0; p < N_PATTERNS; p++)
			run_map(map_sizes[s], (weight_pattern) p);

	printf("\nmax dev, keys: the largest gap between a node's share of the keys and its target w/sum(w), "
		   "in percentage points; worst node: that gap relative to the node's target.\n");
	printf("Sampling noise alone: one standard deviation of a node's share is sqrt(t(1-t)/%d),",
		   KEY_COUNT);
	for (int s = 0; s < N_SIZES; s++)
	{
		double		t = 1.0 / map_sizes[s];

		printf(" %.3f pp for t = 1/%d%s", 100.0 * sqrt(t * (1 - t) / KEY_COUNT),
			   map_sizes[s], s + 1 < N_SIZES ? "," : ";");
	}
	printf(" the largest of n such gaps is typically 2 to 3 of them.\n");
	printf("max dev, exact: the ring's own imbalance, from the arcs each node owns (no sampling).\n");
	printf("+1 node: the next node (weight as the pattern continues) joins; "
		   "ideal = its target share, the least that must move.\n");
	return 0;
}
