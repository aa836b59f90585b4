/*
 * test/bench/hash_short.c: where hash64 stands against hashtext on short
 * keys, with the SQL call path taken away.
 *
 * hash64(text) is route_hash64 (src/routing.c): XXH64, seed 0, over the
 * text's bytes.  hashtext(text) under a deterministic collation is
 * hash_bytes (PostgreSQL's lookup3, src/common/hashfn.c), linked here from
 * the server's libpgcommon.a.  Both run over the same keys, in the same
 * loop, so what differs is the hash alone.  XXH3_64bits is timed too, as a
 * reference: it is what a different variant would cost, but hash64 is a
 * published, stable function (clients reproduce it), so its variant is
 * fixed.  jump_hash(key, 16) is hash64 followed by the jump loop (about
 * ln 16 + 1 steps, each a multiply and a floating-point division), the
 * floor of what the SQL function can cost.
 *
 * Keys are base62 codes of 4 to 16 characters (7: generated codes), each
 * length its own array of KEYS keys.  Two loops per hash:
 *	- throughput: hash every key and sum; independent calls overlap in the
 *	  CPU, as a scan calling the function row after row can;
 *	- latency: each key's start depends on the previous hash, so calls run
 *	  one after the other: the cost of one call's dependency chain.
 * Each figure is the median of ROUNDS, in ns per key.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench_timing.h"
#include "routing.h"

/* PostgreSQL's hash of a byte string (common/hashfn.h), from libpgcommon */
extern uint32_t hash_bytes(const unsigned char *k, int keylen);

#define KEYS	3000000
#define ROUNDS	9
#define MAXLEN	16

static const char alphabet[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

typedef uint64_t (*hash_fn) (const void *data, size_t len);

static uint64_t
h_hash64(const void *data, size_t len)
{
	return route_hash64(data, len);
}

static uint64_t
h_hashtext(const void *data, size_t len)
{
	return hash_bytes((const unsigned char *) data, (int) len);
}

static uint64_t
h_xxh3(const void *data, size_t len)
{
	return (uint64_t) XXH3_64bits(data, len);
}

/* jump_hash(text, 16): hash64, then the published jump loop over 16 buckets */
static uint64_t
h_jump16(const void *data, size_t len)
{
	return (uint64_t) route_jump(route_hash64(data, len), 16);
}

static const struct
{
	const char *name;
	hash_fn		fn;
}			hashes[] = {
	{"hashtext (hash_bytes, lookup3)", h_hashtext},
	{"hash64 (XXH64)", h_hash64},
	{"XXH3_64bits (reference)", h_xxh3},
	{"jump_hash(key, 16)", h_jump16},
};

#define NHASHES (sizeof(hashes) / sizeof(hashes[0]))

/* sink keeps the compiler from dropping the loops */
static volatile uint64_t sink;

/* zero, which the compiler cannot know is zero */
static volatile uint64_t opaque_zero = 0;

static double
time_throughput(hash_fn fn, const char *keys, size_t len)
{
	double		t0 = now_ns();
	uint64_t	sum = 0;

	for (size_t i = 0; i < KEYS; i++)
		sum += fn(keys + i * MAXLEN, len);
	sink = sum;
	return (now_ns() - t0) / KEYS;
}

static double
time_latency(hash_fn fn, const char *keys, size_t len)
{
	uint64_t	zero = opaque_zero;
	double		t0 = now_ns();
	uint64_t	h = 0;

	/* the next key's address depends on this hash: h & zero is 0, but the CPU must wait for h */
	for (size_t i = 0; i < KEYS; i++)
		h = fn(keys + i * MAXLEN + (h & zero), len) ^ h;
	sink = h;
	return (now_ns() - t0) / KEYS;
}

int
main(void)
{
	static const size_t lengths[] = {4, 7, 8, 12, 16};
	char	   *keys = malloc((size_t) KEYS * MAXLEN);
	uint64_t	state = 88172645463325252ULL;

	if (keys == NULL)
		return 1;
	printf("%d keys per length, medians of %d rounds, ns per key\n", KEYS, ROUNDS);
	printf("%-32s %6s %12s %12s %12s %12s\n", "hash", "bytes", "throughput", "x hashtext",
		   "latency", "x hashtext");
	for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++)
	{
		size_t		len = lengths[l];
		double		base_tp = 0,
					base_lat = 0;

		for (size_t i = 0; i < (size_t) KEYS * MAXLEN; i++)
		{
			/* xorshift64: keys need only look random */
			state ^= state << 13;
			state ^= state >> 7;
			state ^= state << 17;
			keys[i] = alphabet[state % 62];
		}
		for (size_t h = 0; h < NHASHES; h++)
		{
			double		tp[ROUNDS],
						lat[ROUNDS];

			for (int r = 0; r < ROUNDS; r++)
			{
				tp[r] = time_throughput(hashes[h].fn, keys, len);
				lat[r] = time_latency(hashes[h].fn, keys, len);
			}
			double		tp_med = median_of(tp, ROUNDS);
			double		lat_med = median_of(lat, ROUNDS);

			if (h == 0)
			{
				base_tp = tp_med;
				base_lat = lat_med;
			}
			printf("%-32s %6zu %12.2f %12.2f %12.2f %12.2f\n", hashes[h].name, len,
				   tp_med, tp_med / base_tp, lat_med, lat_med / base_lat);
		}
	}
	free(keys);
	return 0;
}
