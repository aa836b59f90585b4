/*-------------------------------------------------------------------------
 *
 * tinylfu.c
 *	  The TinyLFU frequency sketch and admission rule; see tinylfu.h for the
 *	  design and the concurrency contract.
 *
 * Layout: counter i of row r is counter number r * counters + i of the
 * sketch, and counter n is bits 4 (n % 8) .. 4 (n % 8) + 3 of words[n / 8].
 * Rows are whole words (counters is a multiple of 8), so a row never
 * shares a word with the next.
 *
 * Hashing: row r picks its counter by multiply-shift (Dietzfelbinger et
 * al.), the top row_bits bits of hash * tlfu_seeds[r] modulo 2^64.  With a
 * distinct odd multiplier per row these are four different functions of
 * the caller's hash, which is already uniform (hash64 of the code), and
 * each costs one multiplication.  Because each row has its own counters,
 * one increment raises a counter at most once, which the fuzzer's bounds
 * rely on.
 *
 * Every access to ops and to words is an __atomic builtin with relaxed
 * order; nothing else is shared.
 *
 *-------------------------------------------------------------------------
 */
#include "tinylfu.h"

_Static_assert(TLFU_PER_WORD == 8, "the layout comments assume 8 a word");
_Static_assert(TLFU_MIN_COUNTERS % TLFU_PER_WORD == 0, "rows are whole words");
_Static_assert(sizeof(tlfu_sketch) == TLFU_HEADER_BYTES, "header is a line");
_Static_assert((uint64_t) TLFU_MAX_COUNTERS * TLFU_SAMPLE_FACTOR <= UINT32_MAX,
			   "a sample must fit in ops");

/*
 * Odd multipliers, one a row: the 64-bit golden ratio and the two of
 * splitmix64's finalizer, then xxHash's PRIME64_2.  Any distinct odd
 * constants with well-mixed bits would do.
 */
static const uint64_t tlfu_seeds[TLFU_ROWS] = {
	UINT64_C(0x9E3779B97F4A7C15),
	UINT64_C(0xBF58476D1CE4E5B9),
	UINT64_C(0x94D049BB133111EB),
	UINT64_C(0xC2B2AE3D27D4EB4F),
};

/*
 * The three low bits of each of a word's counters: after w >> 1, it clears
 * the bit each counter took from the one above
 */
#define TLFU_HALVE_MASK		UINT32_C(0x77777777)

/* tlfu_counters doubles from the narrowest width until it is wide enough */
uint32_t
tlfu_counters(uint32_t counters)
{
	uint32_t	n = TLFU_MIN_COUNTERS;

	/* n stays within TLFU_MAX_COUNTERS, so doubling never wraps */
	while (n < counters && n < TLFU_MAX_COUNTERS)
		n <<= 1;
	return n;
}

/*
 * tlfu_size: the header and TLFU_ROWS x width / 8 words.  At the widest,
 * 2^27 words of 4 bytes plus 64: 512 MiB and a line, which fits in size_t
 * even where it is 32 bits.
 */
size_t
tlfu_size(uint32_t counters)
{
	size_t		words = (size_t) tlfu_counters(counters) / TLFU_PER_WORD * TLFU_ROWS;

	return TLFU_HEADER_BYTES + words * sizeof(uint32_t);
}

/* tlfu_init writes every field and zeroes every word, padding included */
void
tlfu_init(tlfu_sketch *s, uint32_t counters)
{
	uint32_t	n = tlfu_counters(counters);
	size_t		words = (size_t) n / TLFU_PER_WORD * TLFU_ROWS;

	s->ops = 0;
	s->counters = n;
	s->row_bits = (uint32_t) __builtin_ctz(n);
	s->sample_size = n * TLFU_SAMPLE_FACTOR;
	for (size_t i = 0; i < sizeof(s->pad) / sizeof(s->pad[0]); i++)
		s->pad[i] = 0;
	for (size_t i = 0; i < words; i++)
		s->words[i] = 0;
}

/*
 * counter_index is the number of row's counter for hash.  row_bits is 6 to
 * 28, so the shift is 36 to 58: never the width of the type.
 */
static inline uint32_t
counter_index(const tlfu_sketch *s, uint64_t hash, int row)
{
	uint64_t	slot = (hash * tlfu_seeds[row]) >> (64 - s->row_bits);

	return (uint32_t) row * s->counters + (uint32_t) slot;
}

