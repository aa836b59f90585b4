/*-------------------------------------------------------------------------
 *
 * gcra.h
 *	  Pure core of the rate limiter: the Generic Cell Rate Algorithm, and
 *	  the parser of quota settings such as '100/hour'.
 *
 * GCRA is a token bucket kept as one number, the theoretical arrival time
 * (TAT): the moment the bucket will be full again.  A bucket of `burst`
 * tokens that refills at `rate` tokens a second holds, at time now,
 * burst - max(0, TAT - now) * rate tokens.  A request of `cost` tokens is
 * allowed when that is at least cost, and then moves the TAT forward by
 * cost / rate seconds.  So one compare-and-swap of one 64-bit word is a
 * complete, exact decision, whatever the concurrency (ratelimit.c).
 *
 * Times are nanoseconds of a monotonic clock, which the caller reads: the
 * core never reads a clock and never allocates, so the unit tests and the
 * fuzzer drive it directly.  The rate and the burst are passed on every
 * call, not stored: a key's state is its TAT alone, and a bucket whose TAT
 * has passed is full under any rate, which is why such a key can be
 * forgotten without changing any answer.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_GCRA_H
#define SHORTURL_GCRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GCRA_NS_PER_SECOND	1000000000.0

/*
 * The longest a bucket may take to refill from empty (burst / rate): ten
 * years, far beyond any real limit, and small enough that a TAT stays
 * within int64 nanoseconds of any monotonic clock (2^63 ns is 292 years).
 */
#define GCRA_MAX_WINDOW_NS	(10 * 366 * 24 * 3600 * 1000000000.0)

/*
 * The highest rate: one token a nanosecond.  The TAT moves in whole
 * nanoseconds, so a request's cost is rounded down to the nanosecond (a
 * request never takes more than it costs); below a million tokens a
 * second that is less than 0.1% of a token.
 */
#define GCRA_MAX_RATE		1e9

typedef enum gcra_status
{
	GCRA_OK = 0,
	GCRA_BAD_RATE,				/* not a finite number in (0, 1e9] */
	GCRA_BAD_BURST,				/* not a finite positive number */
	GCRA_BAD_COST,				/* negative, or not a finite number */
	GCRA_COST_OVER_BURST,		/* a request no full bucket could allow */
	GCRA_WINDOW_TOO_LONG,		/* burst / rate longer than GCRA_MAX_WINDOW_NS */
	GCRA_WINDOW_TOO_SHORT		/* burst / rate shorter than a nanosecond */
} gcra_status;

/* A limit as the algorithm uses it, in nanoseconds */
typedef struct gcra_limit
{
	double		interval_ns;	/* 1 / rate: the time one token takes */
	int64_t		tolerance_ns;	/* burst / rate: refill time of a bucket */
	int64_t		increment_ns;	/* cost / rate: how far a request moves the
								 * TAT */
} gcra_limit;

/* The answer to one request */
typedef struct gcra_decision
{
	bool		allowed;
	int64_t		new_tat;		/* the TAT to store (unchanged if refused) */
	double		remaining;		/* tokens left after the decision */
	int64_t		retry_after_ns; /* 0 if allowed; else how long until the same
								 * request would be */
} gcra_decision;

extern gcra_status gcra_make_limit(double rate, double burst, double cost,
								   gcra_limit *limit);
extern void gcra_decide(int64_t tat, int64_t now, const gcra_limit *limit,
						gcra_decision *d);
extern bool gcra_is_full(int64_t tat, int64_t now);

typedef enum quota_status
{
	QUOTA_OK = 0,
	QUOTA_EMPTY,				/* '' or only spaces: no quota */
	QUOTA_BAD_COUNT,			/* not a whole number from 1 to QUOTA_MAX_COUNT */
	QUOTA_NO_SLASH,				/* no '/' between the count and the period */
	QUOTA_BAD_PERIOD			/* not second, minute, hour, day or week */
} quota_status;

/* The largest count a quota may give, far beyond any sane one */
#define QUOTA_MAX_COUNT		1000000000

/* A quota: count links per period_s seconds */
typedef struct quota_spec
{
	int64_t		count;
	int64_t		period_s;
} quota_spec;

extern quota_status quota_parse(const char *s, size_t len, quota_spec *spec,
								size_t *bad_offset);

#endif							/* SHORTURL_GCRA_H */
