/*-------------------------------------------------------------------------
 *
 * permute.c
 *	  Pure keyed permutation of [0, 62^width); see permute.h.
 *
 * The Feistel network works on b bits, the least with 2^b >= 62^width, so
 * cycle walking needs fewer than two steps on average.  b may be odd, so the
 * network is unbalanced: the state is a left part of ceil(b/2) bits and a
 * right part of floor(b/2) bits, and each round
 *
 *		(L, R) -> (R, L xor F_r(R))
 *
 * swaps which part is wider; after an even number of rounds the widths are
 * back where they began.  F_r(v) is SipHash-2-4 under the key over the
 * 10-byte message (round number, width, v as 8 little-endian bytes),
 * truncated to the width of L.  Including the round and the code width in
 * the message gives every round of every width an independent function.
 *
 * Cycle walking: the network E permutes [0, 2^b); applying E until the
 * result falls below N = 62^width permutes [0, N), and the same walk with
 * the inverse network undoes it.
 *
 *-------------------------------------------------------------------------
 */
#include <sodium.h>

#include "permute.h"

#define ROUND_MESSAGE_BYTES 10

static const uint64_t pow62[PERMUTE_MAX_WIDTH + 1] = {
	UINT64_C(1),
	UINT64_C(62),
	UINT64_C(3844),
	UINT64_C(238328),
	UINT64_C(14776336),
	UINT64_C(916132832),
	UINT64_C(56800235584),
	UINT64_C(3521614606208),
	UINT64_C(218340105584896),
	UINT64_C(13537086546263552),
	UINT64_C(839299365868340224)
};

uint64_t
permute_domain(int width)
{
	return pow62[width];
}

/* domain_bits is the least b with 2^b >= 62^width */
static int
domain_bits(int width)
{
	uint64_t	n = pow62[width];
	int			b = 0;

	while (b < 64 && (UINT64_C(1) << b) < n)
		b++;
	return b;
}

static inline uint64_t
low_bits(int bits)
{
	return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

/* round_function is F_r(v) of the file header, before truncation */
static uint64_t
round_function(int round, int width, uint64_t v,
			   const unsigned char key[PERMUTE_KEY_BYTES])
{
	unsigned char msg[ROUND_MESSAGE_BYTES];
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t	r = 0;

	msg[0] = (unsigned char) round;
	msg[1] = (unsigned char) width;
	for (int i = 0; i < 8; i++)
		msg[2 + i] = (unsigned char) (v >> (8 * i));
	crypto_shorthash(out, msg, sizeof(msg), key);
	for (int i = 0; i < 8; i++)
		r |= (uint64_t) out[i] << (8 * i);
	return r;
}

/* feistel_encrypt applies the whole network to x < 2^bits */
static uint64_t
feistel_encrypt(uint64_t x, int width, int bits,
				const unsigned char key[PERMUTE_KEY_BYTES])
{
	int			lbits = bits - bits / 2;
	int			rbits = bits / 2;
	uint64_t	l = x >> rbits;
	uint64_t	r = x & low_bits(rbits);

	for (int round = 0; round < PERMUTE_ROUNDS; round++)
	{
		uint64_t	new_r = (l ^ round_function(round, width, r, key)) & low_bits(lbits);
		int			t = lbits;

		l = r;
		r = new_r;
		lbits = rbits;
		rbits = t;
	}
	return (l << rbits) | r;
}

/* feistel_decrypt is feistel_encrypt's rounds undone in reverse order */
static uint64_t
feistel_decrypt(uint64_t y, int width, int bits,
				const unsigned char key[PERMUTE_KEY_BYTES])
{
	int			lbits = bits - bits / 2;
	int			rbits = bits / 2;
	uint64_t	l = y >> rbits;
	uint64_t	r = y & low_bits(rbits);

	/*
	 * Each forward round turned (L, R) of widths (a, b) into (R, L xor F(R))
	 * of widths (b, a).  Walking back: the previous R is the current L, and
	 * the previous L is the current R xor F(current L).
	 */
	for (int round = PERMUTE_ROUNDS - 1; round >= 0; round--)
	{
		uint64_t	prev_r = l;
		uint64_t	prev_l = (r ^ round_function(round, width, l, key)) & low_bits(rbits);
		int			t = lbits;

		l = prev_l;
		r = prev_r;
		lbits = rbits;
		rbits = t;
	}
	return (l << rbits) | r;
}

uint64_t
permute_forward(uint64_t x, int width, const unsigned char key[PERMUTE_KEY_BYTES])
{
	int			bits = domain_bits(width);
	uint64_t	n = pow62[width];

	do
		x = feistel_encrypt(x, width, bits, key);
	while (x >= n);
	return x;
}

uint64_t
permute_inverse(uint64_t y, int width, const unsigned char key[PERMUTE_KEY_BYTES])
{
	int			bits = domain_bits(width);
	uint64_t	n = pow62[width];

	do
		y = feistel_decrypt(y, width, bits, key);
	while (y >= n);
	return y;
}
