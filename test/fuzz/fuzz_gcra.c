/*-------------------------------------------------------------------------
 *
 * fuzz_gcra.c
 *	  libFuzzer target for the pure rate-limit core (src/gcra.c).
 *
 * Every input is used twice:
 *	- as a recipe: a rate, a burst and a cost (each raw bits, a plain
 *	  number, a power of ten or a special value such as NaN or 1e9), then a
 *	  TAT and a clock, then up to MAX_STEPS steps that move the clock
 *	  (forward, back, anywhere), overwrite the TAT, or ask again at the same
 *	  instant.  gcra_make_limit must give the status a second opinion gives
 *	  and, if it accepts, nanoseconds true to the rate, burst and cost; a
 *	  full bucket must hold floor(burst / cost) requests.  Each step's
 *	  decision is held to a 128-bit restatement of GCRA wherever no time
 *	  saturates: the same answer, a new TAT at most the tolerance ahead, a
 *	  refusal that stores nothing and whose wait is exact to the nanosecond,
 *	  no more tokens left than a request needs when refused.  Wherever times
 *	  saturate, nothing may wrap.  An allowed TAT is stored, as ratelimit.c
 *	  does.
 *	- as a quota setting: quota_parse must agree with a second opinion on
 *	  the status, the offset and the quota, which is one of the five units
 *	  and a count from 1 to QUOTA_MAX_COUNT.
 *
 * Any violation aborts, which libFuzzer reports as a finding.
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gcra.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* Steps a recipe may take: enough to empty and refill a bucket */
#define MAX_STEPS	64

/* A clock reading of a machine up for about eleven days */
#define NOW0		INT64_C(1000000000000000)

/* reader hands out the bytes of an input; past its end, zeros */
typedef struct reader
{
	const uint8_t *p;
	size_t		n;
} reader;

static uint64_t
take(reader *r, int nbytes)
{
	uint64_t	v = 0;

	for (int i = 0; i < nbytes; i++)
	{
		uint64_t	b = 0;

		if (r->n > 0)
		{
			b = *r->p++;
			r->n--;
		}
		v |= b << (8 * i);
	}
	return v;
}

/* Values where the checks of gcra_make_limit change their answer */
static const double special_doubles[] = {
	0.0, -0.0, 1.0, -1.0, 0.5, 2.5, 3.0, 6.0, 7.7, 10.0, 1000.0, 1e6,
	1e9, 1e9 + 1.0, 316224000.0, 316224001.0, 1e-9, 1e-10, DBL_MIN, DBL_MAX,
	4.9e-324, NAN, INFINITY, -INFINITY, 100.0 / 3600.0, 1.0 / 604800.0,
};

/* take_double reads a number as mode (two bits) says */
static double
take_double(reader *r, int mode)
{
	uint64_t	bits;
	double		d;

	switch (mode & 3)
	{
		case 0:					/* raw bits: NaNs, subnormals, anything */
			bits = take(r, 8);
			memcpy(&d, &bits, sizeof(d));
			return d;
		case 1:					/* a plain number, maybe fractional */
			return (double) take(r, 4) / (double) (UINT64_C(1) << (take(r, 1) % 40));
		case 2:					/* a power of ten, times 1 to 2 */
			return pow(10.0, (double) ((int) (take(r, 1) % 40) - 20)) *
				(1.0 + (double) take(r, 2) / 65536.0);
		default:
			return special_doubles[take(r, 1) % (sizeof(special_doubles) / sizeof(double))];
	}
}

/* Times at and around the ends of int64 */
static const int64_t special_times[] = {
	INT64_MIN, INT64_MIN + 1, -NOW0, -1, 0, 1, NOW0, INT64_MAX - NOW0,
	INT64_MAX - 1, INT64_MAX,
};

/* take_time reads a time as mode (two bits) says */
static int64_t
take_time(reader *r, int mode)
{
	int64_t		t;
	int64_t		by;

	switch (mode & 3)
	{
		case 0:
			return (int64_t) take(r, 8);
		case 1:					/* near an ordinary clock */
			return NOW0 + (int32_t) take(r, 4);
		case 2:					/* at or just inside the ends of int64 */
			t = special_times[take(r, 1) % (sizeof(special_times) / sizeof(int64_t))];
			by = (int64_t) (take(r, 1) % 128);
			return t < 0 ? t + by : t - by;
		default:				/* up to 2^54 ns either side of a clock */
			t = (int32_t) take(r, 4);
			return NOW0 + t * ((int64_t) 1 << (take(r, 1) % 24));
	}
}

/* reference_status is what gcra_make_limit must answer */
static gcra_status
reference_status(double rate, double burst, double cost)
{
	double		window;

	if (isnan(rate) || rate <= 0.0 || rate > 1e9)
		return GCRA_BAD_RATE;
	if (isnan(burst) || isinf(burst) || burst <= 0.0)
		return GCRA_BAD_BURST;
	if (isnan(cost) || isinf(cost) || cost < 0.0)
		return GCRA_BAD_COST;
	if (cost > burst)
		return GCRA_COST_OVER_BURST;
	window = burst * (1e9 / rate);
	if (isinf(window) || window > 316224000.0 * 1e9)
		return GCRA_WINDOW_TOO_LONG;
	if (window < 1.0)
		return GCRA_WINDOW_TOO_SHORT;
	return GCRA_OK;
}

