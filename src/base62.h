/*-------------------------------------------------------------------------
 *
 * base62.h
 *	  Pure base62 codec for non-negative 64-bit integers.
 *
 * The alphabet is 0-9, A-Z, a-z in that order, so a digit's value follows
 * its byte value: codes of equal width sort like the numbers they encode
 * under COLLATE "C".  This file and base62.c use no PostgreSQL headers and
 * never allocate, so unit tests and the fuzzer drive them directly; the
 * SQL-callable wrappers live in base62_sql.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_BASE62_H
#define SHORTURL_BASE62_H

#include <stddef.h>
#include <stdint.h>

/* 62^10 < 2^63 - 1 < 62^11: a non-negative int64 takes at most 11 digits */
#define BASE62_MAX_DIGITS	11

/*
 * Widest zero-padded output base62_encode() produces.  Far above any code
 * length anyone needs (11 digits hold every bigint), yet small enough for a
 * stack buffer.
 */
#define BASE62_MAX_WIDTH	64

typedef enum base62_status
{
	BASE62_OK = 0,
	BASE62_EMPTY,				/* decode: zero-length input */
	BASE62_INVALID_DIGIT,		/* decode: byte outside the alphabet */
	BASE62_OUT_OF_RANGE,		/* decode: value above INT64_MAX */
	BASE62_NEGATIVE,			/* encode: value below zero */
	BASE62_BAD_WIDTH			/* encode: min_width outside 0..64 */
} base62_status;

extern const char base62_alphabet[62];

/*
 * base62_encode writes the digits of value, left-padded with '0' to at least
 * min_width characters, into out (BASE62_MAX_WIDTH bytes, no terminator),
 * and their count into *out_len.
 */
extern base62_status base62_encode(int64_t value, int min_width,
								   char *out, size_t *out_len);

/*
 * base62_decode parses exactly len bytes of in.  On BASE62_INVALID_DIGIT,
 * *bad_offset is the byte offset of the first byte outside the alphabet;
 * such a byte is reported even when the digits before it already overflow.
 */
extern base62_status base62_decode(const char *in, size_t len,
								   int64_t *value, size_t *bad_offset);

/* base62_digit_value returns the value of byte c, or -1 if not a digit */
extern int	base62_digit_value(unsigned char c);

#endif							/* SHORTURL_BASE62_H */
