/*-------------------------------------------------------------------------
 *
 * hll.c
 *	  Pure HyperLogLog core (no PostgreSQL headers); see hll.h.
 *
 * Serialized format (stored in bytea, so it never changes meaning; every
 * multi-byte value is little-endian whatever the host):
 *
 *	byte 0		format: 1 = sparse, 2 = dense
 *	byte 1		precision: the number of index bits, always 12
 *	sparse		then n hashes of 8 bytes each, strictly increasing as
 *				unsigned 64-bit integers, 0 <= n <= 384
 *	dense		then 3072 bytes holding the 4096 registers, 6 bits each:
 *				register i is bits 6i .. 6i+5 of the payload read as one
 *				little-endian bit string (bit k is bit k % 8 of byte k / 8),
 *				so registers 4j .. 4j+3 fill bytes 3j .. 3j+2; every
 *				register is 0 .. 53
 *
 * Sizes: the empty sketch is 2 bytes; 1 visitor 10 bytes; 100 visitors 802
 * bytes; 384 visitors 3074 bytes, the largest sparse sketch; from 385
 * visitors on (100,000 visitors, say) the sketch is dense, 3074 bytes.  So
 * the sparse form is never larger than the dense one, and a sketch never
 * exceeds 3074 bytes.
 *
 * A hash splits into the register index, its top 12 bits, and the rank,
 * 1 + the number of leading zeros of the other 52 bits (53 when they are
 * all zero).  A dense register holds the largest rank of the hashes that
 * fell into it.
 *
 * Nothing here shifts by the width of a type, takes clz of zero, uses signed
 * arithmetic that could overflow or loads unaligned words: bytes are
 * assembled one at a time.  The fuzzer in test/fuzz/fuzz_hll.c holds the
 * deserializer to that.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "hll.h"

/*
 * XXH3's output was frozen in xxHash 0.8.0; earlier releases computed a
 * different, experimental XXH3, which would make stored sketches disagree
 * with new hashes of the same visitors.
 */
#if XXH_VERSION_NUMBER < 800
#error "pg_shorturl needs libxxhash 0.8.0 or later (XXH3 is stable from 0.8.0)"
#endif

/* The messages and the sizes above spell out these values: keep in step */
_Static_assert(HLL_P == 12, "update the messages");
_Static_assert(HLL_SPARSE_MAX == 384, "update the messages and sizes");
_Static_assert(HLL_SERIALIZED_MAX == 3074, "update the messages and sizes");
_Static_assert(HLL_RANK_MAX == 53, "update the messages");
_Static_assert(HLL_RANK_MAX < (1 << HLL_REGISTER_BITS), "a rank must fit");
_Static_assert(HLL_REGISTERS % 4 == 0, "registers pack four to 3 bytes");

/* Registers pack four to a 24-bit group, three bytes */
#define HLL_GROUP_REGISTERS	4
#define HLL_GROUP_BYTES		3
#define HLL_REGISTER_MASK	((1u << HLL_REGISTER_BITS) - 1)

/* The hash bits below the index: q in Ertl's paper */
#define HLL_Q				(64 - HLL_P)

/* alpha_inf = 1 / (2 ln 2), the limit of HyperLogLog's alpha_m as m grows */
#define HLL_ALPHA_INF		0.72134752044448170368


/* ---------------------------------------------------------------- */
/* Hashes, ranks and byte order                                      */
/* ---------------------------------------------------------------- */

/*
 * hll_hash is XXH3_64bits with its default seed, whose output xxHash
 * promises not to change, so hashes stored in sketches stay comparable.
 */
uint64_t
hll_hash(const void *data, size_t len)
{
	return (uint64_t) XXH3_64bits(data, len);
}

/* hll_index is the register a hash falls into: its top HLL_P bits */
static inline uint32_t
hll_index(uint64_t hash)
{
	return (uint32_t) (hash >> HLL_Q);
}

/*
 * hll_rank is 1 + the number of leading zeros of the low HLL_Q bits.  They
 * are shifted to the top first; when they are all zero clz is undefined, so
 * that case is the cap, HLL_RANK_MAX.
 */
static inline uint8_t
hll_rank(uint64_t hash)
{
	uint64_t	rest = hash << HLL_P;

	if (rest == 0)
		return HLL_RANK_MAX;
	return (uint8_t) (__builtin_clzll(rest) + 1);
}

static void
put_u64_le(uint8_t *out, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t) (v >> (8 * i));
}

static uint64_t
get_u64_le(const uint8_t *in)
{
	uint64_t	v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t) in[i] << (8 * i);
	return v;
}


