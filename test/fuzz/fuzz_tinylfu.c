/*-------------------------------------------------------------------------
 *
 * fuzz_tinylfu.c
 *	  libFuzzer target for the TinyLFU core (src/tinylfu.c).
 *
 * An input is a recipe: a width (64, 128 or 256 counters a row, asked for
 * in several ways), then up to MAX_OPS operations:
 *	- increment one of NKEYS tracked links, once or up to 16 times;
 *	- flood the sketch with up to 16 links never seen before;
 *	- give a tracked link a hash read from the input (0 and all ones
 *	  included), or increment such a hash;
 *	- skip ahead: add up to a sample to the count of increments (held below
 *	  a sample), as if links whose counters are elsewhere had been counted,
 *	  so that aging comes within reach of a short input (a sample is 640 to
 *	  2560 increments, and increments are what make a run slow);
 *	- load: overwrite a word of counters with four bytes of the input, any
 *	  mix of values up to 15, so that saturation and halving meet states
 *	  that increments take long to build;
 *	- ask tlfu_admit about two tracked links with a random number from the
 *	  input.
 *
 * After every operation the sketch is held to:
 *	- a second opinion: the same sketch kept as one byte a counter, with
 *	  the positions, conservative update, saturation and aging written out
 *	  afresh.  Every counter and the count of increments must agree;
 *	- bounds that do not depend on how it is written: the count stays below
 *	  a sample; unless a word was loaded, the counters add up to at most 4
 *	  per counted increment; a tracked link estimates at most 15, at least
 *	  its own count (held to 15, and forgotten when a word is loaded), and
 *	  at most the count of all increments (each aging halves both the
 *	  counts and the counters, so both bounds survive it).  Two tracked
 *	  links' estimates are checked after each operation, all sixteen at
 *	  the end;
 *	- tlfu_admit agrees with TinyLFU's rule on the reference estimates.
 * tlfu_counters and tlfu_size are checked on a 32-bit request read from
 * the input, whatever it is.
 *
 * Any violation aborts, which libFuzzer reports as a finding.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinylfu.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/*
 * The second opinion and the checks are left out of coverage: libFuzzer's
 * tracing of their comparisons cost most of a run, and the feedback that
 * matters is the core's.  They keep ASan and UBSan.
 */
#define ORACLE		__attribute__((no_sanitize("coverage"), noinline))

/* Tracked links, whose exact counts the bounds use */
#define NKEYS		16

/*
 * Operations an input may make, and the most increments one makes, so that
 * a run costs at most 768 increments: run.sh runs every target two million
 * times, and increments are most of a run's cost (a burst of 16 saturates
 * a link; skipping ahead, not floods, brings aging within reach)
 */
#define MAX_OPS		48
#define MAX_BURST	16
#define MAX_FLOOD	16

/* The widest sketch a recipe builds, and its counters (all rows) */
#define MAX_WIDTH	256
#define MAX_TOTAL	(4 * MAX_WIDTH)

/* The widths asked for: each rounds up to 64, 128 or 256 */
static const uint32_t asked_widths[] = {0, 1, 63, 64, 65, 100, 128, 129, 200, 256};

/* The sketch, in memory aligned as shared memory would be */
static uint32_t sketch_mem[(TLFU_HEADER_BYTES + MAX_TOTAL / 2) / sizeof(uint32_t)]
			__attribute__((aligned(64)));

/*
 * The second opinion: one byte a counter, its count of increments and the
 * sum of its counters; and the words its bytes pack into, by the layout
 * tinylfu.c documents, repacked whenever a byte changes, so that the
 * whole sketch is compared in one memcmp after every operation
 */
static uint8_t ref[MAX_TOTAL];
static uint32_t ref_ops;
static uint64_t ref_sum;
static uint32_t ref_words[MAX_TOTAL / 8];

/* reader hands out the bytes of an input; past its end, zeros */
typedef struct reader
{
	const uint8_t *p;
	size_t		n;
} reader;

static uint64_t
take(reader *r, int nbytes)
{
	uint64_t	v = 0;

	for (int i = 0; i < nbytes; i++)
	{
		uint64_t	b = 0;

		if (r->n > 0)
		{
			b = *r->p++;
			r->n--;
		}
		v |= b << (8 * i);
	}
	return v;
}

