/*-------------------------------------------------------------------------
 *
 * base62.c
 *	  Pure base62 codec (no PostgreSQL headers); see base62.h.
 *
 * Decoding is table driven and checks for overflow before every multiply,
 * in unsigned arithmetic, so no input can reach undefined behaviour.  The
 * fuzzer in test/fuzz/fuzz_base62.c holds this file to that.
 *
 *-------------------------------------------------------------------------
 */
#include "base62.h"

const char	base62_alphabet[62] = {
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
	'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M',
	'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z',
	'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm',
	'n', 'o', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z'
};

/*
 * Digit value plus one for every byte; zero marks a byte outside the
 * alphabet, so the table needs no initialisation at run time.
 */
#define DIGIT(c, v) [c] = (v) + 1
static const unsigned char digit_plus_one[256] = {
	DIGIT('0', 0), DIGIT('1', 1), DIGIT('2', 2), DIGIT('3', 3), DIGIT('4', 4),
	DIGIT('5', 5), DIGIT('6', 6), DIGIT('7', 7), DIGIT('8', 8), DIGIT('9', 9),
	DIGIT('A', 10), DIGIT('B', 11), DIGIT('C', 12), DIGIT('D', 13),
	DIGIT('E', 14), DIGIT('F', 15), DIGIT('G', 16), DIGIT('H', 17),
	DIGIT('I', 18), DIGIT('J', 19), DIGIT('K', 20), DIGIT('L', 21),
	DIGIT('M', 22), DIGIT('N', 23), DIGIT('O', 24), DIGIT('P', 25),
	DIGIT('Q', 26), DIGIT('R', 27), DIGIT('S', 28), DIGIT('T', 29),
	DIGIT('U', 30), DIGIT('V', 31), DIGIT('W', 32), DIGIT('X', 33),
	DIGIT('Y', 34), DIGIT('Z', 35),
	DIGIT('a', 36), DIGIT('b', 37), DIGIT('c', 38), DIGIT('d', 39),
	DIGIT('e', 40), DIGIT('f', 41), DIGIT('g', 42), DIGIT('h', 43),
	DIGIT('i', 44), DIGIT('j', 45), DIGIT('k', 46), DIGIT('l', 47),
	DIGIT('m', 48), DIGIT('n', 49), DIGIT('o', 50), DIGIT('p', 51),
	DIGIT('q', 52), DIGIT('r', 53), DIGIT('s', 54), DIGIT('t', 55),
	DIGIT('u', 56), DIGIT('v', 57), DIGIT('w', 58), DIGIT('x', 59),
	DIGIT('y', 60), DIGIT('z', 61)
};
#undef DIGIT

#define BASE62_RADIX	62
#define BASE62_INT64_MAX ((uint64_t) INT64_MAX)

/*
 * base62_digit_value returns the value of byte c, or -1 when c is not in the
 * alphabet.
 */
int
base62_digit_value(unsigned char c)
{
	return (int) digit_plus_one[c] - 1;
}

/*
 * base62_encode fills out from the right, then pads.  The caller's buffer is
 * BASE62_MAX_WIDTH bytes, which also bounds min_width.
 */
base62_status
base62_encode(int64_t value, int min_width, char *out, size_t *out_len)
{
	char		digits[BASE62_MAX_DIGITS];
	size_t		ndigits = 0;
	size_t		width;
	size_t		pad;
	uint64_t	v;

	if (value < 0)
		return BASE62_NEGATIVE;
	if (min_width < 0 || min_width > BASE62_MAX_WIDTH)
		return BASE62_BAD_WIDTH;

	v = (uint64_t) value;
	do
	{
		digits[BASE62_MAX_DIGITS - 1 - ndigits] = base62_alphabet[v % BASE62_RADIX];
		v /= BASE62_RADIX;
		ndigits++;
	} while (v != 0);

	width = ndigits > (size_t) min_width ? ndigits : (size_t) min_width;
	pad = width - ndigits;
	for (size_t i = 0; i < pad; i++)
		out[i] = '0';
	for (size_t i = 0; i < ndigits; i++)
		out[pad + i] = digits[BASE62_MAX_DIGITS - ndigits + i];
	*out_len = width;
	return BASE62_OK;
}

/*
 * base62_decode accumulates in uint64_t and compares against
 * (INT64_MAX - digit) / 62 before multiplying, so the accumulator never
 * exceeds INT64_MAX.  Once the value is known to overflow the loop keeps
 * scanning, so that a byte outside the alphabet is reported in preference
 * to the overflow: syntax errors come before range errors, as in int8in.
 */
base62_status
base62_decode(const char *in, size_t len, int64_t *value, size_t *bad_offset)
{
	const unsigned char *p = (const unsigned char *) in;
	uint64_t	acc = 0;
	int			overflow = 0;

	if (len == 0)
		return BASE62_EMPTY;

	for (size_t i = 0; i < len; i++)
	{
		unsigned int d = digit_plus_one[p[i]];

		if (d == 0)
		{
			*bad_offset = i;
			return BASE62_INVALID_DIGIT;
		}
		d--;
		if (overflow)
			continue;
		if (acc > (BASE62_INT64_MAX - d) / BASE62_RADIX)
		{
			overflow = 1;
			continue;
		}
		acc = acc * BASE62_RADIX + d;
	}

	if (overflow)
		return BASE62_OUT_OF_RANGE;
	*value = (int64_t) acc;
	return BASE62_OK;
}