/* ---------------------------------------------------------------- */
/* Building sketches                                                 */
/* ---------------------------------------------------------------- */

void
hll_init(hll_sketch *s)
{
	s->dense = false;
	s->n = 0;
}

/* dense_add raises the hash's register to its rank */
static inline void
dense_add(hll_sketch *s, uint64_t hash)
{
	uint32_t	idx = hll_index(hash);
	uint8_t		rank = hll_rank(hash);

	if (s->reg[idx] < rank)
		s->reg[idx] = rank;
}

/* to_dense turns a sparse sketch into registers holding the same hashes */
static void
to_dense(hll_sketch *s)
{
	memset(s->reg, 0, sizeof(s->reg));
	for (uint32_t i = 0; i < s->n; i++)
		dense_add(s, s->sparse[i]);
	s->dense = true;
	s->n = 0;
}

/* sparse_lower_bound is the first position whose hash is >= hash */
static uint32_t
sparse_lower_bound(const hll_sketch *s, uint64_t hash)
{
	uint32_t	lo = 0;
	uint32_t	hi = s->n;

	while (lo < hi)
	{
		uint32_t	mid = lo + (hi - lo) / 2;

		if (s->sparse[mid] < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * hll_add inserts into the sorted array while it has room; the hash that
 * would make it HLL_SPARSE_MAX + 1 distinct turns the sketch dense.
 */
void
hll_add(hll_sketch *s, uint64_t hash)
{
	uint32_t	pos;

	if (s->dense)
	{
		dense_add(s, hash);
		return;
	}

	pos = sparse_lower_bound(s, hash);
	if (pos < s->n && s->sparse[pos] == hash)
		return;
	if (s->n == HLL_SPARSE_MAX)
	{
		to_dense(s);
		dense_add(s, hash);
		return;
	}
	memmove(&s->sparse[pos + 1], &s->sparse[pos],
			(size_t) (s->n - pos) * sizeof(s->sparse[0]));
	s->sparse[pos] = hash;
	s->n++;
}

/* hll_add_many is hll_add in a loop, with the dense case kept tight */
void
hll_add_many(hll_sketch *s, const uint64_t *hashes, size_t n)
{
	size_t		i = 0;

	while (i < n && !s->dense)
		hll_add(s, hashes[i++]);
	for (; i < n; i++)
		dense_add(s, hashes[i]);
}

/*
 * hll_merge: a dense side makes the result dense (registers take the larger
 * value); two sparse sides merge as sorted sets, and if the union turns out
 * larger than HLL_SPARSE_MAX, dst turns dense and takes src's hashes.  The
 * result depends only on the union, as if every hash had been added to one
 * sketch.
 */
void
hll_merge(hll_sketch *dst, const hll_sketch *src)
{
	uint64_t	merged[HLL_SPARSE_MAX];
	uint32_t	i = 0;
	uint32_t	j = 0;
	uint32_t	k = 0;

	/* a set united with itself is itself; also spares aliasing worries */
	if (dst == src)
		return;

	if (src->dense)
	{
		if (!dst->dense)
			to_dense(dst);
		for (uint32_t r = 0; r < HLL_REGISTERS; r++)
			if (dst->reg[r] < src->reg[r])
				dst->reg[r] = src->reg[r];
		return;
	}

	if (dst->dense)
	{
		for (uint32_t r = 0; r < src->n; r++)
			dense_add(dst, src->sparse[r]);
		return;
	}

	while (i < dst->n || j < src->n)
	{
		uint64_t	next;

		if (j == src->n || (i < dst->n && dst->sparse[i] < src->sparse[j]))
			next = dst->sparse[i++];
		else if (i == dst->n || src->sparse[j] < dst->sparse[i])
			next = src->sparse[j++];
		else
		{
			next = dst->sparse[i];
			i++;
			j++;
		}

		if (k == HLL_SPARSE_MAX)
		{
			/* one more distinct hash than sparse holds: go dense */
			to_dense(dst);
			for (uint32_t r = 0; r < src->n; r++)
				dense_add(dst, src->sparse[r]);
			return;
		}
		merged[k++] = next;
	}
	memcpy(dst->sparse, merged, (size_t) k * sizeof(merged[0]));
	dst->n = k;
}


/* ---------------------------------------------------------------- */
/* Estimating                                                        */
/* ---------------------------------------------------------------- */

/*
 * ertl_sigma is Ertl's sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), for
 * 0 <= x < 1.  The terms shrink doubly exponentially, so the sum stops
 * changing after a few dozen steps.
 */
static double
ertl_sigma(double x)
{
	double		y = 1.0;
	double		z = x;
	double		prev;

	do
	{
		x *= x;
		prev = z;
		z += x * y;
		y += y;
	} while (z != prev);
	return z;
}

/*
 * ertl_tau is Ertl's tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3,
 * for 0 <= x <= 1; tau(0) = tau(1) = 0.  The terms shrink as x^(2^-k)
 * approaches 1, so the sum stops changing after a few dozen steps.
 */
static double
ertl_tau(double x)
{
	double		y = 1.0;
	double		z;
	double		prev;

	if (x == 0.0 || x == 1.0)
		return 0.0;
	z = 1.0 - x;
	do
	{
		x = sqrt(x);
		prev = z;
		y *= 0.5;
		z -= (1.0 - x) * (1.0 - x) * y;
	} while (z != prev);
	return z / 3.0;
}

/*
 * hll_estimate: exact while sparse; dense, the improved raw estimator of
 * Otmar Ertl, "New cardinality estimation algorithms for HyperLogLog
 * sketches" (2017, arXiv:1702.01284), as Redis's hllCount uses it.  It
 * needs neither bias tables nor a switch to linear counting:
 *
 *	E = alpha_inf m^2 / (m sigma(C_0 / m) + sum_{k=1}^{q} C_k 2^-k
 *						 + m tau(1 - C_{q+1} / m) 2^-q)
 *
 * where C_k counts the registers holding k.  The sum is taken from k = q
 * down, halving as it goes, as the paper does for accuracy.
 */
double
hll_estimate(const hll_sketch *s)
{
	uint32_t	histo[HLL_RANK_MAX + 1] = {0};
	const double m = (double) HLL_REGISTERS;
	double		z;
	double		e;

	if (!s->dense)
		return (double) s->n;

	/* registers never exceed HLL_RANK_MAX; the clamp guards a corrupt one */
	for (uint32_t r = 0; r < HLL_REGISTERS; r++)
		histo[s->reg[r] > HLL_RANK_MAX ? HLL_RANK_MAX : s->reg[r]]++;

	/* sigma(1) is infinite: no register set means nothing was added */
	if (histo[0] == HLL_REGISTERS)
		return 0.0;

	z = m * ertl_tau((m - (double) histo[HLL_Q + 1]) / m);
	for (int k = HLL_Q; k >= 1; k--)
	{
		z += (double) histo[k];
		z *= 0.5;
	}
	z += m * ertl_sigma((double) histo[0] / m);

	/* z is 0 only when every register is saturated */
	if (!(z > 0.0))
		return HLL_ESTIMATE_MAX;
	e = HLL_ALPHA_INF * m * m / z;
	return e < HLL_ESTIMATE_MAX ? e : HLL_ESTIMATE_MAX;
}


/* ---------------------------------------------------------------- */
/* Serialization                                                     */
/* ---------------------------------------------------------------- */

size_t
hll_serialized_size(const hll_sketch *s)
{
	if (s->dense)
		return HLL_SERIALIZED_MAX;
	return HLL_HEADER_BYTES + (size_t) s->n * HLL_SPARSE_ENTRY_BYTES;
}

/* hll_serialize writes the format documented at the top of this file */
void
hll_serialize(const hll_sketch *s, uint8_t *out)
{
	out[0] = s->dense ? HLL_FORMAT_DENSE : HLL_FORMAT_SPARSE;
	out[1] = HLL_P;
	out += HLL_HEADER_BYTES;

	if (!s->dense)
	{
		for (uint32_t i = 0; i < s->n; i++)
			put_u64_le(out + (size_t) i * HLL_SPARSE_ENTRY_BYTES, s->sparse[i]);
		return;
	}

	for (uint32_t g = 0; g < HLL_REGISTERS / HLL_GROUP_REGISTERS; g++)
	{
		const uint8_t *r = &s->reg[g * HLL_GROUP_REGISTERS];
		uint32_t	v = 0;

		for (int k = 0; k < HLL_GROUP_REGISTERS; k++)
			v |= ((uint32_t) r[k] & HLL_REGISTER_MASK) << (HLL_REGISTER_BITS * k);
		for (uint32_t b = 0; b < HLL_GROUP_BYTES; b++)
			out[g * HLL_GROUP_BYTES + b] = (uint8_t) (v >> (8 * b));
	}
}

/*
 * deserialize_fail resets the sketch, so a caller never sees a half-read
 * one, and reports where the fault is.
 */
static hll_status
deserialize_fail(hll_sketch *s, size_t *bad_offset, size_t offset,
				 hll_status st)
{
	hll_init(s);
	*bad_offset = offset;
	return st;
}

/*
 * hll_deserialize checks, in order: the format byte, the precision byte, the
 * length the format implies, then each hash or register.  Any byte string
 * it accepts re-serializes to itself.
 */
hll_status
hll_deserialize(const uint8_t *in, size_t len, hll_sketch *s,
				size_t *bad_offset)
{
	const uint8_t *payload;
	size_t		payload_len;

	hll_init(s);
	if (len < 1)
		return deserialize_fail(s, bad_offset, len, HLL_BAD_LENGTH);
	if (in[0] != HLL_FORMAT_SPARSE && in[0] != HLL_FORMAT_DENSE)
		return deserialize_fail(s, bad_offset, 0, HLL_BAD_FORMAT);
	if (len < HLL_HEADER_BYTES)
		return deserialize_fail(s, bad_offset, len, HLL_BAD_LENGTH);
	if (in[1] != HLL_P)
		return deserialize_fail(s, bad_offset, 1, HLL_BAD_PRECISION);
	payload = in + HLL_HEADER_BYTES;
	payload_len = len - HLL_HEADER_BYTES;

	if (in[0] == HLL_FORMAT_SPARSE)
	{
		size_t		count;

		if (payload_len % HLL_SPARSE_ENTRY_BYTES != 0)
			return deserialize_fail(s, bad_offset, len, HLL_BAD_LENGTH);
		count = payload_len / HLL_SPARSE_ENTRY_BYTES;
		if (count > HLL_SPARSE_MAX)
			return deserialize_fail(s, bad_offset,
						HLL_HEADER_BYTES + HLL_SPARSE_MAX * HLL_SPARSE_ENTRY_BYTES,
						HLL_SPARSE_TOO_MANY);
		for (size_t i = 0; i < count; i++)
		{
			uint64_t	h = get_u64_le(payload + i * HLL_SPARSE_ENTRY_BYTES);

			if (i > 0 && h <= s->sparse[i - 1])
				return deserialize_fail(s, bad_offset,
							HLL_HEADER_BYTES + i * HLL_SPARSE_ENTRY_BYTES,
							HLL_SPARSE_UNSORTED);
			s->sparse[i] = h;
		}
		s->n = (uint32_t) count;
		return HLL_OK;
	}

	if (payload_len != HLL_DENSE_BYTES)
		return deserialize_fail(s, bad_offset, len, HLL_BAD_LENGTH);
	for (uint32_t g = 0; g < HLL_REGISTERS / HLL_GROUP_REGISTERS; g++)
	{
		uint32_t	v = 0;

		for (uint32_t b = 0; b < HLL_GROUP_BYTES; b++)
			v |= (uint32_t) payload[g * HLL_GROUP_BYTES + b] << (8 * b);
		for (int k = 0; k < HLL_GROUP_REGISTERS; k++)
		{
			uint32_t	r = g * HLL_GROUP_REGISTERS + (uint32_t) k;
			uint32_t	value = (v >> (HLL_REGISTER_BITS * k)) & HLL_REGISTER_MASK;

			if (value > HLL_RANK_MAX)
				return deserialize_fail(s, bad_offset,
							HLL_HEADER_BYTES + (size_t) r * HLL_REGISTER_BITS / 8,
							HLL_REGISTER_RANGE);
			s->reg[r] = (uint8_t) value;
		}
	}
	s->dense = true;
	return HLL_OK;
}

/*
 * hll_error_message gives the detail for an hll_status, in words a user of
 * the visitor statistics can act on: the value is not a sketch this version
 * wrote, or it was damaged.
 */
const char *
hll_error_message(int code)
{
	switch (code)
	{
		case HLL_OK:
			return "The visitor sketch is valid.";
		case HLL_BAD_FORMAT:
			return "The first byte of a visitor sketch must be 1 (sparse) or 2 (dense); this value was not written by pg_shorturl.";
		case HLL_BAD_PRECISION:
			return "The second byte of a visitor sketch must be 12, the precision this version of pg_shorturl uses.";
		case HLL_BAD_LENGTH:
			return "A sparse visitor sketch is 2 bytes plus 8 per visitor, and a dense one exactly 3074 bytes; this value has another length, so it is truncated or damaged.";
		case HLL_SPARSE_UNSORTED:
			return "The visitor hashes of a sparse sketch must be strictly increasing, but one is not greater than the hash before it.";
		case HLL_SPARSE_TOO_MANY:
			return "A sparse visitor sketch holds at most 384 visitors; larger ones are stored dense.";
		case HLL_REGISTER_RANGE:
			return "The registers of a dense visitor sketch hold values from 0 to 53, but one holds a larger value.";
	}
	return "The visitor sketch could not be read for an unknown reason.";
}
