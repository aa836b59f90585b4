/*-------------------------------------------------------------------------
 *
 * test_gcra.c
 *	  Unit tests of the pure rate-limit core (src/gcra.c): every status of
 *	  gcra_make_limit, the burst a full bucket allows at one instant and
 *	  the retry time after it, long timelines against the rate and against
 *	  a second formulation of the algorithm, remaining tokens, requests of
 *	  cost 0, saturation at the ends of int64, gcra_is_full, and every
 *	  answer of quota_parse.
 *
 * Expectations are worked out from the rate, the burst and the cost, not
 * from the nanoseconds gcra.c derives, wherever rounding allows it.
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gcra.h"
#include "unit.h"

/* A clock reading of a machine up for about eleven days */
#define NOW0		INT64_C(1000000000000000)

/* A limit as the caller gives it */
typedef struct limit_case
{
	double		rate;
	double		burst;
	double		cost;
} limit_case;

/*
 * Limits for the burst and timeline tests: intervals of a whole number of
 * nanoseconds (1000/s) and not (3/s, 7.7/s, 6/s, 100/hour), costs above,
 * at and below 1, and fractional bursts.  6/s with a burst of 6 and 7.7/s
 * with a burst of 10 are where an increment rounded up, not down, made a
 * full bucket refuse its last token.
 */
static const limit_case limit_cases[] = {
	{1000.0, 10.0, 1.0},
	{1000.0, 10.0, 2.5},
	{3.0, 10.0, 1.0},
	{3.0, 10.0, 3.0},
	{7.7, 10.0, 1.0},
	{7.7, 10.0, 3.0},
	{7.7, 1.0, 1.0},
	{6.0, 6.0, 1.0},
	{100.0 / 3600.0, 100.0, 1.0},
	{1.0, 5.0, 2.0},
	{0.5, 1.0, 1.0},
	{1e6, 50.0, 0.7},
	{250.0, 12.5, 0.5},
	{1.0 / 604800.0, 3.0, 1.0},
};

#define NCASES	(sizeof(limit_cases) / sizeof(limit_cases[0]))

/* splitmix64 of a counter: deterministic, so a failure reproduces */
static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t	z = (*state += 0x9E3779B97F4A7C15u);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

/* uniform draws a whole number from 0 to bound, inclusive */
static int64_t
uniform(uint64_t *state, int64_t bound)
{
	return (int64_t) (splitmix64(state) % ((uint64_t) bound + 1));
}

static gcra_status
status_of(double rate, double burst, double cost)
{
	gcra_limit	l;

	return gcra_make_limit(rate, burst, cost, &l);
}

/*
 * refused_as_stored checks what every refusal must be: the TAT unchanged,
 * a positive wait, and tokens that are not negative
 */
static int
refused_as_stored(const gcra_decision *d, int64_t tat)
{
	return !d->allowed && d->new_tat == tat && d->retry_after_ns > 0 &&
		d->remaining >= 0.0;
}

/*
 * take_at_once decides requests at one instant, storing each allowed TAT,
 * until one is refused (that decision is left in *d) or limit requests are
 * allowed; it returns how many were allowed and leaves the TAT in *tat
 */
static int
take_at_once(const gcra_limit *l, int64_t *tat, int64_t now, int limit,
			 gcra_decision *d)
{
	int			n = 0;

	while (n < limit)
	{
		gcra_decide(*tat, now, l, d);
		if (!d->allowed)
			break;
		*tat = d->new_tat;
		n++;
	}
	return n;
}

/*
 * check_burst: from a full bucket (a key never seen, or one whose TAT has
 * passed), one instant allows floor(burst / cost) requests and refuses the
 * next, and the wait it gives is exact to the nanosecond: deciding again
 * then allows, a nanosecond sooner refuses.  The wait is the time the
 * missing part of a token takes to refill, within a nanosecond for each
 * increment's rounding and half of one for the tolerance's.
 */
