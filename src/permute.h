/*-------------------------------------------------------------------------
 *
 * permute.h
 *	  Pure keyed permutation of [0, 62^width): how a sequence number becomes
 *	  an unguessable code.
 *
 * A Feistel network on the smallest power-of-two domain that covers
 * 62^width, with SipHash-2-4 (libsodium's crypto_shorthash) as the keyed
 * round function, restricted to [0, 62^width) by cycle walking.  Knowing any
 * number of (sequence number, code) pairs tells nothing useful about the
 * codes of other sequence numbers without the 128-bit key.  No PostgreSQL
 * headers, no allocation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_PERMUTE_H
#define SHORTURL_PERMUTE_H

#include <stdint.h>

/* the key is SipHash's: 128 bits */
#define PERMUTE_KEY_BYTES	16

/* widths with 62^width below 2^64; 62^10 < 2^60 < 62^11 */
#define PERMUTE_MIN_WIDTH	1
#define PERMUTE_MAX_WIDTH	10

/*
 * Feistel rounds.  Luby-Rackoff needs 4 for a strong pseudorandom
 * permutation from a PRF; Patarin's bounds for small domains want more, and
 * the issue asks for at least 8.  Even, so the halves end where they began.
 */
#define PERMUTE_ROUNDS		10

/* permute_domain returns 62^width, for width in PERMUTE_MIN..MAX_WIDTH */
extern uint64_t permute_domain(int width);

/*
 * permute_forward maps x in [0, 62^width) to its image in [0, 62^width);
 * permute_inverse undoes it.  The caller guarantees the width is in range
 * and x below the domain.
 */
extern uint64_t permute_forward(uint64_t x, int width,
								const unsigned char key[PERMUTE_KEY_BYTES]);
extern uint64_t permute_inverse(uint64_t y, int width,
								const unsigned char key[PERMUTE_KEY_BYTES]);

#endif							/* SHORTURL_PERMUTE_H */
