/*-------------------------------------------------------------------------
 *
 * gcra.c
 *	  The Generic Cell Rate Algorithm and the quota parser; see gcra.h.
 *
 * Every sum and difference of nanoseconds saturates instead of wrapping,
 * so no pair of 64-bit times (a fuzzer's included) is undefined behaviour.
 * Answers are exact while the clock stays a window (at most ten years)
 * below 2^63 ns; a monotonic clock, which counts from boot, is 292 years
 * away from that.
 *
 *-------------------------------------------------------------------------
 */
#include "gcra.h"

#include <math.h>
#include <string.h>

/* Remaining tokens are reported to a millionth of a token */
#define GCRA_REMAINING_SCALE	1e6

/* sat_add returns a + b, held within int64 */
static int64_t
sat_add(int64_t a, int64_t b)
{
	int64_t		r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* sat_sub returns a - b, held within int64 */
static int64_t
sat_sub(int64_t a, int64_t b)
{
	int64_t		r;

	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/*
 * gcra_make_limit checks a rate (tokens a second), a burst (the bucket's
 * size) and a cost (tokens this request takes), and turns them into
 * nanoseconds.  A cost of 0 asks how the bucket stands without taking
 * anything.
 */
gcra_status
gcra_make_limit(double rate, double burst, double cost, gcra_limit *limit)
{
	double		interval;
	double		tolerance;

	/* written so that NaN fails each test */
	if (!(rate > 0.0 && rate <= GCRA_MAX_RATE))
		return GCRA_BAD_RATE;
	if (!(burst > 0.0 && isfinite(burst)))
		return GCRA_BAD_BURST;
	if (!(cost >= 0.0 && isfinite(cost)))
		return GCRA_BAD_COST;
	if (cost > burst)
		return GCRA_COST_OVER_BURST;
	interval = GCRA_NS_PER_SECOND / rate;
	tolerance = burst * interval;
	if (!(tolerance <= GCRA_MAX_WINDOW_NS))
		return GCRA_WINDOW_TOO_LONG;
	if (tolerance < 1.0)
		return GCRA_WINDOW_TOO_SHORT;
	limit->interval_ns = interval;
	limit->tolerance_ns = (int64_t) llround(tolerance);

	/*
	 * Rounded down, so that a request never takes more than its cost: k
	 * increments rounded up could pass a tolerance of k * cost, and a full
	 * bucket would refuse its last request while reporting a token left.
	 * A positive cost takes at least a nanosecond, or it would take
	 * nothing.  cost <= burst and the tolerance is at least 1, so the
	 * increment is within the tolerance.
	 */
	limit->increment_ns = (int64_t) floor(cost * interval);
	if (limit->increment_ns == 0 && cost > 0.0)
		limit->increment_ns = 1;
	return GCRA_OK;
}

/* tokens turns a span of nanoseconds of refill into tokens, rounded */
static double
tokens(int64_t span_ns, const gcra_limit *limit)
{
	double		t;

	if (span_ns <= 0)
		return 0.0;
	t = (double) span_ns / limit->interval_ns;
	return round(t * GCRA_REMAINING_SCALE) / GCRA_REMAINING_SCALE;
}

/*
 * gcra_decide answers one request against a key whose TAT is tat, at time
 * now.  The caller stores d->new_tat only if the key still holds tat (a
 * compare-and-swap), else decides again with the TAT it found.
 */
void
gcra_decide(int64_t tat, int64_t now, const gcra_limit *limit, gcra_decision *d)
{
	int64_t		base = tat > now ? tat : now;
	int64_t		candidate = sat_add(base, limit->increment_ns);
	int64_t		debt = sat_sub(candidate, now);	/* >= 0: candidate >= now */

	if (debt <= limit->tolerance_ns)
	{
		d->allowed = true;
		d->new_tat = candidate;
		d->remaining = tokens(limit->tolerance_ns - debt, limit);
		d->retry_after_ns = 0;
	}
	else
	{
		d->allowed = false;
		d->new_tat = tat;
		d->remaining = tokens(sat_sub(limit->tolerance_ns, sat_sub(base, now)), limit);
		d->retry_after_ns = debt - limit->tolerance_ns;
	}
}

/*
 * gcra_is_full tells whether a key's bucket is full at time now: then it
 * answers every request as a key never seen would, and may be forgotten.
 */
bool
gcra_is_full(int64_t tat, int64_t now)
{
	return tat <= now;
}

/* A unit a quota may be counted in */
typedef struct quota_unit
{
	const char *name;
	int64_t		seconds;
} quota_unit;

static const quota_unit quota_units[] = {
	{"second", 1},
	{"minute", 60},
	{"hour", 60 * 60},
	{"day", 24 * 60 * 60},
	{"week", 7 * 24 * 60 * 60},
};

/* is_space tells whether c is an ASCII space or tab */
static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * quota_parse reads a quota such as "100/hour": a whole number of links,
 * a slash and a unit (second, minute, hour, day or week, in any case, with
 * or without a final "s"), with spaces allowed around each part.  An empty
 * or blank string is QUOTA_EMPTY: no quota.  On an error *bad_offset is
 * the byte where reading stopped.
 */
quota_status
quota_parse(const char *s, size_t len, quota_spec *spec, size_t *bad_offset)
{
	size_t		i = 0;
	int64_t		count = 0;
	size_t		word;
	size_t		word_len;

	*bad_offset = 0;
	while (i < len && is_space(s[i]))
		i++;
	if (i == len)
		return QUOTA_EMPTY;
	if (s[i] < '0' || s[i] > '9')
	{
		*bad_offset = i;
		return QUOTA_BAD_COUNT;
	}
	while (i < len && s[i] >= '0' && s[i] <= '9')
	{
		count = count * 10 + (s[i] - '0');
		if (count > QUOTA_MAX_COUNT)
		{
			*bad_offset = i;
			return QUOTA_BAD_COUNT;
		}
		i++;
	}
	if (count == 0)
	{
		*bad_offset = i - 1;
		return QUOTA_BAD_COUNT;
	}
	while (i < len && is_space(s[i]))
		i++;
	if (i == len || s[i] != '/')
	{
		*bad_offset = i;
		return QUOTA_NO_SLASH;
	}
	i++;
	while (i < len && is_space(s[i]))
		i++;
	word = i;
	while (i < len && !is_space(s[i]))
		i++;
	word_len = i - word;
	while (i < len && is_space(s[i]))
		i++;
	if (i != len)
	{
		*bad_offset = i;
		return QUOTA_BAD_PERIOD;
	}
	/* one final "s" makes a plural */
	if (word_len > 1 && (s[word + word_len - 1] == 's' || s[word + word_len - 1] == 'S'))
		word_len--;
	for (size_t u = 0; u < sizeof(quota_units) / sizeof(quota_units[0]); u++)
	{
		const char *name = quota_units[u].name;
		size_t		k;

		if (strlen(name) != word_len)
			continue;
		for (k = 0; k < word_len; k++)
		{
			char		c = s[word + k];

			if (c >= 'A' && c <= 'Z')
				c = (char) (c - 'A' + 'a');
			if (c != name[k])
				break;
		}
		if (k == word_len)
		{
			spec->count = count;
			spec->period_s = quota_units[u].seconds;
			return QUOTA_OK;
		}
	}
	*bad_offset = word;
	return QUOTA_BAD_PERIOD;
}