static void
check_burst(const limit_case *c, int64_t tat0, int64_t now)
{
	gcra_limit	l;
	gcra_decision d;
	gcra_decision again;
	int64_t		tat = tat0;
	int			want = (int) floor(c->burst / c->cost);
	int			n;
	double		leftover;
	double		want_wait;

	EXPECT(gcra_make_limit(c->rate, c->burst, c->cost, &l) == GCRA_OK);
	n = take_at_once(&l, &tat, now, 100000, &d);
	EXPECT(n == want);
	if (n != want)
		fprintf(stderr, "  rate %g burst %g cost %g: %d allowed, not %d\n",
				c->rate, c->burst, c->cost, n, want);
	EXPECT(refused_as_stored(&d, tat));

	/* what is left is less than a request, and is what the wait refills */
	leftover = c->burst - n * c->cost;
	EXPECT(d.remaining < c->cost);
	EXPECT(fabs(d.remaining - leftover) <= 1e-6 * (1.0 + c->burst));
	want_wait = (c->cost - leftover) * GCRA_NS_PER_SECOND / c->rate;
	EXPECT(fabs((double) d.retry_after_ns - want_wait) <= n + 2.0);

	gcra_decide(tat, now + d.retry_after_ns, &l, &again);
	EXPECT(again.allowed);
	gcra_decide(tat, now + d.retry_after_ns - 1, &l, &again);
	EXPECT(refused_as_stored(&again, tat));
	EXPECT(again.retry_after_ns == 1);
}

/*
 * check_timeline drives one key through a long run of requests and checks
 * every decision against the continuous-state leaky bucket of ITU-T I.371,
 * the other formulation of GCRA: a level x of nanoseconds that drains one
 * a nanosecond, and a request is allowed if the drained level plus the
 * increment fits in the tolerance.  With dense arrivals (gaps far below a
 * token's interval) the count allowed must also be burst + rate * elapsed,
 * in requests, within one: the bucket's size, and a thousand tokens'
 * worth of time.  That holds while the TAT stays ahead of the clock, which
 * gaps no longer than the slack (tolerance - increment) ensure; a bucket
 * of one request has no slack, and the time between its TAT and the next
 * arrival is lost for good.  Sparse runs are 5000 requests, with pauses.
 */
static void
check_timeline(const limit_case *c, uint64_t seed, int64_t start, bool dense)
{
	gcra_limit	l;
	gcra_decision d;
	uint64_t	rng = seed;
	int64_t		tat = INT64_MIN;	/* a key never seen */
	int64_t		now = start;
	int64_t		arrival = start;	/* the last request's time */
	int64_t		x = 0;			/* the leaky bucket's level */
	int64_t		last = start;	/* when it last took a request */
	int64_t		tokens_ns;
	int64_t		max_gap;
	int64_t		allowed = 0;
	int			mismatches = 0;
	int			requests = 0;
	double		want;

	EXPECT(gcra_make_limit(c->rate, c->burst, c->cost, &l) == GCRA_OK);
	tokens_ns = (int64_t) l.interval_ns;
	max_gap = dense ? tokens_ns / 8 : 3 * l.increment_ns;
	while (dense ? now - start <= 1000 * tokens_ns : requests < 5000)
	{
		int64_t		drained = x - (now - last);
		bool		ref_allowed;

		if (drained < 0)
			drained = 0;
		ref_allowed = drained + l.increment_ns <= l.tolerance_ns;

		gcra_decide(tat, now, &l, &d);
		arrival = now;
		requests++;
		if (d.allowed != ref_allowed)
			mismatches++;
		else if (d.allowed)
		{
			x = drained + l.increment_ns;
			last = now;
			/* the level is how far the TAT is ahead of now */
			if (d.new_tat - now != x ||
				fabs(d.remaining - (double) (l.tolerance_ns - x) / l.interval_ns) > 1e-6)
				mismatches++;
			tat = d.new_tat;
			allowed++;
		}
		else if (!refused_as_stored(&d, tat) ||
				 d.retry_after_ns != drained + l.increment_ns - l.tolerance_ns)
			mismatches++;

		/* now and then a pause long enough to fill the bucket again */
		if (!dense && uniform(&rng, 15) == 0)
			now += l.tolerance_ns + uniform(&rng, l.tolerance_ns);
		else
			now += uniform(&rng, max_gap);
	}
	EXPECT(mismatches == 0);
	EXPECT(requests > 1000);
	if (dense && max_gap <= l.tolerance_ns - l.increment_ns)
	{
		want = (c->burst + c->rate * (double) (arrival - start) / GCRA_NS_PER_SECOND) / c->cost;
		EXPECT(fabs((double) allowed - want) <= 1.0 + 1e-6);
		if (fabs((double) allowed - want) > 1.0 + 1e-6)
			fprintf(stderr, "  rate %g burst %g cost %g: %lld allowed, want %.3f\n",
					c->rate, c->burst, c->cost, (long long) allowed, want);
	}
}

