/*-------------------------------------------------------------------------
 *
 * cache_policy.c
 *	  Hit rates of the URL cache's candidate policies on simulated traffic:
 *	  LRU, CLOCK, CLOCK with a 2-bit frequency, CLOCK with TinyLFU
 *	  admission (src/tinylfu.c) and a light W-TinyLFU, for caches of 1% to
 *	  20% of the links, printed as one table and written as a data file for
 *	  the chart.
 *
 * Issue 17 asks for admission and eviction that keep hot links and let
 * one-hit wonders pass, justified by a measured hit rate on Zipf traffic;
 * this program is that measurement (test/bench/cache_policy.sh builds and
 * runs it).  It simulates the policies only, not the shared-memory cache:
 * the same sequence of requests is replayed against each policy and cache
 * size, and a request is a hit if its link is cached when it arrives.
 *
 * Traffic: KEYS links.  A request picks a rank r from 1 to KEYS, with
 * probability proportional to 1 / r^s (Zipf, by binary search in the exact
 * cumulative distribution, from a seeded splitmix64 stream) or uniformly,
 * and asks for link r - 1.  Five workloads:
 *	uniform		every link equally likely
 *	zipf1.001	s = 1.001, the long tail of a link shortener
 *	zipf1.2		s = 1.2, a few links take most clicks
 *	onehit		zipf1.001, but 30% of requests are for links never seen
 *				before or again (crawlers, scanners, a new link opened once)
 *	churn		zipf1.001 whose hot links change every CHURN_EVERY requests
 *				(rank r asks for link (r - 1 + phase x CHURN_SHIFT) mod KEYS,
 *				so each phase's C hottest links are new)
 * Each policy first sees WARMUP requests, uncounted, then REQUESTS counted
 * ones.
 *
 * Policies, for a cache of C entries:
 *	LRU			a doubly linked list; a hit moves to the front, a miss evicts
 *				the back
 *	CLOCK		second chance: a reference bit, set on a hit and on
 *				insertion; the hand clears set bits and evicts at the first
 *				clear one
 *	CLOCK-2bit	a usage count from 0 to 3 instead of the bit (PostgreSQL's
 *				buffer sweep, with 3 for its 5): a hit adds 1, the hand takes
 *				1 off, evicts at 0; insertion sets 1
 *	TinyLFU		CLOCK, plus a sketch of C counters a row (tlfu_init(C), 2
 *				bytes an entry) that counts every request; when the cache is
 *				full, the link that missed replaces the entry the hand stops
 *				at only if tlfu_admit(link, entry) says so, else it is not
 *				cached.  Either way the hand moves on: if it stayed, one
 *				entry that the sketch still remembers as hot would refuse
 *				every candidate until the next aging
 *	TinyLFU-noguard
 *				TinyLFU without the warm exception (random numbers that
 *				never admit by chance): what the flood guard costs
 *	TinyLFU-wait
 *				TinyLFU whose hand waits at a victim that refused a
 *				candidate: what moving on gains
 *	W-TinyLFU	Caffeine's scheme, lightened: an LRU window of 1% of C takes
 *				every miss; the link it pushes out goes through TinyLFU's
 *				admission into a CLOCK main area of the other 99%, as above
 *				(Caffeine's main area is a segmented LRU, and it tunes the
 *				window's size to the traffic)
 *	best static	not a policy: the hit rate of a cache that always holds the
 *				C most probable links (of the current phase, for churn).  On
 *				traffic whose requests are independent, as here, no policy
 *				that cannot see the future does better on average.
 * Admissions draw their random numbers from a splitmix64 stream of their
 * own.
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_timing.h"
#include "tinylfu.h"

/* A million links, as in longtail.sh */
#define KEYS			1000000

/* Requests counted, and requests before them (twice the largest sample) */
#define REQUESTS		10000000
#define WARMUP			5000000

/* onehit: the share of requests for links seen once */
#define ONEHIT_SHARE	0.30

/*
 * churn: requests per phase, and how far a phase moves the ranks: more
 * than the largest cache, so each phase's hottest links are all new, and
 * coprime to KEYS, so no phase repeats another
 */
#define CHURN_EVERY		1000000
#define CHURN_SHIFT		300007

/* Seeds of the traffic and of admission's random numbers */
#define TRAFFIC_SEED	UINT64_C(20261202)
#define ADMIT_SEED		UINT64_C(17)