/*
 * check_limit holds an accepted limit to its rate, burst and cost: the
 * nanoseconds within rounding, an increment that never costs more than the
 * cost (unless a positive cost would otherwise take nothing), and a full
 * bucket that holds every request of floor(burst / cost), as long as that
 * is a count of requests and not an artefact of rounding the quotient
 */
static void
check_limit(const gcra_limit *l, double rate, double burst, double cost)
{
	double		want_inc = cost * l->interval_ns;

	CHECK(l->interval_ns == 1e9 / rate && l->interval_ns >= 1.0);
	CHECK(l->tolerance_ns >= 1 && (double) l->tolerance_ns <= GCRA_MAX_WINDOW_NS);
	CHECK(fabs((double) l->tolerance_ns - burst * l->interval_ns) <= 0.5);
	CHECK(l->increment_ns >= 0 && l->increment_ns <= l->tolerance_ns);
	CHECK((cost > 0.0) == (l->increment_ns > 0));
	if (want_inc >= 1.0)
	{
		double		k = floor(burst / cost);

		CHECK((double) l->increment_ns == floor(want_inc));
		if (k * cost <= burst * (1.0 - 1e-12))
			CHECK((__int128) k * l->increment_ns <= l->tolerance_ns);
	}
	else
		CHECK(l->increment_ns == (cost > 0.0 ? 1 : 0));
}

/*
 * check_decision holds gcra_decide's answer d for (tat, now) to the
 * 128-bit restatement of GCRA, and calls it again at the wait it gave
 */
static void
check_decision(int64_t tat, int64_t now, const gcra_limit *l,
			   const gcra_decision *d)
{
	__int128	base = tat > now ? tat : now;
	__int128	cand = base + l->increment_ns;
	__int128	debt = cand - now;	/* >= increment >= 0 */
	bool		want = debt <= l->tolerance_ns;
	double		full = (double) l->tolerance_ns / l->interval_ns;

	CHECK(d->retry_after_ns >= 0);
	CHECK(isfinite(d->remaining) && d->remaining >= 0.0);
	CHECK(d->remaining <= full * (1.0 + 1e-12) + 1e-6);
	if (d->allowed)
	{
		CHECK(d->retry_after_ns == 0);
		CHECK(d->new_tat >= now && d->new_tat >= tat);
	}
	else
	{
		double		need = (double) l->increment_ns / l->interval_ns;

		CHECK(d->new_tat == tat && d->retry_after_ns > 0);
		/* not even the request's tokens left */
		CHECK(d->remaining <= need * (1.0 + 1e-12) + 1e-6);
	}

	if (cand > INT64_MAX)
	{
		/*
		 * The TAT would pass INT64_MAX, so the clock is within a window of
		 * it or the TAT already pinned there: held, never wrapped.
		 */
		if (d->allowed)
			CHECK(d->new_tat == INT64_MAX);
		return;
	}

	CHECK(d->allowed == want);
	if (d->allowed)
	{
		CHECK(d->new_tat == (int64_t) cand);
		CHECK((__int128) d->new_tat - now <= l->tolerance_ns);
		CHECK(fabs(d->remaining - (double) (l->tolerance_ns - debt) / l->interval_ns) <=
			  1e-6 + 1e-12 * full);
		return;
	}
	if (debt > INT64_MAX)
		return;					/* the wait saturated; checked >= 0 above */
	CHECK(d->retry_after_ns == (int64_t) (debt - l->tolerance_ns));

	/* the wait is exact: then allowed, a nanosecond sooner refused */
	if ((__int128) now + d->retry_after_ns <= INT64_MAX)
	{
		gcra_decision again;
		int64_t		then = now + d->retry_after_ns;

		gcra_decide(tat, then, l, &again);
		CHECK(again.allowed);
		gcra_decide(tat, then - 1, l, &again);
		CHECK(!again.allowed && again.new_tat == tat && again.retry_after_ns == 1);
	}
}

