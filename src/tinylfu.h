/*-------------------------------------------------------------------------
 *
 * tinylfu.h
 *	  Pure core of the URL cache's admission policy: TinyLFU, a count-min
 *	  sketch of how often each link was asked for lately, and the rule that
 *	  lets a link into a full cache only if it is asked for more often than
 *	  the entry it would push out.
 *
 * The cache's eviction (CLOCK) picks a victim; tinylfu_admit then decides
 * whether the link that missed replaces it or is turned away.  A one-hit
 * wonder estimates 1 and so never evicts an entry that was hit twice: a
 * flood of links clicked once passes by the cache instead of flushing it.
 * Either way the hand should move past the victim: a hand that waits at
 * an entry the sketch still remembers as hot refuses every candidate until
 * the next aging (in the simulation, up to 5 points of hit rate lost when
 * the hot links change).
 * Gil Einziger, Roy Friedman and Ben Manes, "TinyLFU: A Highly Efficient
 * Cache Admission Policy" (ACM ToS 2017, arXiv:1512.00727); Caffeine's
 * FrequencySketch is the model.  test/bench/cache_policy.sh measures the
 * hit rates that justify the choice.
 *
 * The sketch: TLFU_ROWS rows of `counters` 4-bit counters each (the width,
 * normally the number of entries the cache holds).  A link's hash picks
 * one counter per row; its estimate is the least of the four.  Eight
 * counters pack into a uint32_t word, row after row, as Caffeine packs
 * sixteen into a long.  Four bits, not eight: the sketch counts within a
 * sample of W = 10 C increments (aging, below), and TinyLFU's authors show
 * that a link seen W / C = 10 times in a sample is among the C most
 * frequent whatever the others do, so counting past 10 changes no
 * admission.  Eight bits would only halve the counters a given memory
 * holds, and more collisions would blur the estimates of cold links,
 * which is where admission is decided.  The sketch costs 2 bytes per
 * counter of width: 128 kB for a cache of 65,536 entries.
 *
 * Increments are conservative (Estan and Varghese): only the counters that
 * hold the minimum are raised, so a link's estimate is never below its
 * count (until aging halves both, and up to 15) and rises above it less.
 *
 * Aging: after sample_size = 10 x width increments that raised a counter,
 * every counter is halved (TinyLFU's "reset"), and so is the count of
 * increments, so a link popular last hour fades and a new one can win.
 * An increment that raised nothing (the link is at 15 in every row) is not
 * counted, as in Caffeine: a hot link then leaves the sketch untouched, so
 * hits on hot links write no shared memory.
 *
 * Concurrency: the sketch lives in shared memory and every backend updates
 * it without a lock.  Each word is read with an atomic load and written
 * with a compare-and-swap loop (GCC __atomic builtins, relaxed order: no
 * other memory is published through the sketch), so there is no data race
 * and no counter is ever torn or carried into its neighbour.  What a race
 * may do is lose an increment: backends bumping the same link at the same
 * moment all see the same minimum and raise the same counters, so a row
 * above that minimum, which their increments together would have reached,
 * gets one.  The estimate then falls short by the increments that raced;
 * never by a backend's own earlier ones (each starts after its last one
 * raised the minimum), so a link one backend asks for n times estimates
 * at least n, up to 15.  For admission, a slightly low count of a link so
 * hot that backends collide on it costs nothing.  The aging pass is run by
 * one caller alone, the one whose increment brings the count to
 * sample_size, word by word with the same compare-and-swap, so an
 * increment racing with it lands wholly before or wholly after the halving
 * of its word.  Estimates read during a pass mix halved and not yet halved
 * rows; the cache only compares two of them.
 *
 * The core never allocates: the caller provides tlfu_size() bytes (in
 * shared memory, or malloc in the tests) and calls tlfu_init once.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_TINYLFU_H
#define SHORTURL_TINYLFU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rows of the count-min sketch: a link has four counters, as in Caffeine */
#define TLFU_ROWS			4