/* Cache sizes, in thousandths of KEYS */
static const int size_permille[] = {10, 50, 100, 200};
#define NSIZES			(int) (sizeof(size_permille) / sizeof(size_permille[0]))

typedef enum policy
{
	P_LRU,
	P_CLOCK,
	P_CLOCK2,
	P_TINYLFU,
	P_TINYLFU_NOGUARD,
	P_TINYLFU_WAIT,
	P_WTINYLFU,
	NPOLICIES
} policy;

static const char *const policy_names[NPOLICIES] = {
	"LRU", "CLOCK", "CLOCK-2bit", "TinyLFU", "TinyLFU-noguard", "TinyLFU-wait",
	"W-TinyLFU",
};

typedef struct workload
{
	const char *name;
	double		s;				/* Zipf exponent; 0: uniform */
	double		onehit;			/* share of requests for links seen once */
	bool		churn;			/* hot links move every CHURN_EVERY */
} workload;

static const workload workloads[] = {
	{"uniform", 0.0, 0.0, false},
	{"zipf1.001", 1.001, 0.0, false},
	{"zipf1.2", 1.2, 0.0, false},
	{"onehit", 1.001, ONEHIT_SHARE, false},
	{"churn", 1.001, 0.0, true},
};
#define NWORKLOADS		(int) (sizeof(workloads) / sizeof(workloads[0]))

#define TOTAL			(WARMUP + REQUESTS)

/* The requests of one workload, and the largest link id they name + 1 */
static uint32_t *trace;
static uint32_t trace_keys;

/* Link -> slot of the cache, or -1; sized for trace_keys */
static int32_t *slot_of;

/* The cumulative distribution of ranks (cdf[r - 1] = P(rank <= r)) */
static double *cdf;

