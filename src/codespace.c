/*-------------------------------------------------------------------------
 *
 * codespace.c
 *	  Pure layout of the generated-code space; see codespace.h.
 *
 * Segment k covers ids [from_k, from_{k+1}) and widths [width_k,
 * width_{k+1}) (the last one up to PERMUTE_MAX_WIDTH).  An id's code is
 * found by walking its segment's widths: subtract 62^w while the rest does
 * not fit width w.  A code of length L belongs to the one segment whose
 * widths include L, which is how decoding finds the id back.
 *
 *-------------------------------------------------------------------------
 */
#include "codespace.h"

#include "base62.h"

codespace_status
codespace_check(const codespace *cs)
{
	if (cs->nseg < 1 || cs->nseg > CODESPACE_MAX_SEGMENTS || cs->seg[0].from_id != 0)
		return CODESPACE_BAD_SEGMENTS;
	for (int k = 0; k < cs->nseg; k++)
	{
		if (cs->seg[k].width < CODESPACE_MIN_WIDTH || cs->seg[k].width > PERMUTE_MAX_WIDTH)
			return CODESPACE_BAD_SEGMENTS;
		if (k > 0 && (cs->seg[k].from_id <= cs->seg[k - 1].from_id ||
					  cs->seg[k].width <= cs->seg[k - 1].width))
			return CODESPACE_BAD_SEGMENTS;
	}
	return CODESPACE_OK;
}

/* segment_of returns the segment an id falls in */
static int
segment_of(const codespace *cs, int64_t id)
{
	int			k = cs->nseg - 1;

	while (k > 0 && id < cs->seg[k].from_id)
		k--;
	return k;
}

/* width_limit is the first width a segment may not reach */
static int
width_limit(const codespace *cs, int k)
{
	return k + 1 < cs->nseg ? cs->seg[k + 1].width : PERMUTE_MAX_WIDTH + 1;
}

codespace_status
codespace_width_of(const codespace *cs, int64_t id, int *width, uint64_t *index)
{
	int			k;
	int			w;
	uint64_t	rest;

	if (id < 0)
		return CODESPACE_BAD_ID;
	k = segment_of(cs, id);
	w = cs->seg[k].width;
	rest = (uint64_t) (id - cs->seg[k].from_id);
	while (rest >= permute_domain(w))
	{
		rest -= permute_domain(w);
		if (++w > PERMUTE_MAX_WIDTH)
			return CODESPACE_EXHAUSTED;
		if (w >= width_limit(cs, k))
			return CODESPACE_OVERRUN;
	}
	*width = w;
	*index = rest;
	return CODESPACE_OK;
}

codespace_status
codespace_encode(const codespace *cs, int64_t id, char *out, size_t *len)
{
	int			width;
	uint64_t	index;
	codespace_status st = codespace_width_of(cs, id, &width, &index);

	if (st != CODESPACE_OK)
		return st;
	(void) base62_encode((int64_t) permute_forward(index, width, cs->key), width, out, len);
	return CODESPACE_OK;
}

int
codespace_decode(const codespace *cs, const char *code, size_t len, int64_t *id)
{
	int64_t		p;
	size_t		bad;
	int			k;
	uint64_t	base = 0;
	uint64_t	index;

	if (len < CODESPACE_MIN_WIDTH || len > PERMUTE_MAX_WIDTH)
		return 0;
	/* the segment whose widths include len */
	for (k = cs->nseg - 1; k >= 0 && (size_t) cs->seg[k].width > len; k--)
		;
	if (k < 0 || len >= (size_t) width_limit(cs, k))
		return 0;
	if (base62_decode(code, len, &p, &bad) != BASE62_OK ||
		(uint64_t) p >= permute_domain((int) len))
		return 0;
	for (int w = cs->seg[k].width; (size_t) w < len; w++)
		base += permute_domain(w);
	index = permute_inverse((uint64_t) p, (int) len, cs->key);
	/* cannot overflow: the widths' spaces sum to less than 2^60 * 1.02 */
	base += index;
	if (base > (uint64_t) INT64_MAX - (uint64_t) cs->seg[k].from_id)
		return 0;
	*id = cs->seg[k].from_id + (int64_t) base;
	if (k + 1 < cs->nseg && *id >= cs->seg[k + 1].from_id)
		return 0;
	return 1;
}