/* A counter is 4 bits, so it saturates at 15 */
#define TLFU_COUNTER_BITS	4
#define TLFU_COUNTER_MAX	((1u << TLFU_COUNTER_BITS) - 1)
#define TLFU_PER_WORD		(32 / TLFU_COUNTER_BITS)

/*
 * The narrowest sketch, 64 counters a row (128 bytes in all): below that a
 * row is a few words and every link collides with every other.
 */
#define TLFU_MIN_COUNTERS	64

/*
 * The widest sketch, 2^28 counters a row (512 MiB): far beyond any cache
 * of links, and small enough that 10 x width increments fit in uint32.
 */
#define TLFU_MAX_COUNTERS	(UINT32_C(1) << 28)

/*
 * Increments (that raised a counter) between agings, per counter of width:
 * the sample W = 10 C of the TinyLFU paper and of Caffeine.
 */
#define TLFU_SAMPLE_FACTOR	10

/*
 * Caffeine's guard against hash flooding: a candidate that estimates at
 * least TLFU_WARM (a little under 7, what 15 ages to) but does not beat the
 * victim is still let in when the caller's random number is 0 modulo
 * TLFU_WARM_ODDS, one time in 128.  Without it, an attacker who knows the
 * hash (ours is public: hash64) can plan links whose counters collide with
 * the cached ones', make every victim look hot and freeze the cache's
 * contents; with it, a warm link waits for about 128 misses.  Cold
 * candidates are never let in by chance, so one-hit wonders still pass
 * by.  A caller can also mix a secret of its own into the hashes it
 * passes, so that collisions cannot be planned.
 */
#define TLFU_WARM			6
#define TLFU_WARM_ODDS		128

/*
 * The sketch's header is padded to 64 bytes, one cache line: every
 * increment that raises a counter bumps ops, and without the padding it
 * would share its line with the first words of counters.
 */
#define TLFU_HEADER_BYTES	64

typedef struct tlfu_sketch
{
	uint32_t	ops;			/* counted increments: half a sample after an
								 * aging, plus those since (atomic) */
	uint32_t	counters;		/* counters a row: a power of two */
	uint32_t	row_bits;		/* log2(counters) */
	uint32_t	sample_size;	/* TLFU_SAMPLE_FACTOR x counters */
	uint32_t	pad[TLFU_HEADER_BYTES / sizeof(uint32_t) - 4];
	uint32_t	words[];		/* TLFU_ROWS x counters / 8 words (atomic) */
} tlfu_sketch;

/*
 * tlfu_counters is the width a sketch asked for `counters` gets: rounded
 * up to a power of two, at least TLFU_MIN_COUNTERS and at most
 * TLFU_MAX_COUNTERS (a larger request is held to it).
 */
extern uint32_t tlfu_counters(uint32_t counters);

/* tlfu_size is the bytes a sketch of tlfu_counters(counters) takes */
extern size_t tlfu_size(uint32_t counters);

/*
 * tlfu_init makes the tlfu_size(counters) bytes at s an empty sketch.  It
 * is not atomic: call it once, before any other process can see s.
 */
extern void tlfu_init(tlfu_sketch *s, uint32_t counters);

/* tlfu_increment counts one request for the link whose hash is hash */
extern void tlfu_increment(tlfu_sketch *s, uint64_t hash);

/* tlfu_estimate is how often hash was counted lately, 0 to 15 */
extern uint32_t tlfu_estimate(const tlfu_sketch *s, uint64_t hash);

/*
 * tlfu_admit tells whether the candidate, which missed, should replace the
 * victim the eviction picked: yes if it estimates higher; yes, one time in
 * TLFU_WARM_ODDS as random says, if it is warm; otherwise no.  random is
 * any uniformly distributed 32-bit number; the core draws none itself, so
 * that it stays deterministic.
 */
extern bool tlfu_admit(const tlfu_sketch *s, uint64_t candidate_hash,
					   uint64_t victim_hash, uint32_t random);

#endif							/* SHORTURL_TINYLFU_H */