ORACLE static uint64_t
splitmix64(uint64_t x)
{
	uint64_t	z = x + 0x9E3779B97F4A7C15u;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

/* reference_width is tlfu_counters written out in 64-bit arithmetic */
ORACLE static uint32_t
reference_width(uint32_t asked)
{
	uint64_t	w = 1;

	while (w < asked || w < 64)
		w *= 2;
	return w > (UINT64_C(1) << 28) ? UINT32_C(1) << 28 : (uint32_t) w;
}

/*
 * reference_slot is counter `row` of hash in a sketch of width counters a
 * row: the top log2(width) bits of hash times the row's multiplier
 */
ORACLE static uint32_t
reference_slot(uint64_t hash, int row, uint32_t width)
{
	static const uint64_t mult[4] = {
		0x9E3779B97F4A7C15u, 0xBF58476D1CE4E5B9u,
		0x94D049BB133111EBu, 0xC2B2AE3D27D4EB4Fu,
	};
	uint64_t	product = hash * mult[row];
	uint32_t	slot = 0;

	/* the top bits, taken one at a time */
	for (uint32_t bit = 1; bit < width; bit *= 2)
	{
		slot = slot * 2 + (uint32_t) (product >> 63);
		product <<= 1;
	}
	return (uint32_t) row * width + slot;
}

ORACLE static uint32_t
reference_estimate(uint64_t hash, uint32_t width)
{
	uint32_t	least = 255;

	for (int r = 0; r < 4; r++)
		if (ref[reference_slot(hash, r, width)] < least)
			least = ref[reference_slot(hash, r, width)];
	return least;
}

/* repack makes ref_words[w] of the bytes of counters 8w .. 8w + 7 */
ORACLE static void
repack(uint32_t w)
{
	uint32_t	v = 0;

	for (uint32_t i = 0; i < 8; i++)
		v |= (uint32_t) ref[8 * w + i] << (4 * i);
	ref_words[w] = v;
}

/*
 * The state the bounds need: each tracked link's hash and count, and the
 * count of all increments, each halved whenever the reference ages.
 */
typedef struct model
{
	uint32_t	width;
	uint64_t	hash[NKEYS];
	uint32_t	count[NKEYS];	/* held to 15 */
	uint32_t	calls;
	bool		loaded;			/* a word was overwritten */
} model;

/*
 * reference_increment raises the least of hash's counters unless they are
 * all 15; a raise counts, and the count's reaching 10 x width halves every
 * counter, the counts of the model, and takes half a sample off the count
 */
ORACLE static void
reference_increment(model *m, uint64_t hash)
{
	uint32_t	least = reference_estimate(hash, m->width);
	uint32_t	sample = 10 * m->width;

	m->calls++;
	if (least >= 15)
		return;
	for (int r = 0; r < 4; r++)
	{
		uint32_t	n = reference_slot(hash, r, m->width);

		if (ref[n] == least)
		{
			ref[n]++;
			ref_sum++;
			repack(n / 8);
		}
	}
	if (++ref_ops < sample)
		return;
	ref_sum = 0;
	for (uint32_t n = 0; n < 4 * m->width; n++)
	{
		ref[n] /= 2;
		ref_sum += ref[n];
	}
	for (uint32_t w = 0; w < m->width / 2; w++)
		repack(w);
	for (int k = 0; k < NKEYS; k++)
		m->count[k] /= 2;
	m->calls /= 2;
	ref_ops -= sample / 2;
}

/*
 * increment does one increment on the sketch and on the reference.  A
 * tracked link's count is counted first, since the increment may age the
 * sketch, and held to 15, as its counters are: otherwise a count of 20,
 * halved, would promise an estimate of 10 that counters of 15 halved
 * cannot give.
 */
ORACLE static void
increment(tlfu_sketch *s, model *m, uint64_t hash)
{
	for (int k = 0; k < NKEYS; k++)
		if (m->hash[k] == hash && m->count[k] < 15)
			m->count[k]++;
	tlfu_increment(s, hash);
	reference_increment(m, hash);
}

/* check_estimate holds tracked link k's estimate to the reference and bounds */
ORACLE static void
check_estimate(const tlfu_sketch *s, const model *m, int k)
{
	uint32_t	e = tlfu_estimate(s, m->hash[k]);

	CHECK(e == reference_estimate(m->hash[k], m->width));
	CHECK(e <= TLFU_COUNTER_MAX);
	CHECK(e >= m->count[k]);
	CHECK(e <= m->calls);
}

/*
 * check_state holds the whole sketch to the reference and to the bounds,
 * and the estimates of two tracked links, k and j (all of them at the end
 * of an input: tlfu_estimate is a function of the words, checked in full
 * here, so two a step find a wrong estimate as surely, in an eighth of
 * the time)
 */
ORACLE static void
check_state(const tlfu_sketch *s, const model *m, int k, int j)
{
	CHECK(s->counters == m->width && s->sample_size == 10 * m->width);
	CHECK(s->ops == ref_ops && s->ops < s->sample_size);
	CHECK(memcmp(s->words, ref_words, (size_t) m->width / 2 * sizeof(uint32_t)) == 0);
	CHECK(m->loaded || ref_sum <= 4 * (uint64_t) s->ops);
	check_estimate(s, m, k);
	check_estimate(s, m, j);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	reader		r = {data, size};
	tlfu_sketch *s = (tlfu_sketch *) sketch_mem;
	model		m;
	uint32_t	asked;
	uint64_t	fresh;

	/* any request: a width within bounds, a size that holds it */
	asked = (uint32_t) take(&r, 4);
	CHECK(tlfu_counters(asked) == reference_width(asked));
	CHECK(tlfu_size(asked) == 64 + (size_t) tlfu_counters(asked) * 2);

	asked = asked_widths[(asked & 0xFF) % (sizeof(asked_widths) / sizeof(asked_widths[0]))];
	m.width = reference_width(asked);
	CHECK(tlfu_size(asked) <= sizeof(sketch_mem));
	memset(sketch_mem, 0xA5, sizeof(sketch_mem));
	tlfu_init(s, asked);
	memset(ref, 0, sizeof(ref));
	memset(ref_words, 0, sizeof(ref_words));
	ref_ops = 0;
	ref_sum = 0;
	for (int k = 0; k < NKEYS; k++)
	{
		m.hash[k] = splitmix64(k);
		m.count[k] = 0;
	}
	m.calls = 0;
	m.loaded = false;
	/* links never seen: a stream no tracked hash is likely to meet */
	fresh = splitmix64(size) << 8;
	check_state(s, &m, 0, 1);

	for (int op = 0; op < MAX_OPS && r.n > 0; op++)
	{
		uint32_t	b = (uint32_t) take(&r, 1);
		int			k = (int) (b >> 4);
		uint32_t	times;

		switch (b & 7)
		{
			case 0:				/* a request for a tracked link */
				increment(s, &m, m.hash[k]);
				break;
			case 1:				/* a burst of them */
				times = (uint32_t) take(&r, 1) % MAX_BURST + 1;
				for (uint32_t i = 0; i < times; i++)
					increment(s, &m, m.hash[k]);
				break;
			case 2:				/* a flood of one-hit wonders */
				times = (uint32_t) take(&r, 1) % MAX_FLOOD + 1;
				for (uint32_t i = 0; i < times; i++)
					increment(s, &m, splitmix64(fresh++));
				break;
			case 3:				/* a tracked link takes a hash of the input's */
				m.hash[k] = take(&r, 8);
				m.count[k] = 0;
				break;
			case 4:				/* an untracked link with such a hash */
				increment(s, &m, take(&r, 8));
				break;
			case 5:				/* skip ahead, staying below a sample */
				{
					uint32_t	sample = 10 * m.width;
					uint32_t	by = (uint32_t) take(&r, 2) % sample;

					if (by > sample - 1 - ref_ops)
						by = sample - 1 - ref_ops;
					s->ops += by;
					ref_ops += by;
					m.calls += by;
				}
				break;
			case 6:				/* load a word of counters */
				{
					uint32_t	w = (uint32_t) take(&r, 1) % (m.width / 2);
					uint32_t	v = (uint32_t) take(&r, 4);

					s->words[w] = v;
					for (uint32_t i = 0; i < 8; i++)
					{
						ref_sum -= ref[8 * w + i];
						ref[8 * w + i] = (uint8_t) ((v >> (4 * i)) & 15);
						ref_sum += ref[8 * w + i];
					}
					repack(w);
					for (int j = 0; j < NKEYS; j++)
						m.count[j] = 0;
					if (m.calls < 15)
						m.calls = 15;
					m.loaded = true;
				}
				break;
			default:			/* admission of one tracked link over another */
				{
					int			victim = (int) (take(&r, 1) % NKEYS);
					uint32_t	random = (uint32_t) take(&r, 2);
					uint32_t	ce = reference_estimate(m.hash[k], m.width);
					uint32_t	ve = reference_estimate(m.hash[victim], m.width);
					bool		want = ce > ve || (ce >= 6 && random % 128 == 0);

					CHECK(tlfu_admit(s, m.hash[k], m.hash[victim], random) == want);
				}
				break;
		}
		check_state(s, &m, k, op % NKEYS);
	}
	for (int k = 0; k < NKEYS; k++)
		check_estimate(s, &m, k);
	return 0;
}
