/*-------------------------------------------------------------------------
 *
 * test_tinylfu.c
 *	  Unit tests of the TinyLFU core: widths and sizes, estimates that never
 *	  count low, a hot link above one-hit wonders, saturation at 15 without
 *	  touching a neighbour, aging that halves every counter exactly once a
 *	  sample, the admission rule with its warm exception, and threads that
 *	  increment one sketch together.
 *
 * Counters are read straight from the words, by the layout tinylfu.c
 * documents, so a carry into a neighbour or a torn word shows up even
 * where no estimate would notice it.
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L	/* pthread barriers */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinylfu.h"
#include "unit.h"

/* Threads of the concurrent tests */
#define THREADS			4

/*
 * Links of the concurrent tests: enough that threads overlap for
 * milliseconds, and few enough not to age a sketch of 2^16 counters a row
 */
#define THREAD_KEYS		16384

static uint64_t
splitmix64(uint64_t i)
{
	uint64_t	z = i * 0x9E3779B97F4A7C15u + 0x9E3779B97F4A7C15u;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

/* new_sketch allocates and initializes a sketch asked for `counters` */
static tlfu_sketch *
new_sketch(uint32_t counters)
{
	tlfu_sketch *s = malloc(tlfu_size(counters));

	if (s == NULL)
	{
		perror("malloc");
		exit(EXIT_FAILURE);
	}
	tlfu_init(s, counters);
	return s;
}

/* total_counters is the number of counters of s, all rows */
static uint32_t
total_counters(const tlfu_sketch *s)
{
	return s->counters * TLFU_ROWS;
}

/* counter reads counter n of s by the documented layout */
static uint32_t
counter(const tlfu_sketch *s, uint32_t n)
{
	return (s->words[n / 8] >> (4 * (n % 8))) & 15;
}

/* sum_counters adds up every counter of s */
static uint64_t
sum_counters(const tlfu_sketch *s)
{
	uint64_t	sum = 0;

	for (uint32_t n = 0; n < total_counters(s); n++)
		sum += counter(s, n);
	return sum;
}

/* nonzero_counters counts the counters of s above 0 */
static uint32_t
nonzero_counters(const tlfu_sketch *s)
{
	uint32_t	k = 0;

	for (uint32_t n = 0; n < total_counters(s); n++)
		k += counter(s, n) != 0;
	return k;
}

/* ref_index is a second writing of a row's counter for hash */
static uint32_t
ref_index(const tlfu_sketch *s, uint64_t hash, int row)
{
	static const uint64_t mult[4] = {
		0x9E3779B97F4A7C15u, 0xBF58476D1CE4E5B9u,
		0x94D049BB133111EBu, 0xC2B2AE3D27D4EB4Fu,
	};

	return (uint32_t) row * s->counters +
		(uint32_t) ((hash * mult[row]) >> (64 - s->row_bits));
}

/*
 * ref_increment is conservative update written out on a plain array of
 * counters, one byte each, for runs too short to age
 */
static void
ref_increment(uint8_t *ref, const tlfu_sketch *s, uint64_t hash)
{
	uint32_t	least = 15;

	for (int r = 0; r < 4; r++)
		if (ref[ref_index(s, hash, r)] < least)
			least = ref[ref_index(s, hash, r)];
	if (least == 15)
		return;
	for (int r = 0; r < 4; r++)
		if (ref[ref_index(s, hash, r)] == least)
			ref[ref_index(s, hash, r)]++;
}

/* Arguments and results of one incrementing thread */
typedef struct worker
{
	tlfu_sketch *s;
	const uint64_t *keys;		/* its links: keys[0], keys[stride], ... */
	uint32_t	nkeys;
	uint32_t	stride;
	uint32_t	rounds;
	bool		shuffle;
	uint64_t	seed;
	pthread_barrier_t *start;
	pthread_t	thread;
} worker;

/*
 * increment_all increments each of its links once per round.  Shuffled,
 * each thread takes its own order each round, so threads meet on a word
 * now and then; not shuffled, all take the same order and chase one
 * another through the same words, the most compare-and-swap failures a
 * test can provoke.  All threads start at once, at a barrier.
 */
static void *
increment_all(void *arg)
{
	worker	   *w = arg;
	uint32_t   *order = malloc(w->nkeys * sizeof(uint32_t));
	uint64_t	rng = w->seed;

	if (order == NULL)
		return NULL;
	for (uint32_t i = 0; i < w->nkeys; i++)
		order[i] = i;
	pthread_barrier_wait(w->start);
	for (uint32_t round = 0; round < w->rounds; round++)
	{
		for (uint32_t i = w->nkeys - 1; w->shuffle && i > 0; i--)
		{
			uint32_t	j = (uint32_t) ((rng = splitmix64(rng)) % (i + 1));
			uint32_t	t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (uint32_t i = 0; i < w->nkeys; i++)
			tlfu_increment(w->s, w->keys[(size_t) order[i] * w->stride]);
	}
	free(order);
	return w;
}

/*
 * run_threads runs THREADS workers over keys[0..nkeys) and waits for them
 * all.  Shared, every thread increments every link; not shared, thread t
 * increments keys t, t + THREADS, t + 2 THREADS, ... (nkeys a multiple of
 * THREADS), links that no other thread increments but that share words
 * with theirs.
 */
static void
run_threads(tlfu_sketch *s, const uint64_t *keys, uint32_t nkeys,
			uint32_t rounds, bool shared, bool shuffle)
{
	worker		w[THREADS];
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, THREADS);
	for (int t = 0; t < THREADS; t++)
	{
		w[t] = (worker) {s, shared ? keys : keys + t,
			shared ? nkeys : nkeys / THREADS, shared ? 1 : THREADS,
		rounds, shuffle, splitmix64(1000 + t), &start, 0};
		if (pthread_create(&w[t].thread, NULL, increment_all, &w[t]) != 0)
		{
			perror("pthread_create");
			exit(EXIT_FAILURE);
		}
	}
	for (int t = 0; t < THREADS; t++)
	{
		void	   *ret;

		pthread_join(w[t].thread, &ret);
		EXPECT(ret == &w[t]);
	}
	pthread_barrier_destroy(&start);
}

/*
 * threads_without_aging runs run_threads on a sketch of `counters` a row
 * and checks it, given that the run increments fewer links than a sample.
 *	- No counter may exceed what plain count-min holds there (the number of
 *	  increments whose link maps to it, at most 15), since each increment
 *	  raises a counter at most once: a carry into a neighbour, or a torn
 *	  word that resurrected an old value plus more, would.
 *	- Races may lose increments, but never a thread's own: each of its
 *	  increments starts after its previous one raised the link's least
 *	  counter.  So a link estimates at least the rounds (up to 15) of
 *	  each thread that increments it.  Not shared, that is its whole
 *	  count: nothing may be lost, though its words change under it.
 *	  Shared, how many were lost in all is printed.
 */
static void
threads_without_aging(const uint64_t *keys, uint32_t nkeys, uint32_t counters,
					  uint32_t rounds, bool shared, bool shuffle)
{
	static uint8_t plain[TLFU_ROWS << 16];
	tlfu_sketch *s = new_sketch(counters);
	uint32_t	per_key = shared ? THREADS * rounds : rounds;
	uint32_t	least = rounds < 15 ? rounds : 15;
	uint64_t	estimates = 0;
	uint64_t	truth = 0;
	uint32_t	out_of_range = 0;
	uint32_t	above_plain = 0;

	EXPECT(s->counters <= (1 << 16) && (uint64_t) nkeys * per_key < s->sample_size);
	memset(plain, 0, sizeof(plain));
	run_threads(s, keys, nkeys, rounds, shared, shuffle);
	for (uint32_t i = 0; i < nkeys; i++)
		for (int r = 0; r < 4; r++)
		{
			uint32_t	n = ref_index(s, keys[i], r);

			plain[n] = (uint8_t) (plain[n] + per_key > 15 ? 15 : plain[n] + per_key);
		}
	for (uint32_t n = 0; n < total_counters(s); n++)
		above_plain += counter(s, n) > plain[n];
	EXPECT(above_plain == 0);
	for (uint32_t i = 0; i < nkeys; i++)
	{
		uint32_t	e = tlfu_estimate(s, keys[i]);
		uint32_t	most = 15;

		/* the link's plain count-min estimate bounds it from above */
		for (int r = 0; r < 4; r++)
			if (plain[ref_index(s, keys[i], r)] < most)
				most = plain[ref_index(s, keys[i], r)];
		out_of_range += e < least || e > most;
		estimates += e;
		truth += per_key < 15 ? per_key : 15;
	}
	EXPECT(out_of_range == 0);
	EXPECT(s->ops < s->sample_size);
	EXPECT(sum_counters(s) <= 4 * (uint64_t) s->ops);
	printf("test_tinylfu: %d threads x %u rounds x %u links%s, %s: estimates sum to %llu of %llu\n",
		   THREADS, rounds, shared ? nkeys : nkeys / THREADS,
		   shared ? " (the same)" : " (each its own)",
		   shuffle ? "shuffled" : "in step", (unsigned long long) estimates,
		   (unsigned long long) truth);
	free(s);
}

int
main(void)
{
	tlfu_sketch *s;
	tlfu_sketch *copy;
	static uint64_t keys[THREAD_KEYS];

	for (uint32_t i = 0; i < THREAD_KEYS; i++)
		keys[i] = splitmix64(i);

	/* widths: a power of two from 64 to 2^28, rounded up, held to the max */
	EXPECT(tlfu_counters(0) == 64);
	EXPECT(tlfu_counters(1) == 64);
	EXPECT(tlfu_counters(64) == 64);
	EXPECT(tlfu_counters(65) == 128);
	EXPECT(tlfu_counters(1000) == 1024);
	EXPECT(tlfu_counters(65536) == 65536);
	EXPECT(tlfu_counters(65537) == 131072);
	EXPECT(tlfu_counters(UINT32_C(1) << 27) == UINT32_C(1) << 27);
	EXPECT(tlfu_counters((UINT32_C(1) << 27) + 1) == UINT32_C(1) << 28);
	EXPECT(tlfu_counters(UINT32_C(1) << 28) == UINT32_C(1) << 28);
	EXPECT(tlfu_counters((UINT32_C(1) << 28) + 1) == UINT32_C(1) << 28);
	EXPECT(tlfu_counters(UINT32_C(1) << 31) == UINT32_C(1) << 28);
	EXPECT(tlfu_counters(UINT32_MAX) == UINT32_C(1) << 28);

	/* sizes: a 64-byte header, then 4 rows of 4 bits a counter */
	EXPECT(sizeof(tlfu_sketch) == 64);
	EXPECT(offsetof(tlfu_sketch, words) == 64);
	EXPECT(tlfu_size(0) == 64 + 128);
	EXPECT(tlfu_size(64) == 64 + 128);
	EXPECT(tlfu_size(100) == 64 + 256);
	EXPECT(tlfu_size(65536) == 64 + 131072);
	EXPECT(tlfu_size(UINT32_MAX) == 64 + (size_t) 512 * 1024 * 1024);

	/* a new sketch: its header, and every counter 0 */
	s = new_sketch(100);
	EXPECT(s->counters == 128 && s->row_bits == 7 && s->sample_size == 1280);
	EXPECT(s->ops == 0 && sum_counters(s) == 0);
	EXPECT(tlfu_estimate(s, keys[0]) == 0 && tlfu_estimate(s, 0) == 0);
	memset(s, 0xFF, tlfu_size(100));
	tlfu_init(s, 100);
	EXPECT(s->counters == 128 && s->ops == 0 && sum_counters(s) == 0);
	free(s);

	/* the rows pick the counters the layout says, one in each row */
	s = new_sketch(1024);
	tlfu_increment(s, keys[7]);
	EXPECT(nonzero_counters(s) == 4 && sum_counters(s) == 4);
	for (int r = 0; r < 4; r++)
		EXPECT(counter(s, ref_index(s, keys[7], r)) == 1);
	EXPECT(s->ops == 1);
	free(s);

	/*
	 * No aging: every estimate is at least the link's count (here 1 to 15,
	 * 500 links on 1024 counters a row, so there are collisions), and the
	 * counters add up to no more than 4 per increment.
	 */
	s = new_sketch(1024);
	{
		uint32_t	low = 0;
		uint32_t	exact = 0;
		uint32_t	total = 0;

		for (uint32_t round = 1; round <= 15; round++)
			for (uint32_t i = 0; i < 500; i++)
				if (i % 15 + 1 >= round)
				{
					tlfu_increment(s, keys[i]);
					total++;
				}
		EXPECT(s->ops == total && total < s->sample_size);
		for (uint32_t i = 0; i < 500; i++)
		{
			uint32_t	e = tlfu_estimate(s, keys[i]);

			low += e < i % 15 + 1;
			exact += e == i % 15 + 1;
		}
		EXPECT(low == 0);
		/* conservative update keeps most estimates exact */
		EXPECT(exact >= 450);
		EXPECT(sum_counters(s) <= 4 * (uint64_t) total);
		printf("test_tinylfu: 500 links counted 1..15 times on 1024 counters a row: %u exact\n",
			   exact);
	}
	free(s);

	/*
	 * A hot link estimates above one-hit wonders, and nearly all of them say
	 * 1: collisions give one of n one-hit links on a width w more than 1
	 * with a probability of about (1 - e^(-n / w))^4, 0.2% for 1000 links
	 * on 4096 counters a row (15% on 1024).
	 */
	s = new_sketch(4096);
	{
		uint32_t	above_one = 0;
		uint32_t	hot_wins = 0;

		for (uint32_t i = 1; i <= 1000; i++)
		{
			tlfu_increment(s, keys[i]);
			if (i % 100 == 0)
				tlfu_increment(s, keys[0]);
		}
		EXPECT(tlfu_estimate(s, keys[0]) >= 10);
		for (uint32_t i = 1; i <= 1000; i++)
		{
			uint32_t	e = tlfu_estimate(s, keys[i]);

			EXPECT(e >= 1);
			above_one += e > 1;
			hot_wins += tlfu_admit(s, keys[0], keys[i], 1) &&
				!tlfu_admit(s, keys[i], keys[0], 0);
		}
		EXPECT(above_one <= 10);
		printf("test_tinylfu: 1000 one-hit links on 4096 counters a row: %u estimate above 1\n",
			   above_one);
		EXPECT(hot_wins == 1000);
		/* a link never seen estimates at most what collisions give it */
		EXPECT(tlfu_estimate(s, keys[2000]) <= 1);
	}
	free(s);

	/* saturation: 15, and the neighbours of the link's counters stay 0 */
	s = new_sketch(64);
	for (int i = 0; i < 100; i++)
		tlfu_increment(s, keys[3]);
	EXPECT(tlfu_estimate(s, keys[3]) == 15);
	EXPECT(nonzero_counters(s) == 4 && sum_counters(s) == 60);
	for (int r = 0; r < 4; r++)
		EXPECT(counter(s, ref_index(s, keys[3], r)) == 15);
	/* increments that raised nothing are not counted toward aging */
	EXPECT(s->ops == 15);
	free(s);

	/*
	 * Saturation everywhere, none carrying: links counted 20 times each
	 * until just short of a sample, on the narrowest sketch, leave every
	 * counter as the plain-array model says, most of them at 15.
	 */
	s = new_sketch(64);
	{
		static uint8_t ref[4 * 64];
		uint32_t	same = 0;
		uint32_t	full = 0;

		for (uint32_t i = 0; i < 4096 && s->ops < s->sample_size - 20; i++)
			for (int k = 0; k < 20; k++)
			{
				tlfu_increment(s, keys[i]);
				ref_increment(ref, s, keys[i]);
			}
		for (uint32_t n = 0; n < total_counters(s); n++)
		{
			same += counter(s, n) == ref[n];
			full += ref[n] == 15;
		}
		EXPECT(same == total_counters(s));
		EXPECT(full >= total_counters(s) / 4);
		printf("test_tinylfu: saturation: %u of %u counters at 15\n", full,
			   total_counters(s));
	}
	free(s);

	/*
	 * Aging: the increment that makes ops reach sample_size halves every
	 * counter, its own included, rounding down, and leaves ops at half a
	 * sample.  Compared with a copy that was kept from aging.
	 */
	s = new_sketch(64);
	copy = malloc(tlfu_size(64));
	if (copy == NULL)
		return EXIT_FAILURE;
	{
		uint32_t	i = 0;
		int			ok = 1;

		while (s->ops < s->sample_size - 1)
			tlfu_increment(s, keys[i++ % 4096]);
		EXPECT(s->ops == s->sample_size - 1);
		EXPECT(tlfu_estimate(s, keys[0]) >= 1);
		memcpy(copy, s, tlfu_size(64));
		copy->ops = 0;
		/* a link whose counters are not all 15, so the increment counts */
		while (tlfu_estimate(s, keys[i % 4096]) == 15)
			i++;
		tlfu_increment(s, keys[i % 4096]);
		tlfu_increment(copy, keys[i % 4096]);
		EXPECT(copy->ops == 1);
		EXPECT(s->ops == s->sample_size / 2);
		for (uint32_t n = 0; n < total_counters(s); n++)
			ok &= counter(s, n) == counter(copy, n) / 2;
		EXPECT(ok);
		EXPECT(sum_counters(copy) > 2 * sum_counters(s));
	}
	free(copy);
	free(s);

	/* aging, by estimates: 15 becomes 7, and a new hot link can overtake */
	s = new_sketch(64);
	{
		uint32_t	i = 100;
		uint32_t	before;

		for (int k = 0; k < 15; k++)
			tlfu_increment(s, keys[1]);
		EXPECT(tlfu_estimate(s, keys[1]) == 15);
		do
		{
			before = s->ops;
			tlfu_increment(s, keys[i++]);
		} while (s->ops >= before);
		EXPECT(s->ops == s->sample_size / 2);
		EXPECT(tlfu_estimate(s, keys[1]) == 7);
		for (int k = 0; k < 15; k++)
			tlfu_increment(s, keys[2]);
		EXPECT(tlfu_estimate(s, keys[2]) == 15);
		EXPECT(tlfu_estimate(s, keys[1]) < 15);
		EXPECT(tlfu_admit(s, keys[2], keys[1], 1));
		EXPECT(!tlfu_admit(s, keys[1], keys[2], 1));
	}
	free(s);

	/* many samples: ops always stays below sample_size */
	s = new_sketch(64);
	{
		int			ok = 1;

		for (uint32_t i = 0; i < 100000; i++)
		{
			tlfu_increment(s, splitmix64(i % 3000 + 10000));
			ok &= s->ops < s->sample_size;
		}
		EXPECT(ok);
	}
	free(s);

	/*
	 * Admission: higher wins; a tie or less loses, unless the candidate is
	 * warm (6 or more) and random is 0 modulo 128.
	 */
	s = new_sketch(1024);
	for (int k = 0; k < 2; k++)
		tlfu_increment(s, keys[10]);	/* 2 */
	for (int k = 0; k < 5; k++)
		tlfu_increment(s, keys[11]);	/* 5 */
	for (int k = 0; k < 6; k++)
		tlfu_increment(s, keys[12]);	/* 6 */
	for (int k = 0; k < 9; k++)
		tlfu_increment(s, keys[13]);	/* 9 */
	for (int k = 0; k < 2; k++)
		tlfu_increment(s, keys[14]);	/* 2 */
	EXPECT(tlfu_estimate(s, keys[10]) == 2 && tlfu_estimate(s, keys[11]) == 5 &&
		   tlfu_estimate(s, keys[12]) == 6 && tlfu_estimate(s, keys[13]) == 9 &&
		   tlfu_estimate(s, keys[14]) == 2 && tlfu_estimate(s, keys[15]) == 0);
	EXPECT(tlfu_admit(s, keys[11], keys[10], 1));
	EXPECT(tlfu_admit(s, keys[10], keys[15], 1));
	EXPECT(!tlfu_admit(s, keys[10], keys[11], 1));
	EXPECT(!tlfu_admit(s, keys[15], keys[10], 0));	/* cold: never by chance */
	EXPECT(!tlfu_admit(s, keys[10], keys[14], 1));	/* a tie keeps the victim */
	EXPECT(!tlfu_admit(s, keys[10], keys[14], 0));
	EXPECT(!tlfu_admit(s, keys[10], keys[10], 0));
	EXPECT(!tlfu_admit(s, keys[11], keys[13], 0));	/* 5 is not warm */
	EXPECT(!tlfu_admit(s, keys[12], keys[13], 1));	/* warm, unlucky */
	EXPECT(!tlfu_admit(s, keys[12], keys[13], 127));
	EXPECT(!tlfu_admit(s, keys[12], keys[13], 129));
	EXPECT(tlfu_admit(s, keys[12], keys[13], 0));	/* warm, lucky */
	EXPECT(tlfu_admit(s, keys[12], keys[13], 128));
	EXPECT(tlfu_admit(s, keys[12], keys[13], UINT32_C(0xFFFFFF80)));
	EXPECT(!tlfu_admit(s, keys[12], keys[12], 1));
	EXPECT(tlfu_admit(s, keys[12], keys[12], 0));
	{
		uint32_t	lucky = 0;

		for (uint32_t r = 0; r < 128 * 1000; r++)
			lucky += tlfu_admit(s, keys[12], keys[13], (uint32_t) splitmix64(r));
		/* one in 128: 1000 expected, sd about 31 */
		EXPECT(lucky > 850 && lucky < 1150);
	}
	free(s);

	/*
	 * Threads, no aging.  The same links, 3 rounds each, on a sketch wide
	 * enough for few collisions: collisions add, races take away.  Links of
	 * their own, 15 rounds each, on a sketch where every word holds links
	 * of several threads and races drive shared counters to 15 under one
	 * another: every link must come out at exactly 15.
	 */
	threads_without_aging(keys, THREAD_KEYS, 1 << 16, 3, true, true);
	threads_without_aging(keys, THREAD_KEYS, 1 << 16, 3, true, false);
	threads_without_aging(keys, 2048, 4096, 15, false, true);
	threads_without_aging(keys, 2048, 4096, 15, false, false);

	/*
	 * Threads and aging: on the narrowest sketch (640 increments a sample)
	 * THREADS threads increment 4096 links 25 times each, so the sketch
	 * ages hundreds of times while others increment.  Afterwards ops is
	 * below sample_size (no pass was skipped, or left ops to run away),
	 * the counters add up to at most 4 per counted increment (each raises
	 * at most 4, and a pass halves both; a pass skipped while ops was
	 * still halved would break it), and the sketch still works: a link
	 * then counted 15 times alone estimates at least 7 (15 halved, should
	 * the last of them age the sketch).
	 */
	s = new_sketch(64);
	{
		run_threads(s, keys, 4096, 25, true, true);
		EXPECT(s->ops < s->sample_size);
		EXPECT(sum_counters(s) <= 4 * (uint64_t) s->ops);
		run_threads(s, keys, 4096, 25, true, false);
		EXPECT(s->ops < s->sample_size);
		EXPECT(sum_counters(s) <= 4 * (uint64_t) s->ops);
		for (int k = 0; k < 15; k++)
			tlfu_increment(s, keys[0]);
		EXPECT(tlfu_estimate(s, keys[0]) >= 7);
	}
	free(s);

	return unit_done("test_tinylfu");
}