/* splitmix64 advances *state and returns the next number of its stream */
static inline uint64_t
splitmix64(uint64_t *state)
{
	uint64_t	z = (*state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/*
 * link_hash stands for hash64 of a link's code: a bijective mix of the id,
 * so distinct links never share a hash
 */
static inline uint64_t
link_hash(uint32_t key)
{
	uint64_t	state = key;

	return splitmix64(&state);
}

/* uniform01 is a double in [0, 1) from the top 53 bits */
static inline double
uniform01(uint64_t *state)
{
	return (double) (splitmix64(state) >> 11) * 0x1.0p-53;
}

/* below returns a number in [0, n) */
static inline uint32_t
below(uint64_t *state, uint32_t n)
{
	return (uint32_t) (((unsigned __int128) splitmix64(state) * n) >> 64);
}

/* build_cdf fills cdf for exponent s (0: uniform) */
static void
build_cdf(double s)
{
	double		sum = 0.0;

	for (uint32_t r = 1; r <= KEYS; r++)
	{
		sum += s == 0.0 ? 1.0 : pow((double) r, -s);
		cdf[r - 1] = sum;
	}
	for (uint32_t r = 0; r < KEYS; r++)
		cdf[r] /= sum;
	cdf[KEYS - 1] = 1.0;
}

/* zipf_rank is the rank (0-based) whose cumulative probability covers u */
static inline uint32_t
zipf_rank(double u)
{
	uint32_t	lo = 0;
	uint32_t	hi = KEYS - 1;

	while (lo < hi)
	{
		uint32_t	mid = lo + (hi - lo) / 2;

		if (cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* make_trace fills trace with the requests of w */
static void
make_trace(const workload *w)
{
	uint64_t	rng = TRAFFIC_SEED;
	uint32_t	next_new = KEYS;

	if (w->s != 0.0)
		build_cdf(w->s);
	for (uint32_t i = 0; i < TOTAL; i++)
	{
		uint32_t	rank;

		if (w->onehit > 0.0 && uniform01(&rng) < w->onehit)
		{
			trace[i] = next_new++;
			continue;
		}
		rank = w->s == 0.0 ? below(&rng, KEYS) : zipf_rank(uniform01(&rng));
		if (w->churn)
			rank = (uint32_t) ((rank + (uint64_t) (i / CHURN_EVERY) * CHURN_SHIFT) % KEYS);
		trace[i] = rank;
	}
	trace_keys = next_new;
}

/*
 * best_static: a cache holding the C most probable links hits with their
 * probability, cdf[C - 1] (as make_trace left it), on the requests that
 * are not one-hit wonders
 */
static double
best_static(const workload *w, uint32_t capacity)
{
	if (w->s == 0.0)
		return (double) capacity / KEYS;
	return cdf[capacity - 1] * (1.0 - w->onehit);
}

static void
reset_slots(void)
{
	memset(slot_of, 0xFF, (size_t) trace_keys * sizeof(int32_t));
}

/* ---------------------------------------------------------------- */
/* LRU                                                               */
/* ---------------------------------------------------------------- */

/* An LRU list over slots [first, first + n), with links in key_of */
typedef struct lru
{
	uint32_t   *prev;
	uint32_t   *next;
	uint32_t	head;			/* most recent; NIL if empty */
	uint32_t	tail;			/* least recent */
} lru;

#define NIL		UINT32_MAX

static void
lru_unlink(lru *l, uint32_t x)
{
	if (l->prev[x] != NIL)
		l->next[l->prev[x]] = l->next[x];
	else
		l->head = l->next[x];
	if (l->next[x] != NIL)
		l->prev[l->next[x]] = l->prev[x];
	else
		l->tail = l->prev[x];
}

static void
lru_push_front(lru *l, uint32_t x)
{
	l->prev[x] = NIL;
	l->next[x] = l->head;
	if (l->head != NIL)
		l->prev[l->head] = x;
	l->head = x;
	if (l->tail == NIL)
		l->tail = x;
}

static void
lru_touch(lru *l, uint32_t x)
{
	if (l->head == x)
		return;
	lru_unlink(l, x);
	lru_push_front(l, x);
}

static uint64_t
run_lru(uint32_t capacity)
{
	uint32_t   *key_of = malloc(capacity * sizeof(uint32_t));
	lru			l = {malloc(capacity * sizeof(uint32_t)),
	malloc(capacity * sizeof(uint32_t)), NIL, NIL};
	uint32_t	used = 0;
	uint64_t	hits = 0;

	reset_slots();
	for (uint32_t i = 0; i < TOTAL; i++)
	{
		uint32_t	key = trace[i];
		int32_t		slot = slot_of[key];
		uint32_t	x;

		if (slot >= 0)
		{
			hits += i >= WARMUP;
			lru_touch(&l, (uint32_t) slot);
			continue;
		}
		if (used < capacity)
			x = used++;
		else
		{
			x = l.tail;
			lru_unlink(&l, x);
			slot_of[key_of[x]] = -1;
		}
		key_of[x] = key;
		slot_of[key] = (int32_t) x;
		lru_push_front(&l, x);
	}
	free(key_of);
	free(l.prev);
	free(l.next);
	return hits;
}

/* ---------------------------------------------------------------- */
/* The CLOCK family                                                  */
/* ---------------------------------------------------------------- */

/* A clock over slots [first, first + n): keys, usage counts, the hand */
typedef struct clock_area
{
	uint32_t	first;
	uint32_t	n;
	uint32_t	used;
	uint32_t	hand;			/* first + offset */
	uint8_t		max_usage;		/* 1: a reference bit; 3: two bits */
} clock_area;

/* clock_victim moves the hand to the first slot whose usage is 0 */
static inline uint32_t
clock_victim(clock_area *c, uint8_t *usage)
{
	while (usage[c->hand] != 0)
	{
		usage[c->hand]--;
		if (++c->hand == c->first + c->n)
			c->hand = c->first;
	}
	return c->hand;
}

static inline void
clock_advance(clock_area *c)
{
	if (++c->hand == c->first + c->n)
		c->hand = c->first;
}

/*
 * run_clock runs CLOCK, CLOCK-2bit or TinyLFU (CLOCK with admission, and
 * its two variants).  The sketch counts every request before the
 * decision, as Caffeine counts a read, so a candidate's estimate includes
 * the request that missed.
 */
static uint64_t
run_clock(uint32_t capacity, policy p)
{
	uint32_t   *key_of = malloc(capacity * sizeof(uint32_t));
	uint8_t    *usage = calloc(capacity, 1);
	clock_area	c = {0, capacity, 0, 0, p == P_CLOCK2 ? 3 : 1};
	tlfu_sketch *s = NULL;
	uint64_t	rng = ADMIT_SEED;
	uint64_t	hits = 0;

	if (p == P_TINYLFU || p == P_TINYLFU_NOGUARD || p == P_TINYLFU_WAIT)
	{
		s = malloc(tlfu_size(capacity));
		tlfu_init(s, capacity);
	}
	reset_slots();
	for (uint32_t i = 0; i < TOTAL; i++)
	{
		uint32_t	key = trace[i];
		int32_t		slot = slot_of[key];
		uint32_t	x;

		if (s != NULL)
			tlfu_increment(s, link_hash(key));
		if (slot >= 0)
		{
			hits += i >= WARMUP;
			if (usage[slot] < c.max_usage)
				usage[slot]++;
			continue;
		}
		if (c.used < capacity)
			x = c.used++;
		else
		{
			x = clock_victim(&c, usage);
			if (s != NULL)
			{
				/* 1 is never 0 modulo TLFU_WARM_ODDS: no admission by chance */
				uint32_t	random = p == P_TINYLFU_NOGUARD ? 1 : (uint32_t) splitmix64(&rng);

				if (!tlfu_admit(s, link_hash(key), link_hash(key_of[x]), random))
				{
					if (p != P_TINYLFU_WAIT)
						clock_advance(&c);
					continue;
				}
			}
			slot_of[key_of[x]] = -1;
			clock_advance(&c);
		}
		key_of[x] = key;
		slot_of[key] = (int32_t) x;
		usage[x] = 1;
	}
	free(key_of);
	free(usage);
	free(s);
	return hits;
}

/*
 * run_wtinylfu: slots [0, window) are the LRU window, [window, capacity)
 * the CLOCK main area.  A miss enters the window; when the window is full,
 * its least recent link leaves it for the main area if there is room, or
 * if tlfu_admit prefers it to the entry the hand stops at, and is dropped
 * otherwise; its window slot takes the new link.
 */
static uint64_t
run_wtinylfu(uint32_t capacity)
{
	uint32_t	window = capacity / 100 > 0 ? capacity / 100 : 1;
	uint32_t   *key_of = malloc(capacity * sizeof(uint32_t));
	uint8_t    *usage = calloc(capacity, 1);
	lru			l = {malloc(window * sizeof(uint32_t)),
	malloc(window * sizeof(uint32_t)), NIL, NIL};
	clock_area	c = {window, capacity - window, 0, window, 1};
	tlfu_sketch *s = malloc(tlfu_size(capacity));
	uint32_t	window_used = 0;
	uint64_t	rng = ADMIT_SEED;
	uint64_t	hits = 0;

	tlfu_init(s, capacity);
	reset_slots();
	for (uint32_t i = 0; i < TOTAL; i++)
	{
		uint32_t	key = trace[i];
		int32_t		slot = slot_of[key];
		uint32_t	x;
		uint32_t	candidate;

		tlfu_increment(s, link_hash(key));
		if (slot >= 0)
		{
			hits += i >= WARMUP;
			if ((uint32_t) slot < window)
				lru_touch(&l, (uint32_t) slot);
			else
				usage[slot] = 1;
			continue;
		}
		if (window_used < window)
		{
			x = window_used++;
			key_of[x] = key;
			slot_of[key] = (int32_t) x;
			lru_push_front(&l, x);
			continue;
		}

		/* the window's least recent link makes room, and is the candidate */
		x = l.tail;
		candidate = key_of[x];
		lru_touch(&l, x);
		key_of[x] = key;
		slot_of[key] = (int32_t) x;

		if (c.used < c.n)
		{
			uint32_t	m = window + c.used++;

			key_of[m] = candidate;
			slot_of[candidate] = (int32_t) m;
			usage[m] = 1;
			continue;
		}
		x = clock_victim(&c, usage);
		if (!tlfu_admit(s, link_hash(candidate), link_hash(key_of[x]),
						(uint32_t) splitmix64(&rng)))
		{
			slot_of[candidate] = -1;
			clock_advance(&c);
			continue;
		}
		slot_of[key_of[x]] = -1;
		key_of[x] = candidate;
		slot_of[candidate] = (int32_t) x;
		usage[x] = 1;
		clock_advance(&c);
	}
	free(key_of);
	free(usage);
	free(l.prev);
	free(l.next);
	free(s);
	return hits;
}

/* ---------------------------------------------------------------- */
/* The table                                                         */
/* ---------------------------------------------------------------- */

/* cpu_seconds is the CPU time this process has used */
static double
cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
run_policy(policy p, uint32_t capacity)
{
	switch (p)
	{
		case P_LRU:
			return run_lru(capacity);
		case P_WTINYLFU:
			return run_wtinylfu(capacity);
		default:
			return run_clock(capacity, p);
	}
}

/* print_header prints the lines above the table, and its head */
static void
print_header(void)
{
	printf("%d links; per workload and policy, %d requests counted after %d of warm-up; "
		   "sketch: tlfu_init(C): %d rows of C counters (rounded up to a power of two) "
		   "of 4 bits, 2 bytes an entry; aging every %d x C counted increments\n",
		   KEYS, REQUESTS, WARMUP, TLFU_ROWS, TLFU_SAMPLE_FACTOR);
	printf("hit rates in %%; best: best static (the C most probable links); "
		   "x LRU, x CLOCK: TinyLFU's hit rate over theirs; "
		   "misses x CLOCK: TinyLFU's misses over CLOCK's (the lookups that reach the table)\n\n");
	printf(" workload  | cache |  best | %5s | %5s | %10s | %7s | %15s | %12s | %9s | x LRU | x CLOCK | misses x CLOCK\n",
		   policy_names[0], policy_names[1], policy_names[2], policy_names[3],
		   policy_names[4], policy_names[5], policy_names[6]);
	printf("-----------+-------+-------+-------+-------+------------+---------+-----------------+--------------+-----------+-------+---------+---------------\n");
}

/*
 * main: "cache_policy header" prints the head of the table;
 * "cache_policy WORKLOAD [DATA]" prints its rows for one workload (so that
 * cache_policy.sh can run workloads side by side) and writes the hit rates
 * to DATA, a line per cache size: size in %, best, then the policies in
 * the order of the table.
 */
int
main(int argc, char **argv)
{
	const workload *w = NULL;
	FILE	   *data = NULL;
	double		started = now_ns();

	if (argc == 2 && strcmp(argv[1], "header") == 0)
	{
		print_header();
		return EXIT_SUCCESS;
	}
	for (int wi = 0; argc >= 2 && wi < NWORKLOADS; wi++)
		if (strcmp(argv[1], workloads[wi].name) == 0)
			w = &workloads[wi];
	if (w == NULL || argc > 3)
	{
		fprintf(stderr, "usage: cache_policy header | cache_policy WORKLOAD [DATA]\n");
		return EXIT_FAILURE;
	}
	if (argc == 3 && (data = fopen(argv[2], "w")) == NULL)
	{
		perror(argv[2]);
		return EXIT_FAILURE;
	}
	trace = malloc((size_t) TOTAL * sizeof(uint32_t));
	slot_of = malloc((size_t) (KEYS + TOTAL) * sizeof(int32_t));
	cdf = malloc((size_t) KEYS * sizeof(double));
	if (trace == NULL || slot_of == NULL || cdf == NULL)
	{
		perror("malloc");
		return EXIT_FAILURE;
	}

	make_trace(w);
	for (int si = 0; si < NSIZES; si++)
	{
		uint32_t	capacity = (uint32_t) ((uint64_t) KEYS * size_permille[si] / 1000);
		double		rate[NPOLICIES];
		double		best = best_static(w, capacity);

		for (int p = 0; p < NPOLICIES; p++)
			rate[p] = (double) run_policy((policy) p, capacity) / REQUESTS;
		printf(" %-9s | %4.0f%% | %5.2f | %5.2f | %5.2f | %10.2f | %7.2f | %15.2f | %12.2f | %9.2f | %5.2f | %7.2f | %14.2f\n",
			   w->name, size_permille[si] / 10.0, 100 * best,
			   100 * rate[P_LRU], 100 * rate[P_CLOCK], 100 * rate[P_CLOCK2],
			   100 * rate[P_TINYLFU], 100 * rate[P_TINYLFU_NOGUARD],
			   100 * rate[P_TINYLFU_WAIT], 100 * rate[P_WTINYLFU],
			   rate[P_TINYLFU] / rate[P_LRU], rate[P_TINYLFU] / rate[P_CLOCK],
			   (1 - rate[P_TINYLFU]) / (1 - rate[P_CLOCK]));
		if (data != NULL)
			fprintf(data, "%g\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\n",
					size_permille[si] / 10.0, 100 * best,
					100 * rate[P_LRU], 100 * rate[P_CLOCK], 100 * rate[P_CLOCK2],
					100 * rate[P_TINYLFU], 100 * rate[P_TINYLFU_NOGUARD],
					100 * rate[P_TINYLFU_WAIT], 100 * rate[P_WTINYLFU]);
	}
	fprintf(stderr, "cache_policy: %s simulated in %.0f s (%.0f s of CPU)\n", w->name,
			(now_ns() - started) / 1e9, cpu_seconds());
	if (data != NULL && fclose(data) != 0)
	{
		perror(argv[2]);
		return EXIT_FAILURE;
	}
	free(trace);
	free(slot_of);
	free(cdf);
	return EXIT_SUCCESS;
}
