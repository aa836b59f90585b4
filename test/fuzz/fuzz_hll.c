/*-------------------------------------------------------------------------
 *
 * fuzz_hll.c
 *	  libFuzzer target for the pure HyperLogLog core (src/hll.c).
 *
 * Every input is used once or twice:
 *	- as a serialized sketch: the deserializer must not crash and must agree
 *	  with an independent reference on the status and the offset it
 *	  reports;
 *	- if its length is 1 + 3k, as a recipe for a dense image (a fill value,
 *	  then triples of a 12-bit register index and a 6-bit value) that the
 *	  reference packs, since run.sh's -max_len keeps raw inputs far below
 *	  the 3074 bytes of a dense sketch.  The deserializer must refuse exactly
 *	  the images with a register above 53, at that register, and otherwise
 *	  read back the recipe's registers.
 *
 * Whenever a sketch is accepted it must re-serialize to the same bytes and
 * estimate finite and >= 0; merged with itself it must not change; merged
 * with a sketch built from hashes derived from the input, both ways round,
 * it must give the same bytes, and those must be the sketch of the union as
 * the reference computes it (the sorted set while it fits, else registers).
 *
 * Any violation aborts, which libFuzzer reports as a finding.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hll.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/*
 * Hashes in the sketch built from an input: two per input byte, up to this,
 * which is well past HLL_SPARSE_MAX so that unions cross it
 */
#define MAX_BUILT	(2 * 256 + 64)

static hll_sketch in_sketch,
			built,
			built_one_by_one,
			u1,
			u2,
			tmp;
static uint8_t image[HLL_SERIALIZED_MAX];
static uint8_t out[HLL_SERIALIZED_MAX];
static uint8_t out2[HLL_SERIALIZED_MAX];
static uint8_t ref_reg[HLL_REGISTERS];
static uint8_t unpacked[HLL_REGISTERS];	/* reference_status's registers */
static uint64_t built_hashes[MAX_BUILT];
static uint64_t union_hashes[HLL_SPARSE_MAX + MAX_BUILT];

