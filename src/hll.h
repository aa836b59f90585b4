/*-------------------------------------------------------------------------
 *
 * hll.h
 *	  Pure HyperLogLog core for counting unique visitors per link per day.
 *
 * A sketch starts sparse: an exact, sorted set of distinct 64-bit hashes.
 * Once it would hold more than HLL_SPARSE_MAX of them it turns dense: 4096
 * HyperLogLog registers, estimated with Ertl's improved estimator.  Which
 * form a sketch has depends only on the set of hashes it has seen, never on
 * the order of adds and merges, so equal sets serialize to equal bytes.
 *
 * The serialized form lives in a bytea column; its layout is documented at
 * the top of hll.c and carries its own format and precision bytes.  This
 * file and hll.c use no PostgreSQL headers and never allocate, so the unit
 * tests and the fuzzer drive them directly; the SQL-callable wrappers turn
 * an hll_status into ereport.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_HLL_H
#define SHORTURL_HLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Precision: 2^12 registers, standard error 1.04 / sqrt(4096) = 1.625%.
 * It is written into every serialized sketch, so changing it here would
 * make old sketches unreadable rather than silently misread.
 */
#define HLL_P			12
#define HLL_REGISTERS	(1 << HLL_P)

/*
 * A register holds 1 + the number of leading zeros of the 64 - HLL_P hash
 * bits below the index, so at most 64 - 12 + 1 = 53 (all 52 bits zero).
 */
#define HLL_RANK_MAX	(64 - HLL_P + 1)

/* Serialized registers are packed 6 bits each (53 < 2^6): 3072 bytes */
#define HLL_REGISTER_BITS	6
#define HLL_DENSE_BYTES		(HLL_REGISTERS * HLL_REGISTER_BITS / 8)

/* Bytes 0 and 1 of every serialized sketch: format, then precision */
#define HLL_HEADER_BYTES	2
#define HLL_FORMAT_SPARSE	1
#define HLL_FORMAT_DENSE	2

/* A sparse entry is one 64-bit hash, little-endian */
#define HLL_SPARSE_ENTRY_BYTES	8

/*
 * Most hashes a sparse sketch keeps exactly: the most whose serialized form
 * (8 bytes each) is no larger than the dense registers (3072 / 8 = 384).
 */
#define HLL_SPARSE_MAX	(HLL_DENSE_BYTES / HLL_SPARSE_ENTRY_BYTES)

/* Largest serialized sketch: the dense form, 3074 bytes */
#define HLL_SERIALIZED_MAX	(HLL_HEADER_BYTES + HLL_DENSE_BYTES)

/*
 * Ceiling of hll_estimate, 2^62: beyond any real count of visitors, and
 * exactly representable as both a double and an int64, so a caller may round
 * an estimate to bigint without a range check.  Only a forged dense sketch
 * (every register at 53, say) estimates that high.
 */
#define HLL_ESTIMATE_MAX	4611686018427387904.0

/*
 * hll_sketch is the in-memory form, fixed size (about 7 kB), so it can live
 * on the stack or in one palloc.  While sparse, sparse[0..n) is strictly
 * increasing and reg is unused; once dense, n and sparse are unused.
 */
typedef struct hll_sketch
{
	bool		dense;
	uint32_t	n;
	uint64_t	sparse[HLL_SPARSE_MAX];
	uint8_t		reg[HLL_REGISTERS];
} hll_sketch;

typedef enum hll_status
{
	HLL_OK = 0,
	HLL_BAD_FORMAT,				/* byte 0 is neither 1 (sparse) nor 2 (dense) */
	HLL_BAD_PRECISION,			/* byte 1 is not HLL_P */
	HLL_BAD_LENGTH,				/* length does not fit the format */
	HLL_SPARSE_UNSORTED,		/* a hash not above the one before it */
	HLL_SPARSE_TOO_MANY,		/* more than HLL_SPARSE_MAX hashes */
	HLL_REGISTER_RANGE			/* a dense register above HLL_RANK_MAX */
} hll_status;

/* hll_hash is XXH3_64bits (seed 0) of len bytes at data */
extern uint64_t hll_hash(const void *data, size_t len);

/* hll_init makes s the empty sketch (sparse, no hashes) */
extern void hll_init(hll_sketch *s);

/* hll_add adds one hash; adding a hash already seen changes nothing */
extern void hll_add(hll_sketch *s, uint64_t hash);

/* hll_add_many adds n hashes, in any order, duplicates allowed */
extern void hll_add_many(hll_sketch *s, const uint64_t *hashes, size_t n);

/*
 * hll_merge makes dst the sketch of the union of dst and src.  dst and src
 * may be the same sketch.
 */
extern void hll_merge(hll_sketch *dst, const hll_sketch *src);

/*
 * hll_estimate returns the number of distinct hashes: exact while sparse,
 * Ertl's improved estimate once dense.  Always finite, from 0 to
 * HLL_ESTIMATE_MAX, and not rounded.
 */
extern double hll_estimate(const hll_sketch *s);

/* hll_serialized_size is the byte count hll_serialize will write */
extern size_t hll_serialized_size(const hll_sketch *s);

/* hll_serialize writes hll_serialized_size(s) bytes to out */
extern void hll_serialize(const hll_sketch *s, uint8_t *out);

/*
 * hll_deserialize checks every byte of len bytes at in and, on HLL_OK, fills
 * *s.  On an error *s is the empty sketch and *bad_offset the offset of the
 * first byte of the faulty item: 0 for the format, 1 for the precision, len
 * for a wrong length, the offending hash for the sparse errors, and the
 * byte holding the first bits of the offending register.
 */
extern hll_status hll_deserialize(const uint8_t *in, size_t len,
								  hll_sketch *s, size_t *bad_offset);

/*
 * hll_error_message returns a sentence for an hll_status, meant as the
 * detail of the error report.
 */
extern const char *hll_error_message(int code);

#endif							/* SHORTURL_HLL_H */