static void
as_recipe(const uint8_t *data, size_t size)
{
	reader		r = {data, size};
	int			modes = (int) take(&r, 1);
	double		rate = take_double(&r, modes);
	double		burst = take_double(&r, modes >> 2);
	double		cost = take_double(&r, modes >> 4);
	gcra_limit	l;
	gcra_status st = gcra_make_limit(rate, burst, cost, &l);
	int			tmodes;
	int64_t		tat;
	int64_t		now;

	CHECK(st == reference_status(rate, burst, cost));
	if (st != GCRA_OK)
		return;
	check_limit(&l, rate, burst, cost);

	tmodes = (int) take(&r, 1);
	tat = take_time(&r, tmodes);
	now = take_time(&r, tmodes >> 2);
	/* a key never seen, or whose TAT has passed, is full under any limit */
	CHECK(gcra_is_full(INT64_MIN, now));
	CHECK(gcra_is_full(tat, now) == (tat <= now));

	for (int step = 0; step < MAX_STEPS; step++)
	{
		gcra_decision d;
		int			op;

		if (step > 0)
		{
			if (r.n == 0)
				break;
			op = (int) take(&r, 1);
			switch (op & 7)
			{
				case 0:			/* forward, by up to 2^47 ns */
					{
						int64_t		by = (int64_t) take(&r, 2) << ((op >> 3) % 32);

						now = now > INT64_MAX - by ? INT64_MAX : now + by;
					}
					break;
				case 1:			/* back a little, as another backend's clock */
					{
						int64_t		by = (int64_t) take(&r, 2);

						now = now < INT64_MIN + by ? INT64_MIN : now - by;
					}
					break;
				case 2:
					now = take_time(&r, op >> 3);
					break;
				case 3:			/* a TAT another limit left */
					tat = take_time(&r, op >> 3);
					break;
				default:		/* the same instant again */
					break;
			}
		}
		gcra_decide(tat, now, &l, &d);
		check_decision(tat, now, &l, &d);
		if (d.allowed)
			tat = d.new_tat;
	}
}

/* The units a quota may be counted in, for the second opinion */
typedef struct reference_unit
{
	const char *name;
	int64_t		seconds;
} reference_unit;

static const reference_unit reference_units[] = {
	{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400},
	{"week", 604800},
};

static bool
reference_space(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* reference_word: s[0..n) is name or name + "s", in any ASCII case */
static bool
reference_word(const uint8_t *s, size_t n, const char *name)
{
	size_t		len = strlen(name);

	if (n != len && n != len + 1)
		return false;
	for (size_t k = 0; k < n; k++)
	{
		uint8_t		c = s[k];
		uint8_t		want = k < len ? (uint8_t) name[k] : 's';

		if (c >= 'A' && c <= 'Z')
			c = (uint8_t) (c + 32);
		if (c != want)
			return false;
	}
	return true;
}

/* reference_quota is what quota_parse must answer, and where */
static quota_status
reference_quota(const uint8_t *s, size_t len, quota_spec *spec, size_t *bad)
{
	size_t		p = 0;
	size_t		q;
	size_t		w;
	size_t		e;
	__int128	count = 0;

	*bad = 0;
	while (p < len && reference_space(s[p]))
		p++;
	if (p == len)
		return QUOTA_EMPTY;
	for (q = p; q < len && s[q] >= '0' && s[q] <= '9'; q++)
	{
		count = count * 10 + (s[q] - '0');
		if (count > QUOTA_MAX_COUNT)
		{
			*bad = q;
			return QUOTA_BAD_COUNT;
		}
	}
	if (q == p || count == 0)
	{
		*bad = q == p ? p : q - 1;
		return QUOTA_BAD_COUNT;
	}
	while (q < len && reference_space(s[q]))
		q++;
	if (q == len || s[q] != '/')
	{
		*bad = q;
		return QUOTA_NO_SLASH;
	}
	for (w = q + 1; w < len && reference_space(s[w]); w++)
		;
	for (e = w; e < len && !reference_space(s[e]); e++)
		;
	for (q = e; q < len && reference_space(s[q]); q++)
		;
	if (q < len)
	{
		*bad = q;
		return QUOTA_BAD_PERIOD;
	}
	for (size_t u = 0; u < sizeof(reference_units) / sizeof(reference_units[0]); u++)
		if (reference_word(s + w, e - w, reference_units[u].name))
		{
			spec->count = (int64_t) count;
			spec->period_s = reference_units[u].seconds;
			return QUOTA_OK;
		}
	*bad = w;
	return QUOTA_BAD_PERIOD;
}

static void
as_quota(const uint8_t *data, size_t size)
{
	quota_spec	q = {-1, -1};
	quota_spec	want_q = {-2, -2};
	size_t		bad = (size_t) -1;
	size_t		want_bad = (size_t) -2;
	quota_status st = quota_parse((const char *) data, size, &q, &bad);
	quota_status want = reference_quota(data, size, &want_q, &want_bad);

	CHECK(st == want && bad == want_bad);
	if (st != QUOTA_OK)
	{
		CHECK(bad <= size);
		return;
	}
	CHECK(q.count >= 1 && q.count <= QUOTA_MAX_COUNT);
	CHECK(q.period_s == 1 || q.period_s == 60 || q.period_s == 3600 ||
		  q.period_s == 86400 || q.period_s == 604800);
	CHECK(q.count == want_q.count && q.period_s == want_q.period_s);
	/* every quota is a limit, as shorten() makes it */
	{
		gcra_limit	l;

		CHECK(gcra_make_limit((double) q.count / (double) q.period_s,
							  (double) q.count, 1, &l) == GCRA_OK);
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_recipe(data, size);
	as_quota(data, size);
	return 0;
}