static uint64_t
splitmix64(uint64_t x)
{
	uint64_t	z = x + 0x9E3779B97F4A7C15u;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

/* reference_rank counts leading zeros of the 52 low bits one at a time */
static uint8_t
reference_rank(uint64_t h)
{
	uint8_t		r = 1;

	for (int bit = 63 - HLL_P; bit >= 0; bit--, r++)
		if ((h >> bit) & 1)
			return r;
	return HLL_RANK_MAX;
}

static void
reference_add(uint8_t *reg, uint64_t h)
{
	uint32_t	idx = (uint32_t) (h >> (64 - HLL_P));
	uint8_t		r = reference_rank(h);

	if (reg[idx] < r)
		reg[idx] = r;
}

/*
 * reference_unpack reads the 6-bit registers of a dense payload from a
 * little-endian bit stream, a byte at a time (hll.c reads 3-byte groups)
 */
static void
reference_unpack(const uint8_t *payload, uint8_t *reg)
{
	uint32_t	acc = 0;
	uint32_t	nbits = 0;
	size_t		next = 0;

	for (uint32_t r = 0; r < HLL_REGISTERS; r++)
	{
		while (nbits < HLL_REGISTER_BITS)
		{
			acc |= (uint32_t) payload[next++] << nbits;
			nbits += 8;
		}
		reg[r] = (uint8_t) (acc & 63);
		acc >>= HLL_REGISTER_BITS;
		nbits -= HLL_REGISTER_BITS;
	}
}

/* reference_pack is the inverse, writing a byte whenever 8 bits are ready */
static void
reference_pack(const uint8_t *reg, uint8_t *payload)
{
	uint32_t	acc = 0;
	uint32_t	nbits = 0;
	size_t		next = 0;

	for (uint32_t r = 0; r < HLL_REGISTERS; r++)
	{
		acc |= (uint32_t) (reg[r] & 63) << nbits;
		nbits += HLL_REGISTER_BITS;
		while (nbits >= 8)
		{
			payload[next++] = (uint8_t) acc;
			acc >>= 8;
			nbits -= 8;
		}
	}
}

/* reference_hash_greater: a > b, comparing big-end bytes first */
static int
reference_hash_greater(const uint8_t *a, const uint8_t *b)
{
	for (int i = 7; i >= 0; i--)
		if (a[i] != b[i])
			return a[i] > b[i];
	return 0;
}

/* reference_status is what hll_deserialize must answer, and where */
static hll_status
reference_status(const uint8_t *d, size_t len, size_t *bad)
{
	if (len == 0)
	{
		*bad = 0;
		return HLL_BAD_LENGTH;
	}
	if (d[0] != 1 && d[0] != 2)
	{
		*bad = 0;
		return HLL_BAD_FORMAT;
	}
	if (len == 1)
	{
		*bad = 1;
		return HLL_BAD_LENGTH;
	}
	if (d[1] != 12)
	{
		*bad = 1;
		return HLL_BAD_PRECISION;
	}
	if (d[0] == 1)
	{
		if ((len - 2) % 8 != 0)
		{
			*bad = len;
			return HLL_BAD_LENGTH;
		}
		if ((len - 2) / 8 > 384)
		{
			*bad = 2 + 8 * 384;
			return HLL_SPARSE_TOO_MANY;
		}
		for (size_t off = 10; off < len; off += 8)
			if (!reference_hash_greater(d + off, d + off - 8))
			{
				*bad = off;
				return HLL_SPARSE_UNSORTED;
			}
		return HLL_OK;
	}
	if (len != 3074)
	{
		*bad = len;
		return HLL_BAD_LENGTH;
	}
	reference_unpack(d + 2, unpacked);
	for (uint32_t r = 0; r < 4096; r++)
		if (unpacked[r] > 53)
		{
			*bad = 2 + (size_t) r * 6 / 8;
			return HLL_REGISTER_RANGE;
		}
	return HLL_OK;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

/*
 * same_sketch: equal as sets of hashes or as registers.  Serialization is a
 * function of exactly these fields, and its round trip is checked on its own,
 * so comparing fields is comparing bytes, at a fraction of the cost.
 */
static int
same_sketch(const hll_sketch *a, const hll_sketch *b)
{
	if (a->dense != b->dense)
		return 0;
	if (a->dense)
		return memcmp(a->reg, b->reg, sizeof(a->reg)) == 0;
	return a->n == b->n &&
		memcmp(a->sparse, b->sparse, a->n * sizeof(uint64_t)) == 0;
}

static void
check_estimate(const hll_sketch *s)
{
	double		e = hll_estimate(s);

	CHECK(isfinite(e) && e >= 0.0 && e <= HLL_ESTIMATE_MAX);
	if (!s->dense)
		CHECK(e == (double) s->n);
}

/*
 * check_accepted holds an accepted sketch s, deserialized from len bytes at
 * d, to the promises in the file header.  Hashes for the built sketch come
 * from the input (seed), overlap s's own, and repeat, so that merges see
 * shared hashes, duplicates, and unions on both sides of HLL_SPARSE_MAX.
 */
static void
check_accepted(const hll_sketch *s, const uint8_t *d, size_t len,
			   uint64_t seed, size_t nbuilt)
{
	size_t		nunion = 0;

	/* re-serializes to the input */
	CHECK(hll_serialized_size(s) == len);
	hll_serialize(s, out);
	CHECK(memcmp(out, d, len) == 0);
	check_estimate(s);

	/* merged with itself, or with a copy, it is unchanged */
	memcpy(&tmp, s, sizeof(tmp));
	hll_merge(&tmp, &tmp);
	CHECK(same_sketch(&tmp, s));
	hll_merge(&tmp, s);
	CHECK(same_sketch(&tmp, s));

	/* the built sketch: added in one go or one by one, the same */
	for (size_t k = 0; k < nbuilt; k++)
	{
		if (k % 7 == 3)
			built_hashes[k] = built_hashes[k / 2];	/* a repeat */
		else if (k % 3 == 0 && !s->dense && k / 3 < s->n)
			built_hashes[k] = s->sparse[k / 3];	/* shared with s */
		else
			built_hashes[k] = splitmix64(seed + k);
	}
	hll_init(&built);
	hll_add_many(&built, built_hashes, nbuilt);
	hll_init(&built_one_by_one);
	for (size_t k = 0; k < nbuilt; k++)
		hll_add(&built_one_by_one, built_hashes[k]);
	CHECK(same_sketch(&built, &built_one_by_one));
	check_estimate(&built);

	/* the union, both ways round */
	memcpy(&u1, s, sizeof(u1));
	hll_merge(&u1, &built);
	memcpy(&u2, &built, sizeof(u2));
	hll_merge(&u2, s);
	CHECK(same_sketch(&u1, &u2));
	check_estimate(&u1);

	/* ... is the sketch of the union */
	if (!s->dense)
	{
		memcpy(union_hashes, s->sparse, s->n * sizeof(uint64_t));
		memcpy(union_hashes + s->n, built_hashes, nbuilt * sizeof(uint64_t));
		qsort(union_hashes, s->n + nbuilt, sizeof(uint64_t), cmp_u64);
		for (size_t k = 0; k < s->n + nbuilt; k++)
			if (nunion == 0 || union_hashes[nunion - 1] != union_hashes[k])
				union_hashes[nunion++] = union_hashes[k];
	}
	if (!s->dense && nunion <= HLL_SPARSE_MAX)
	{
		CHECK(!u1.dense && u1.n == nunion);
		CHECK(memcmp(u1.sparse, union_hashes, nunion * sizeof(uint64_t)) == 0);
	}
	else
	{
		if (s->dense)
			memcpy(ref_reg, s->reg, sizeof(ref_reg));
		else
		{
			memset(ref_reg, 0, sizeof(ref_reg));
			for (size_t k = 0; k < nunion; k++)
				reference_add(ref_reg, union_hashes[k]);
		}
		for (size_t k = 0; k < nbuilt; k++)
			reference_add(ref_reg, built_hashes[k]);
		CHECK(u1.dense && memcmp(u1.reg, ref_reg, sizeof(ref_reg)) == 0);
	}

	/* and the union reads back */
	{
		size_t		n = hll_serialized_size(&u1);
		size_t		bad = 0;

		hll_serialize(&u1, out);
		CHECK(hll_deserialize(out, n, &tmp, &bad) == HLL_OK);
		CHECK(same_sketch(&tmp, &u1));
		hll_serialize(&tmp, out2);
		CHECK(memcmp(out, out2, n) == 0);
	}
}

/* as_serialized: the input itself, as a serialized sketch */
static void
as_serialized(const uint8_t *data, size_t size, uint64_t seed)
{
	size_t		bad = (size_t) -1;
	size_t		want_bad = (size_t) -2;
	hll_status	st = hll_deserialize(data, size, &in_sketch, &bad);
	hll_status	want = reference_status(data, size, &want_bad);

	CHECK(st == want);
	if (st != HLL_OK)
	{
		CHECK(bad == want_bad);
		CHECK(!in_sketch.dense && in_sketch.n == 0);
		CHECK(hll_error_message(st) != NULL);
		return;
	}
	if (in_sketch.dense)
		CHECK(memcmp(in_sketch.reg, unpacked, sizeof(unpacked)) == 0);
	check_accepted(&in_sketch, data, size, seed,
				   size < MAX_BUILT / 2 ? 2 * size : MAX_BUILT);
}

/*
 * as_dense_recipe: byte 0 gives every register a value (its low 6 bits),
 * then each triple sets register (b0 | (b1 & 15) << 8) to b2's low 6 bits.
 * Only inputs of exactly that shape, 1 + 3k bytes, are recipes: a dense
 * sketch costs thousands of register visits, and this keeps the target's
 * speed within a few times the others'.
 */
static void
as_dense_recipe(const uint8_t *data, size_t size, uint64_t seed)
{
	uint8_t		want[HLL_REGISTERS];
	size_t		bad = (size_t) -1;
	size_t		want_bad = (size_t) -2;
	hll_status	st;

	if (size % 3 != 1)
		return;
	memset(want, data[0] & 63, sizeof(want));
	for (size_t i = 1; i < size; i += 3)
		want[data[i] | (data[i + 1] & 15) << 8] = data[i + 2] & 63;

	image[0] = 2;
	image[1] = 12;
	reference_pack(want, image + 2);

	st = hll_deserialize(image, sizeof(image), &in_sketch, &bad);
	CHECK(st == reference_status(image, sizeof(image), &want_bad));
	if (st != HLL_OK)
	{
		CHECK(st == HLL_REGISTER_RANGE && bad == want_bad);
		return;
	}
	CHECK(in_sketch.dense && memcmp(in_sketch.reg, want, sizeof(want)) == 0);
	check_accepted(&in_sketch, image, sizeof(image), seed, size % MAX_BUILT);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t	seed = hll_hash(data, size);

	as_serialized(data, size, seed);
	as_dense_recipe(data, size, seed);
	return 0;
}