/* counter_get reads counter n */
static inline uint32_t
counter_get(const tlfu_sketch *s, uint32_t n)
{
	uint32_t	w = __atomic_load_n(&s->words[n / TLFU_PER_WORD], __ATOMIC_RELAXED);

	return (w >> (TLFU_COUNTER_BITS * (n % TLFU_PER_WORD))) & TLFU_COUNTER_MAX;
}

/*
 * counter_add raises counter n by one unless it is at TLFU_COUNTER_MAX,
 * and tells whether it did.  The compare-and-swap retries when another
 * counter of the word changed meanwhile, so no increment of a neighbour is
 * overwritten; a failed CAS reloads w.
 */
static bool
counter_add(tlfu_sketch *s, uint32_t n)
{
	uint32_t   *word = &s->words[n / TLFU_PER_WORD];
	uint32_t	shift = TLFU_COUNTER_BITS * (n % TLFU_PER_WORD);
	uint32_t	w = __atomic_load_n(word, __ATOMIC_RELAXED);

	for (;;)
	{
		if (((w >> shift) & TLFU_COUNTER_MAX) == TLFU_COUNTER_MAX)
			return false;
		if (__atomic_compare_exchange_n(word, &w, w + (UINT32_C(1) << shift),
										true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return true;
	}
}

/*
 * age halves every counter, a word at a time: (w >> 1) & 0x77777777 halves
 * all eight, rounding down, since each counter's low bit falls into the top
 * bit of the one below, which the mask clears.  A compare-and-swap, so an
 * increment that lands between the load and the store is not lost but
 * halved with the rest.
 */
static void
age(tlfu_sketch *s)
{
	size_t		words = (size_t) s->counters / TLFU_PER_WORD * TLFU_ROWS;

	for (size_t i = 0; i < words; i++)
	{
		uint32_t	w = __atomic_load_n(&s->words[i], __ATOMIC_RELAXED);

		while (!__atomic_compare_exchange_n(&s->words[i], &w,
											(w >> 1) & TLFU_HALVE_MASK, true,
											__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
}

/*
 * tlfu_increment raises, of the link's four counters, those that hold the
 * least value (conservative update), and counts the increment if it raised
 * any.  The caller whose count reaches sample_size, and no other, ages the
 * sketch, then takes half a sample off the count.  Counts go on rising
 * past sample_size during the pass and match it exactly only once, so
 * passes never overlap; if so many arrived that the count is still at
 * sample_size or above, the same caller ages again, one pass for each half
 * sample, and the count always ends below sample_size.
 */
void
tlfu_increment(tlfu_sketch *s, uint64_t hash)
{
	uint32_t	index[TLFU_ROWS];
	uint32_t	value[TLFU_ROWS];
	uint32_t	least = TLFU_COUNTER_MAX;
	bool		added = false;
	uint32_t	ops;

	for (int r = 0; r < TLFU_ROWS; r++)
	{
		index[r] = counter_index(s, hash, r);
		value[r] = counter_get(s, index[r]);
		if (value[r] < least)
			least = value[r];
	}
	if (least == TLFU_COUNTER_MAX)
		return;
	for (int r = 0; r < TLFU_ROWS; r++)
		if (value[r] == least)
			added |= counter_add(s, index[r]);
	if (!added)
		return;

	ops = __atomic_add_fetch(&s->ops, 1, __ATOMIC_RELAXED);
	if (ops != s->sample_size)
		return;
	do
	{
		age(s);
		ops = __atomic_sub_fetch(&s->ops, s->sample_size / 2, __ATOMIC_RELAXED);
	} while (ops >= s->sample_size);
}

/* tlfu_estimate is the least of the link's four counters */
uint32_t
tlfu_estimate(const tlfu_sketch *s, uint64_t hash)
{
	uint32_t	least = TLFU_COUNTER_MAX;

	for (int r = 0; r < TLFU_ROWS; r++)
	{
		uint32_t	v = counter_get(s, counter_index(s, hash, r));

		if (v < least)
			least = v;
	}
	return least;
}

/*
 * tlfu_admit: TinyLFU's rule, a strict majority of recent requests.  A tie
 * keeps the victim, as in Caffeine: the victim has proved itself in the
 * cache, the candidate has not.  The warm exception is the flood guard of
 * tinylfu.h.
 */
bool
tlfu_admit(const tlfu_sketch *s, uint64_t candidate_hash,
		   uint64_t victim_hash, uint32_t random)
{
	uint32_t	candidate = tlfu_estimate(s, candidate_hash);
	uint32_t	victim = tlfu_estimate(s, victim_hash);

	if (candidate > victim)
		return true;
	return candidate >= TLFU_WARM && random % TLFU_WARM_ODDS == 0;
}
