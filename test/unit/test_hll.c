/*-------------------------------------------------------------------------
 *
 * test_hll.c
 *	  Unit tests of the pure HyperLogLog core: the pinned hash, exact sparse
 *	  counts, the switch to dense, merges against the sketch of the union,
 *	  the serialized bytes, every deserializer error, and the accuracy of
 *	  unique-visitor estimates on synthetic visitors.
 *
 * The accuracy figures printed here are the ones the README quotes.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hll.h"
#include "unit.h"

/* Enough distinct hashes for every structural test below */
#define NHASHES		20000

static uint64_t hashes[NHASHES];

/* Sketches are 7 kB each: keep them off the stack */
static hll_sketch sa,
			sb,
			sc;
static uint8_t buf_a[HLL_SERIALIZED_MAX];
static uint8_t buf_b[HLL_SERIALIZED_MAX];
static uint8_t ref_reg[HLL_REGISTERS];

/*
 * splitmix64 of a counter: a bijection of the counter, so the hashes it
 * gives are distinct, and deterministic, so a failure reproduces.
 */
static uint64_t
splitmix64(uint64_t i)
{
	uint64_t	z = i * 0x9E3779B97F4A7C15u + 0x9E3779B97F4A7C15u;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

/* ref_rank is the rank worked out bit by bit, a second opinion on hll.c */
static uint8_t
ref_rank(uint64_t h)
{
	uint8_t		r = 1;

	for (int bit = 63 - HLL_P; bit >= 0; bit--)
	{
		if ((h >> bit) & 1)
			return r;
		r++;
	}
	return HLL_RANK_MAX;
}

/* ref_registers fills ref_reg from hashes[from..to) */
static void
ref_registers(size_t from, size_t to)
{
	memset(ref_reg, 0, sizeof(ref_reg));
	for (size_t i = from; i < to; i++)
	{
		uint32_t	idx = (uint32_t) (hashes[i] >> (64 - HLL_P));
		uint8_t		r = ref_rank(hashes[i]);

		if (ref_reg[idx] < r)
			ref_reg[idx] = r;
	}
}

/* build makes s the sketch of hashes[from..to), added one by one */
static void
build(hll_sketch *s, size_t from, size_t to)
{
	hll_init(s);
	for (size_t i = from; i < to; i++)
		hll_add(s, hashes[i]);
}

/* same_sketch compares two sketches by their serialized bytes */
static int
same_sketch(const hll_sketch *x, const hll_sketch *y)
{
	size_t		nx = hll_serialized_size(x);

	if (nx != hll_serialized_size(y))
		return 0;
	hll_serialize(x, buf_a);
	hll_serialize(y, buf_b);
	return memcmp(buf_a, buf_b, nx) == 0;
}

/* is_exact: sparse, holding exactly the distinct hashes[from..to) */
static int
is_exact(const hll_sketch *s, size_t from, size_t to)
{
	if (s->dense || s->n != to - from || hll_estimate(s) != (double) (to - from))
		return 0;
	for (uint32_t i = 1; i < s->n; i++)
		if (s->sparse[i - 1] >= s->sparse[i])
			return 0;
	for (size_t i = from; i < to; i++)
	{
		int			found = 0;

		for (uint32_t j = 0; j < s->n && !found; j++)
			found = s->sparse[j] == hashes[i];
		if (!found)
			return 0;
	}
	return 1;
}

/* is_dense_of: dense, with the registers of hashes[from..to) */
static int
is_dense_of(const hll_sketch *s, size_t from, size_t to)
{
	ref_registers(from, to);
	return s->dense && memcmp(s->reg, ref_reg, sizeof(ref_reg)) == 0;
}

/* round_trips: serialize, deserialize, serialize again gives equal bytes */
static int
round_trips(const hll_sketch *s, size_t want_size)
{
	size_t		n = hll_serialized_size(s);
	size_t		bad = 0;

	if (n != want_size)
		return 0;
	hll_serialize(s, buf_a);
	if (hll_deserialize(buf_a, n, &sc, &bad) != HLL_OK)
		return 0;
	if (sc.dense != s->dense || hll_serialized_size(&sc) != n)
		return 0;
	if (s->dense ? memcmp(sc.reg, s->reg, sizeof(sc.reg)) != 0 :
		(sc.n != s->n || memcmp(sc.sparse, s->sparse, s->n * sizeof(uint64_t)) != 0))
		return 0;
	hll_serialize(&sc, buf_b);
	return memcmp(buf_a, buf_b, n) == 0 && hll_estimate(&sc) == hll_estimate(s);
}

/* deserialize_err runs the deserializer on len bytes of buf_a */
static hll_status
deserialize_err(size_t len, size_t *bad)
{
	hll_status	st;

	*bad = (size_t) -1;
	st = hll_deserialize(buf_a, len, &sc, bad);
	/* a refused input leaves the empty sketch behind */
	if (st != HLL_OK)
		EXPECT(!sc.dense && sc.n == 0);
	return st;
}

/* dense_err runs the deserializer on the dense image in buf_a */
static hll_status
dense_err(size_t *bad)
{
	return deserialize_err(HLL_SERIALIZED_MAX, bad);
}

/* put_dense writes a valid dense image of all-zero registers into buf_a */
static void
put_dense(void)
{
	memset(buf_a, 0, sizeof(buf_a));
	buf_a[0] = HLL_FORMAT_DENSE;
	buf_a[1] = HLL_P;
}

/* set_packed sets register r of the dense image in buf_a, 6 bits LSB first */
static void
set_packed(uint32_t r, uint32_t value)
{
	for (int k = 0; k < HLL_REGISTER_BITS; k++)
	{
		size_t		bit = (size_t) r * HLL_REGISTER_BITS + (size_t) k;
		uint8_t		mask = (uint8_t) (1u << (bit % 8));

		if ((value >> k) & 1)
			buf_a[HLL_HEADER_BYTES + bit / 8] |= mask;
		else
			buf_a[HLL_HEADER_BYTES + bit / 8] &= (uint8_t) ~mask;
	}
}

/* format_u32 writes v in decimal at p and returns the digit count */
static size_t
format_u32(char *p, uint32_t v)
{
	char		tmp[10];
	size_t		n = 0;

	do
	{
		tmp[n++] = (char) ('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/*
 * rms_error estimates `visitors` unique visitors "visitor-<trial>-<i>",
 * hashed with hll_hash, in each of `trials` sketches, prints the RMS and
 * mean relative error, and returns the RMS.  Trial numbers start at
 * first_trial so that the sizes use different visitors.
 */
static double
rms_error(uint32_t visitors, uint32_t trials, uint32_t first_trial)
{
	double		sum_sq = 0.0;
	double		sum = 0.0;
	double		rms;
	char		name[64];

	for (uint32_t t = first_trial; t < first_trial + trials; t++)
	{
		size_t		prefix;
		double		err;

		memcpy(name, "visitor-", 8);
		prefix = 8 + format_u32(name + 8, t);
		name[prefix++] = '-';
		hll_init(&sa);
		for (uint32_t i = 0; i < visitors; i++)
		{
			size_t		len = prefix + format_u32(name + prefix, i);

			hll_add(&sa, hll_hash(name, len));
		}
		err = (hll_estimate(&sa) - visitors) / visitors;
		sum_sq += err * err;
		sum += err;
	}
	rms = sqrt(sum_sq / trials);
	printf("test_hll: %7u visitors, %3u trials: "
		   "RMS relative error %.3f%%, mean %+.3f%%\n",
		   visitors, trials, 100.0 * rms, 100.0 * sum / trials);
	return rms;
}

int
main(void)
{
	size_t		bad = 0;
	double		e;

	for (size_t i = 0; i < NHASHES; i++)
		hashes[i] = splitmix64(i);

	/* the hash is XXH3_64bits, seed 0: values from python3-xxhash */
	EXPECT(hll_hash("", 0) == UINT64_C(0x2D06800538D394C2));
	EXPECT(hll_hash("visitor-0-0", 11) == UINT64_C(0x9D63C75D49935EE6));
	EXPECT(hll_hash("https://example.com/", 20) == UINT64_C(0x4CA4CA394042CCEB));

	/* the layout constants the README and the format comment quote */
	EXPECT(HLL_REGISTERS == 4096);
	EXPECT(HLL_SPARSE_MAX == 384);
	EXPECT(HLL_SERIALIZED_MAX == 3074);
	EXPECT(HLL_HEADER_BYTES + HLL_SPARSE_MAX * HLL_SPARSE_ENTRY_BYTES <=
		   HLL_SERIALIZED_MAX);

	/* the rank: its boundaries, against the bit-by-bit reference */
	EXPECT(ref_rank(UINT64_C(1) << 51) == 1);
	EXPECT(ref_rank(1) == 52);
	EXPECT(ref_rank(UINT64_C(0xFFF0000000000000)) == 53);
	build(&sa, 0, 0);
	hll_add(&sa, UINT64_C(0xFFF0000000000000));	/* register 4095, rank 53 */
	hll_add(&sa, UINT64_C(0x0000000000000001));	/* register 0, rank 52 */
	hll_add(&sa, UINT64_C(0x0018000000000000));	/* register 1, rank 1 */
	for (size_t i = 0; i < HLL_SPARSE_MAX; i++)
		hll_add(&sa, hashes[i]);
	EXPECT(sa.dense && sa.reg[4095] == 53 && sa.reg[0] >= 52 && sa.reg[1] >= 1);

	/* the empty sketch: estimate 0, two bytes */
	hll_init(&sa);
	EXPECT(!sa.dense && sa.n == 0 && hll_estimate(&sa) == 0.0);
	EXPECT(round_trips(&sa, 2));
	EXPECT(buf_a[0] == HLL_FORMAT_SPARSE && buf_a[1] == HLL_P);

	/* sparse counts are exact, duplicates included, up to HLL_SPARSE_MAX */
	{
		const size_t sizes[] = {1, 2, 100, 383, HLL_SPARSE_MAX};

		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		{
			size_t		n = sizes[k];

			build(&sa, 0, n);
			EXPECT(is_exact(&sa, 0, n));
			for (size_t i = n; i > 0; i--)	/* every one again, backwards */
				hll_add(&sa, hashes[i - 1]);
			EXPECT(is_exact(&sa, 0, n));
			hll_add_many(&sa, hashes, n);
			EXPECT(is_exact(&sa, 0, n));
		}
	}

	/* the same, with hll_hash of visitor names */
	hll_init(&sa);
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < 100; i++)
		{
			char		name[32];
			size_t		len;

			memcpy(name, "visitor-x-", 10);
			len = 10 + format_u32(name + 10, i);
			hll_add(&sa, hll_hash(name, len));
		}
	EXPECT(!sa.dense && hll_estimate(&sa) == 100.0);

	/* the hash past HLL_SPARSE_MAX turns the sketch dense; a repeat does not */
	build(&sa, 0, HLL_SPARSE_MAX);
	hll_add(&sa, hashes[HLL_SPARSE_MAX - 1]);
	hll_add(&sa, hashes[0]);
	EXPECT(is_exact(&sa, 0, HLL_SPARSE_MAX));
	hll_add(&sa, hashes[HLL_SPARSE_MAX]);
	EXPECT(is_dense_of(&sa, 0, HLL_SPARSE_MAX + 1));
	e = hll_estimate(&sa);
	EXPECT(fabs(e - (HLL_SPARSE_MAX + 1)) < 0.05 * (HLL_SPARSE_MAX + 1));
	hll_init(&sb);
	hll_add_many(&sb, hashes, HLL_SPARSE_MAX + 1);
	EXPECT(same_sketch(&sa, &sb));

	/* the form depends on the set only: added backwards, same bytes */
	build(&sa, 0, 5000);
	hll_init(&sb);
	for (size_t i = 5000; i > 0; i--)
		hll_add(&sb, hashes[i - 1]);
	EXPECT(is_dense_of(&sa, 0, 5000) && same_sketch(&sa, &sb));
	build(&sa, 0, 300);
	hll_init(&sb);
	for (size_t i = 300; i > 0; i--)
		hll_add(&sb, hashes[i - 1]);
	EXPECT(same_sketch(&sa, &sb));

	/* merge sparse + sparse, union still sparse: the exact union */
	build(&sa, 0, 200);
	build(&sb, 100, 300);
	hll_merge(&sa, &sb);
	EXPECT(is_exact(&sa, 0, 300));
	EXPECT(is_exact(&sb, 100, 300));	/* src untouched */

	/* merge sparse + sparse, union exactly HLL_SPARSE_MAX: still sparse */
	build(&sa, 0, 200);
	build(&sb, 184, HLL_SPARSE_MAX);
	hll_merge(&sa, &sb);
	EXPECT(is_exact(&sa, 0, HLL_SPARSE_MAX));

	/* merge sparse + sparse, one more: dense, the registers of the union */
	build(&sa, 0, 200);
	build(&sb, 185, HLL_SPARSE_MAX + 1);
	hll_merge(&sa, &sb);
	EXPECT(is_dense_of(&sa, 0, HLL_SPARSE_MAX + 1));
	build(&sa, 0, 300);
	build(&sb, 200, 700);
	hll_merge(&sb, &sa);
	EXPECT(is_dense_of(&sb, 0, 700));
	build(&sa, 0, HLL_SPARSE_MAX);
	build(&sb, HLL_SPARSE_MAX, 2 * HLL_SPARSE_MAX);
	hll_merge(&sa, &sb);
	EXPECT(is_dense_of(&sa, 0, 2 * HLL_SPARSE_MAX));

	/* merge sparse + dense, both ways */
	build(&sa, 0, 100);
	build(&sb, 50, 5000);
	hll_merge(&sa, &sb);
	EXPECT(is_dense_of(&sa, 0, 5000));
	build(&sa, 0, 100);
	hll_merge(&sb, &sa);
	EXPECT(is_dense_of(&sb, 0, 5000));

	/* merge dense + dense */
	build(&sa, 0, 3000);
	build(&sb, 2000, NHASHES);
	hll_merge(&sa, &sb);
	EXPECT(is_dense_of(&sa, 0, NHASHES));
	EXPECT(is_dense_of(&sb, 2000, NHASHES));

	/* merging a sketch with itself or with the empty sketch changes nothing */
	build(&sa, 0, 100);
	hll_merge(&sa, &sa);
	EXPECT(is_exact(&sa, 0, 100));
	build(&sa, 0, 1000);
	hll_merge(&sa, &sa);
	EXPECT(is_dense_of(&sa, 0, 1000));
	hll_init(&sb);
	hll_merge(&sa, &sb);
	EXPECT(is_dense_of(&sa, 0, 1000));
	hll_merge(&sb, &sa);
	EXPECT(is_dense_of(&sb, 0, 1000));

	/* serialized sizes at 1, 100 and 100,000 visitors, and round trips */
	build(&sa, 0, 1);
	EXPECT(round_trips(&sa, 10));
	build(&sa, 0, 100);
	EXPECT(round_trips(&sa, 802));
	build(&sa, 0, HLL_SPARSE_MAX);
	EXPECT(round_trips(&sa, 3074));
	build(&sa, 0, HLL_SPARSE_MAX + 1);
	EXPECT(round_trips(&sa, 3074));
	hll_init(&sa);
	for (uint64_t i = 0; i < 100000; i++)
		hll_add(&sa, splitmix64(i + 1000000));
	EXPECT(round_trips(&sa, 3074));

	/* the exact bytes: a sparse hash is little-endian */
	hll_init(&sa);
	hll_add(&sa, UINT64_C(0x0102030405060708));
	hll_serialize(&sa, buf_a);
	{
		const uint8_t want[] = {1, 12, 8, 7, 6, 5, 4, 3, 2, 1};

		EXPECT(memcmp(buf_a, want, sizeof(want)) == 0);
	}

	/*
	 * The exact bytes: registers 0..3 = 1, 2, 3, 53 pack to 0xD43081 read
	 * little-endian; register 4095 = 53 is the top 6 bits of the last byte.
	 */
	put_dense();
	buf_a[2] = 0x81;
	buf_a[3] = 0x30;
	buf_a[4] = 0xD4;
	buf_a[HLL_SERIALIZED_MAX - 1] = 53 << 2;
	EXPECT(dense_err(&bad) == HLL_OK);
	EXPECT(sc.dense && sc.reg[0] == 1 && sc.reg[1] == 2 && sc.reg[2] == 3 &&
		   sc.reg[3] == 53 && sc.reg[4] == 0 && sc.reg[4094] == 0 &&
		   sc.reg[4095] == 53);
	hll_serialize(&sc, buf_b);
	EXPECT(memcmp(buf_a, buf_b, HLL_SERIALIZED_MAX) == 0);
	put_dense();
	for (uint32_t r = 0; r < HLL_REGISTERS; r++)
		set_packed(r, (r * 7) % (HLL_RANK_MAX + 1));
	EXPECT(dense_err(&bad) == HLL_OK);
	{
		int			ok = 1;

		for (uint32_t r = 0; r < HLL_REGISTERS; r++)
			ok &= sc.reg[r] == (r * 7) % (HLL_RANK_MAX + 1);
		EXPECT(ok);
	}

	/* errors: too short for a header */
	EXPECT(deserialize_err(0, &bad) == HLL_BAD_LENGTH && bad == 0);
	buf_a[0] = HLL_FORMAT_SPARSE;
	EXPECT(deserialize_err(1, &bad) == HLL_BAD_LENGTH && bad == 1);
	buf_a[0] = HLL_FORMAT_DENSE;
	EXPECT(deserialize_err(1, &bad) == HLL_BAD_LENGTH && bad == 1);

	/* errors: the format byte, checked first */
	buf_a[0] = 0;
	buf_a[1] = HLL_P;
	EXPECT(deserialize_err(2, &bad) == HLL_BAD_FORMAT && bad == 0);
	buf_a[0] = 3;
	EXPECT(deserialize_err(1, &bad) == HLL_BAD_FORMAT && bad == 0);
	buf_a[0] = 0xFF;
	buf_a[1] = 0;
	EXPECT(deserialize_err(10, &bad) == HLL_BAD_FORMAT && bad == 0);

	/* errors: the precision byte */
	buf_a[0] = HLL_FORMAT_SPARSE;
	buf_a[1] = HLL_P - 1;
	EXPECT(deserialize_err(2, &bad) == HLL_BAD_PRECISION && bad == 1);
	put_dense();
	buf_a[1] = 14;
	EXPECT(dense_err(&bad) == HLL_BAD_PRECISION && bad == 1);

	/* errors: a length that fits neither form */
	build(&sa, 0, 3);
	hll_serialize(&sa, buf_a);
	EXPECT(deserialize_err(2 + 3 * 8, &bad) == HLL_OK);
	EXPECT(deserialize_err(2 + 3 * 8 - 1, &bad) == HLL_BAD_LENGTH && bad == 25);
	EXPECT(deserialize_err(2 + 3 * 8 + 1, &bad) == HLL_BAD_LENGTH && bad == 27);
	EXPECT(deserialize_err(3, &bad) == HLL_BAD_LENGTH && bad == 3);
	put_dense();
	EXPECT(deserialize_err(HLL_SERIALIZED_MAX - 1, &bad) == HLL_BAD_LENGTH &&
		   bad == HLL_SERIALIZED_MAX - 1);
	EXPECT(deserialize_err(HLL_SERIALIZED_MAX + 1, &bad) == HLL_BAD_LENGTH &&
		   bad == HLL_SERIALIZED_MAX + 1);
	EXPECT(deserialize_err(2, &bad) == HLL_BAD_LENGTH && bad == 2);
	EXPECT(deserialize_err(HLL_SERIALIZED_MAX - 3, &bad) == HLL_BAD_LENGTH);

	/* errors: more hashes than a sparse sketch holds */
	{
		static uint8_t big[HLL_HEADER_BYTES + (HLL_SPARSE_MAX + 1) * 8];
		hll_status	st;

		big[0] = HLL_FORMAT_SPARSE;
		big[1] = HLL_P;
		for (size_t i = 0; i <= HLL_SPARSE_MAX; i++)	/* hashes 0, 1, 2, ... */
		{
			big[2 + 8 * i] = (uint8_t) i;
			big[2 + 8 * i + 1] = (uint8_t) (i >> 8);
		}
		st = hll_deserialize(big, sizeof(big) - 8, &sc, &bad);
		EXPECT(st == HLL_OK && !sc.dense && sc.n == HLL_SPARSE_MAX);
		EXPECT(sc.sparse[0] == 0 &&
			   sc.sparse[HLL_SPARSE_MAX - 1] == HLL_SPARSE_MAX - 1);
		st = hll_deserialize(big, sizeof(big), &sc, &bad);
		EXPECT(st == HLL_SPARSE_TOO_MANY && bad == 2 + 8 * HLL_SPARSE_MAX);
		EXPECT(!sc.dense && sc.n == 0);
	}

	/* errors: sparse hashes not strictly increasing */
	hll_init(&sa);
	hll_add(&sa, 5);
	hll_add(&sa, 6);
	hll_add(&sa, UINT64_MAX);
	hll_serialize(&sa, buf_a);
	EXPECT(deserialize_err(26, &bad) == HLL_OK && sc.n == 3 &&
		   sc.sparse[2] == UINT64_MAX);
	memcpy(buf_a + 10, buf_a + 2, 8);	/* 5, 5, max */
	EXPECT(deserialize_err(26, &bad) == HLL_SPARSE_UNSORTED && bad == 10);
	buf_a[2] = 7;				/* 7, 5, max */
	EXPECT(deserialize_err(26, &bad) == HLL_SPARSE_UNSORTED && bad == 10);
	buf_a[2] = 4;
	buf_a[18] = 0xFE;			/* 4, 5, 2^64 - 2 */
	EXPECT(deserialize_err(26, &bad) == HLL_OK);
	memset(buf_a + 18, 0, 8);	/* 4, 5, 0 */
	EXPECT(deserialize_err(26, &bad) == HLL_SPARSE_UNSORTED && bad == 18);
	buf_a[25] = 0x80;			/* 4, 5, 2^63: the order is unsigned */
	EXPECT(deserialize_err(26, &bad) == HLL_OK);

	/* errors: a dense register above 53, at its first byte */
	put_dense();
	set_packed(0, 54);
	EXPECT(dense_err(&bad) == HLL_REGISTER_RANGE && bad == 2);
	put_dense();
	set_packed(2, 63);
	EXPECT(dense_err(&bad) == HLL_REGISTER_RANGE && bad == 3);
	put_dense();
	set_packed(3, 53);
	set_packed(4094, 53);
	EXPECT(dense_err(&bad) == HLL_OK);
	set_packed(4095, 54);
	EXPECT(dense_err(&bad) == HLL_REGISTER_RANGE &&
		   bad == HLL_SERIALIZED_MAX - 1);
	memset(buf_a + 2, 0xFF, HLL_DENSE_BYTES);
	EXPECT(dense_err(&bad) == HLL_REGISTER_RANGE && bad == 2);

	/* every status has its own sentence; an unknown code still gets one */
	for (int c = HLL_OK; c <= HLL_REGISTER_RANGE + 1; c++)
	{
		const char *m = hll_error_message(c);
		size_t		len = strlen(m);

		EXPECT(len > 0 && m[0] >= 'A' && m[0] <= 'Z' && m[len - 1] == '.');
		for (int o = HLL_OK; o < c; o++)
			EXPECT(strcmp(m, hll_error_message(o)) != 0);
	}
	EXPECT(strlen(hll_error_message(-1)) > 0);

	/* forged dense sketches still estimate finite: all zero, all saturated */
	put_dense();
	EXPECT(dense_err(&bad) == HLL_OK && hll_estimate(&sc) == 0.0);
	for (uint32_t r = 0; r < HLL_REGISTERS; r++)
		set_packed(r, HLL_RANK_MAX);
	EXPECT(dense_err(&bad) == HLL_OK);
	e = hll_estimate(&sc);
	EXPECT(isfinite(e) && e == HLL_ESTIMATE_MAX && e == 0x1p62);
	EXPECT((double) (int64_t) e == e);
	set_packed(17, 0);
	EXPECT(dense_err(&bad) == HLL_OK);
	e = hll_estimate(&sc);
	EXPECT(isfinite(e) && e > 0.0);

	/*
	 * THE ERROR TEST: unique visitors estimated from 10^5 synthetic
	 * visitors, RMS relative error over 200 trials within 2% (the standard
	 * error is 1.04 / sqrt(4096) = 1.625%).  The other sizes are printed
	 * for the README and held to the same bound.
	 */
	EXPECT(rms_error(1000, 1000, 0) <= 0.02);
	EXPECT(rms_error(10000, 500, 1000) <= 0.02);
	EXPECT(rms_error(100000, 200, 2000) <= 0.02);
	EXPECT(rms_error(1000000, 100, 3000) <= 0.02);

	return unit_done("test_hll");
}