/* parses_to: s is a quota of count per period seconds */
static int
parses_to(const char *s, int64_t count, int64_t period)
{
	quota_spec	q = {-1, -1};
	size_t		bad = 99;

	return quota_parse(s, strlen(s), &q, &bad) == QUOTA_OK &&
		q.count == count && q.period_s == period && bad == 0;
}

/* fails_with: s is refused with status st, reported at byte offset */
static int
fails_with(const char *s, quota_status st, size_t offset)
{
	quota_spec	q = {-1, -1};
	size_t		bad = 99;

	return quota_parse(s, strlen(s), &q, &bad) == st && bad == offset;
}

int
main(void)
{
	gcra_limit	l;
	gcra_decision d;
	gcra_decision d2;
	quota_spec	q;
	size_t		bad;
	int64_t		tat;
	int			n;

	/* ten years of 366 days; a billion links */
	EXPECT(GCRA_MAX_WINDOW_NS == 316224000.0 * 1e9);
	EXPECT(GCRA_MAX_RATE == 1e9);
	EXPECT(QUOTA_MAX_COUNT == 1000000000);

	/* the rate: a finite number in (0, 1e9], and it is checked first */
	EXPECT(status_of(NAN, 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(INFINITY, 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(-INFINITY, 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(0.0, 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(-0.0, 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(-1.0, 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(nextafter(1e9, INFINITY), 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(2e9, 1, 1) == GCRA_BAD_RATE);
	EXPECT(status_of(NAN, NAN, NAN) == GCRA_BAD_RATE);
	EXPECT(status_of(1e9, 1, 1) == GCRA_OK);
	EXPECT(status_of(DBL_MIN, 1, 1) == GCRA_WINDOW_TOO_LONG);

	/* the burst: a finite positive number, checked before the cost */
	EXPECT(status_of(1, 0.0, 0) == GCRA_BAD_BURST);
	EXPECT(status_of(1, -0.0, 0) == GCRA_BAD_BURST);
	EXPECT(status_of(1, -1.0, 0) == GCRA_BAD_BURST);
	EXPECT(status_of(1, NAN, 0) == GCRA_BAD_BURST);
	EXPECT(status_of(1, INFINITY, 0) == GCRA_BAD_BURST);
	EXPECT(status_of(1, -INFINITY, 0) == GCRA_BAD_BURST);
	EXPECT(status_of(1, NAN, NAN) == GCRA_BAD_BURST);

	/* the cost: finite and at least 0 (-0 is 0), and at most the burst */
	EXPECT(status_of(1, 1, -1.0) == GCRA_BAD_COST);
	EXPECT(status_of(1, 1, -DBL_MIN) == GCRA_BAD_COST);
	EXPECT(status_of(1, 1, NAN) == GCRA_BAD_COST);
	EXPECT(status_of(1, 1, INFINITY) == GCRA_BAD_COST);
	EXPECT(status_of(1, 1, -INFINITY) == GCRA_BAD_COST);
	EXPECT(status_of(1, 1, -0.0) == GCRA_OK);
	EXPECT(status_of(1, 1, 0.0) == GCRA_OK);
	EXPECT(status_of(1, 1, 1.0) == GCRA_OK);
	EXPECT(status_of(1, 1, nextafter(1.0, INFINITY)) == GCRA_COST_OVER_BURST);
	EXPECT(status_of(1, 2.5, 3.0) == GCRA_COST_OVER_BURST);
	EXPECT(status_of(1e9, 0.5, 0.6) == GCRA_COST_OVER_BURST);	/* before the window */

	/* the window burst / rate: at most ten years, at least a nanosecond */
	EXPECT(status_of(1, 316224000.0, 1) == GCRA_OK);
	EXPECT(status_of(1, nextafter(316224000.0, INFINITY), 1) == GCRA_WINDOW_TOO_LONG);
	EXPECT(status_of(1.0 / 3600.0, 87839.0, 1) == GCRA_OK);
	EXPECT(status_of(1.0 / 3600.0, 87841.0, 1) == GCRA_WINDOW_TOO_LONG);
	EXPECT(status_of(1, 1e308, 1) == GCRA_WINDOW_TOO_LONG);
	EXPECT(status_of(1, DBL_MAX, DBL_MAX) == GCRA_WINDOW_TOO_LONG);
	EXPECT(status_of(1e-300, 1, 1) == GCRA_WINDOW_TOO_LONG);	/* 1 / rate is inf */
	EXPECT(status_of(4.9e-324, 1, 1) == GCRA_WINDOW_TOO_LONG);
	EXPECT(status_of(1e9, 0.5, 0.5) == GCRA_WINDOW_TOO_SHORT);
	EXPECT(status_of(1e9, nextafter(1.0, 0.0), 0) == GCRA_WINDOW_TOO_SHORT);
	EXPECT(status_of(1e9, 1.0, 0) == GCRA_OK);
	EXPECT(status_of(1, 1e-10, 1e-10) == GCRA_WINDOW_TOO_SHORT);
	EXPECT(status_of(1, 1e-9, 1e-9) == GCRA_OK);
	EXPECT(status_of(1, DBL_MIN, 0) == GCRA_WINDOW_TOO_SHORT);

	/* the limit in nanoseconds, where every figure is exact */
	EXPECT(gcra_make_limit(1000, 10, 2.5, &l) == GCRA_OK);
	EXPECT(l.interval_ns == 1e6 && l.tolerance_ns == 10000000 &&
		   l.increment_ns == 2500000);
	EXPECT(gcra_make_limit(1e9, 1, 1, &l) == GCRA_OK);
	EXPECT(l.interval_ns == 1.0 && l.tolerance_ns == 1 && l.increment_ns == 1);
	EXPECT(gcra_make_limit(1, 316224000.0, 0, &l) == GCRA_OK);
	EXPECT(l.tolerance_ns == INT64_C(316224000000000000) && l.increment_ns == 0);

	/*
	 * whatever the rounding, a request takes no more than its cost and a
	 * request of positive cost takes something
	 */
	for (size_t i = 0; i < NCASES; i++)
	{
		const limit_case *c = &limit_cases[i];

		EXPECT(gcra_make_limit(c->rate, c->burst, c->cost, &l) == GCRA_OK);
		EXPECT(l.increment_ns >= 1 && l.increment_ns <= l.tolerance_ns);
		EXPECT((double) l.increment_ns == floor(c->cost * l.interval_ns));
		EXPECT(fabs((double) l.tolerance_ns - c->burst * l.interval_ns) <= 0.5);
	}
	EXPECT(gcra_make_limit(1e9, 10, 0.25, &l) == GCRA_OK);
	EXPECT(l.increment_ns == 1);

	/* a full bucket at one instant: a key never seen, or long since used */
	for (size_t i = 0; i < NCASES; i++)
	{
		check_burst(&limit_cases[i], 0, NOW0);
		check_burst(&limit_cases[i], INT64_MIN, NOW0);
		check_burst(&limit_cases[i], NOW0, NOW0);
		check_burst(&limit_cases[i], NOW0 - 1, NOW0);
		check_burst(&limit_cases[i], INT64_MIN, -NOW0);
		check_burst(&limit_cases[i], 0, 0);
	}

	/* long timelines, dense and with pauses, from several clock origins */
	for (size_t i = 0; i < NCASES; i++)
	{
		check_timeline(&limit_cases[i], 1 + i, NOW0, true);
		check_timeline(&limit_cases[i], 100 + i, -NOW0, true);
		check_timeline(&limit_cases[i], 200 + i, NOW0, false);
		check_timeline(&limit_cases[i], 300 + i, 0, false);
	}

	/* remaining: after k requests from full, burst - k * cost, exactly */
	EXPECT(gcra_make_limit(1000, 10, 1, &l) == GCRA_OK);
	tat = 0;
	for (int k = 1; k <= 10; k++)
	{
		gcra_decide(tat, NOW0, &l, &d);
		EXPECT(d.allowed && d.retry_after_ns == 0 && d.remaining == 10.0 - k);
		EXPECT(d.new_tat == NOW0 + k * INT64_C(1000000));
		tat = d.new_tat;
	}
	gcra_decide(tat, NOW0, &l, &d);
	EXPECT(refused_as_stored(&d, tat) && d.remaining == 0.0 &&
		   d.retry_after_ns == 1000000);
	/* 3.5 ms later, 3.5 tokens are back; one request leaves 2.5 */
	gcra_decide(tat, NOW0 + 3500000, &l, &d);
	EXPECT(d.allowed && d.remaining == 2.5 && d.new_tat == tat + 1000000);

	EXPECT(gcra_make_limit(1000, 10, 2.5, &l) == GCRA_OK);
	tat = 0;
	n = take_at_once(&l, &tat, NOW0, 100, &d);
	EXPECT(n == 4 && tat == NOW0 + 10000000);
	EXPECT(refused_as_stored(&d, tat) && d.remaining == 0.0 &&
		   d.retry_after_ns == 2500000);
	EXPECT(gcra_make_limit(1000, 10, 3, &l) == GCRA_OK);
	tat = 0;
	n = take_at_once(&l, &tat, NOW0, 100, &d);
	EXPECT(n == 3 && refused_as_stored(&d, tat) && d.remaining == 1.0 &&
		   d.retry_after_ns == 2000000);
	/* a cheaper request fits in what the dearer one could not */
	EXPECT(gcra_make_limit(1000, 10, 1, &l) == GCRA_OK);
	gcra_decide(tat, NOW0, &l, &d);
	EXPECT(d.allowed && d.remaining == 0.0);

	/*
	 * cost 0 asks how the bucket stands: a TAT ahead of now stays as it is,
	 * and one behind now becomes now, which is as full
	 */
	EXPECT(gcra_make_limit(1000, 10, 0, &l) == GCRA_OK);
	tat = NOW0 + 4000000;
	for (int64_t now = NOW0; now <= tat; now += 250000)
	{
		gcra_decide(tat, now, &l, &d);
		EXPECT(d.allowed && d.new_tat == tat);
		EXPECT(d.remaining == 10.0 - (double) (tat - now) / 1e6);
	}
	gcra_decide(0, NOW0, &l, &d);
	EXPECT(d.allowed && d.remaining == 10.0 && gcra_is_full(d.new_tat, NOW0));
	/* a TAT beyond the tolerance (a key used under a longer limit) */
	gcra_decide(NOW0 + 10000001, NOW0, &l, &d);
	EXPECT(refused_as_stored(&d, NOW0 + 10000001) && d.retry_after_ns == 1 &&
		   d.remaining == 0.0);

	/* a full bucket answers the same whatever its TAT and its limit was */
	for (size_t i = 0; i < NCASES; i++)
	{
		const limit_case *c = &limit_cases[i];

		EXPECT(gcra_make_limit(c->rate, c->burst, c->cost, &l) == GCRA_OK);
		gcra_decide(INT64_MIN, NOW0, &l, &d);
		gcra_decide(NOW0 - 1, NOW0, &l, &d2);
		EXPECT(d.allowed && d2.allowed && d.new_tat == d2.new_tat &&
			   d.remaining == d2.remaining);
		EXPECT(d.new_tat == NOW0 + l.increment_ns);
		EXPECT(fabs(d.remaining - (c->burst - c->cost)) <= 1.5 / l.interval_ns + 1e-6);
	}

	/*
	 * saturation: no pair of times wraps.  A TAT pinned at INT64_MAX is
	 * refused at any ordinary clock, with a wait that does not overflow
	 * either (the increment may be lost to saturation, not more).
	 */
	EXPECT(gcra_make_limit(1000, 10, 1, &l) == GCRA_OK);
	gcra_decide(INT64_MAX, NOW0, &l, &d);
	EXPECT(refused_as_stored(&d, INT64_MAX) && d.remaining == 0.0);
	EXPECT(d.retry_after_ns >= INT64_MAX - NOW0 - 10000000 &&
		   d.retry_after_ns <= INT64_MAX - NOW0 - 10000000 + 1000000);
	gcra_decide(INT64_MAX, 0, &l, &d);
	EXPECT(refused_as_stored(&d, INT64_MAX) &&
		   d.retry_after_ns == INT64_MAX - 10000000);
	gcra_decide(INT64_MAX, INT64_MIN, &l, &d);
	EXPECT(refused_as_stored(&d, INT64_MAX) &&
		   d.retry_after_ns == INT64_MAX - 10000000 && d.remaining == 0.0);
	gcra_decide(INT64_MAX - 1, INT64_MIN, &l, &d);
	EXPECT(refused_as_stored(&d, INT64_MAX - 1));
	gcra_decide(INT64_MAX, -NOW0, &l, &d);
	EXPECT(refused_as_stored(&d, INT64_MAX));
	/* a clock at INT64_MIN, with a bucket full or empty */
	gcra_decide(INT64_MIN, INT64_MIN, &l, &d);
	EXPECT(d.allowed && d.new_tat == INT64_MIN + 1000000 && d.remaining == 9.0);
	gcra_decide(INT64_MIN + 10000000, INT64_MIN, &l, &d);
	EXPECT(refused_as_stored(&d, INT64_MIN + 10000000) &&
		   d.retry_after_ns == 1000000);
	/*
	 * a clock within a window of INT64_MAX (292 years up): the TAT cannot
	 * pass INT64_MAX and is held there, but nothing wraps.  Up to that
	 * point keys work as anywhere else.
	 */
	gcra_decide(INT64_MIN, INT64_MAX, &l, &d);
	EXPECT(d.allowed && d.new_tat == INT64_MAX && d.remaining >= 0.0 &&
		   d.remaining <= 10.0);
	gcra_decide(INT64_MAX - 5, INT64_MAX - 10000000, &l, &d);
	EXPECT(d.new_tat >= INT64_MAX - 5 && d.retry_after_ns >= 0 &&
		   d.remaining >= 0.0);
	tat = 0;
	n = take_at_once(&l, &tat, INT64_MAX - 30000000, 100, &d);
	EXPECT(n == 10 && tat == INT64_MAX - 20000000 && refused_as_stored(&d, tat));
	/* the longest window, at both ends of the clock */
	EXPECT(gcra_make_limit(1, 316224000.0, 316224000.0, &l) == GCRA_OK);
	gcra_decide(INT64_MIN, INT64_MIN, &l, &d);
	EXPECT(d.allowed && d.new_tat == INT64_MIN + l.tolerance_ns && d.remaining == 0.0);
	gcra_decide(d.new_tat, INT64_MIN, &l, &d2);
	EXPECT(refused_as_stored(&d2, d.new_tat) && d2.retry_after_ns == l.tolerance_ns);
	gcra_decide(INT64_MAX, INT64_MIN, &l, &d);
	EXPECT(refused_as_stored(&d, INT64_MAX) &&
		   d.retry_after_ns == INT64_MAX - l.tolerance_ns);

	/* gcra_is_full: a TAT that is not ahead of now */
	EXPECT(gcra_is_full(5, 5));
	EXPECT(gcra_is_full(5, 6));
	EXPECT(!gcra_is_full(6, 5));
	EXPECT(gcra_is_full(INT64_MIN, INT64_MIN));
	EXPECT(gcra_is_full(INT64_MIN, INT64_MAX));
	EXPECT(!gcra_is_full(INT64_MAX, INT64_MIN));
	EXPECT(gcra_is_full(0, 0));
	EXPECT(gcra_make_limit(1000, 10, 1, &l) == GCRA_OK);
	tat = 0;
	take_at_once(&l, &tat, NOW0, 3, &d);
	EXPECT(!gcra_is_full(tat, NOW0) && !gcra_is_full(tat, tat - 1));
	EXPECT(gcra_is_full(tat, NOW0 + 3000000) && gcra_is_full(tat, tat));

	/* quota_parse: the units, in any case, with or without a final s */
	EXPECT(parses_to("100/hour", 100, 3600));
	EXPECT(parses_to(" 5 / Minutes ", 5, 60));
	EXPECT(parses_to("\t1/second\t", 1, 1));
	EXPECT(parses_to("1/SECONDS", 1, 1));
	EXPECT(parses_to("1/sEcOnD", 1, 1));
	EXPECT(parses_to("2/minute", 2, 60));
	EXPECT(parses_to("3/hours", 3, 3600));
	EXPECT(parses_to("7/Day", 7, 86400));
	EXPECT(parses_to("7/days", 7, 86400));
	EXPECT(parses_to("2/week", 2, 604800));
	EXPECT(parses_to("2/WEEKS", 2, 604800));
	EXPECT(parses_to("1/hourS", 1, 3600));
	EXPECT(parses_to("0005/hour", 5, 3600));
	EXPECT(parses_to("1000000000/second", QUOTA_MAX_COUNT, 1));
	EXPECT(parses_to("0000000000001000000000/week", QUOTA_MAX_COUNT, 604800));

	/* empty or blank: no quota */
	EXPECT(fails_with("", QUOTA_EMPTY, 0));
	EXPECT(fails_with(" ", QUOTA_EMPTY, 0));
	EXPECT(fails_with(" \t  \t", QUOTA_EMPTY, 0));

	/* the count: 1 to QUOTA_MAX_COUNT, at the digit that broke it */
	EXPECT(fails_with("0/hour", QUOTA_BAD_COUNT, 0));
	EXPECT(fails_with("  000/hour", QUOTA_BAD_COUNT, 4));
	EXPECT(fails_with("abc", QUOTA_BAD_COUNT, 0));
	EXPECT(fails_with("  -5/hour", QUOTA_BAD_COUNT, 2));
	EXPECT(fails_with("+5/hour", QUOTA_BAD_COUNT, 0));
	EXPECT(fails_with("/hour", QUOTA_BAD_COUNT, 0));
	EXPECT(fails_with("1000000001/second", QUOTA_BAD_COUNT, 9));
	EXPECT(fails_with("9999999999/second", QUOTA_BAD_COUNT, 9));
	EXPECT(fails_with("10000000000/second", QUOTA_BAD_COUNT, 10));
	EXPECT(fails_with("99999999999999999999999/hour", QUOTA_BAD_COUNT, 9));

	/* the slash, after the count and any spaces */
	EXPECT(fails_with("10", QUOTA_NO_SLASH, 2));
	EXPECT(fails_with("10  ", QUOTA_NO_SLASH, 4));
	EXPECT(fails_with("10 hour", QUOTA_NO_SLASH, 3));
	EXPECT(fails_with("1 0/hour", QUOTA_NO_SLASH, 2));
	EXPECT(fails_with("10.5/hour", QUOTA_NO_SLASH, 2));
	EXPECT(fails_with("10\\hour", QUOTA_NO_SLASH, 2));

	/* the period: one word, a known unit; anything after it is an error */
	EXPECT(fails_with("10/fortnight", QUOTA_BAD_PERIOD, 3));
	EXPECT(fails_with("10/ fortnights", QUOTA_BAD_PERIOD, 4));
	EXPECT(fails_with("10/hour x", QUOTA_BAD_PERIOD, 8));
	EXPECT(fails_with("10/h our", QUOTA_BAD_PERIOD, 5));
	EXPECT(fails_with("10/", QUOTA_BAD_PERIOD, 3));
	EXPECT(fails_with("10/  ", QUOTA_BAD_PERIOD, 5));
	EXPECT(fails_with("1/s", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1/S", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1/sec", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1/hr", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1/hourss", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1/month", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1/hour/day", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1/hour\n", QUOTA_BAD_PERIOD, 2));	/* only spaces and tabs */
	EXPECT(fails_with("1/h\xc3\xb6ur", QUOTA_BAD_PERIOD, 2));
	EXPECT(fails_with("1//hour", QUOTA_BAD_PERIOD, 2));

	/* the length is the string's end, wherever a NUL is */
	bad = 99;
	EXPECT(quota_parse("100/hours", 8, &q, &bad) == QUOTA_OK &&
		   q.count == 100 && q.period_s == 3600 && bad == 0);
	EXPECT(quota_parse("100/hourX", 8, &q, &bad) == QUOTA_OK && q.period_s == 3600);
	EXPECT(quota_parse("1/hour\0x", 8, &q, &bad) == QUOTA_BAD_PERIOD && bad == 2);
	EXPECT(quota_parse("1/day\0", 6, &q, &bad) == QUOTA_BAD_PERIOD && bad == 2);
	EXPECT(quota_parse("12/day", 2, &q, &bad) == QUOTA_NO_SLASH && bad == 2);
	EXPECT(quota_parse("12/day", 0, &q, &bad) == QUOTA_EMPTY && bad == 0);

	return unit_done("test_gcra");
}
