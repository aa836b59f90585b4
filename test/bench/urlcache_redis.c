/*-------------------------------------------------------------------------
 *
 * urlcache_redis.c
 *	  The load generator of the Redis anchor in test/bench/urlcache.sh: the
 *	  same redirects, by the same client, answered three ways: a plain
 *	  SELECT, shorturl.resolve() (the URL cache in front of the links), or
 *	  Redis in front of the plain table (cache-aside).
 *
 * pgbench speaks only to PostgreSQL, so the Redis case needs a client of
 * its own; to compare like with like, this client runs all three cases, so
 * the ratios in the report do not mix two clients' overheads.  Each of
 * CLIENTS threads has one libpq connection and (redis) one hiredis
 * connection, both over Unix sockets, and runs redirects back to back, one
 * at a time, for SECONDS:
 *
 *	 plain    SELECT url FROM bench.plain WHERE code = $1    (prepared)
 *	 resolve  SELECT shorturl.resolve($1)                    (prepared)
 *	 redis    GET code; on a miss the plain SELECT, then SET code url
 *
 * A redirect picks a rank r (hot: 0; uniform: uniform over 0 .. N - 1;
 * zipfS: Zipf's law with exponent S over 1 .. N, minus one, drawn by the
 * rejection method pgbench's random_zipfian() uses for S > 1, so the
 * distribution is the same) and asks for the code FIRST + 1 +
 * scatter(r), where scatter(r) = r * M mod N, M the first number from
 * 0.618 N up that is coprime with N: a bijection that puts neighbouring
 * ranks far apart in the index, as pgbench's permute() does (which this
 * client cannot call; so its hot links are others than pgbench's, equally
 * scattered).
 *
 * It prints one line: "tx TX seconds S tps TPS mean_ms M p99_ms P hits H
 * misses X" (hits and misses: Redis's, redis only; latency from before
 * the request to after the answer, by the monotonic clock, in 1 µs
 * buckets).  Exit status 1 on any error, with a message.
 *
 *	 urlcache_redis MODE WORKLOAD SECONDS CLIENTS LINKS FIRST_CODE [REDIS_SOCKET]
 *
 * Every run draws other ranks (its random state is seeded from the clock
 * and the process id, as pgbench's default --random-seed=time does): a
 * run after a warm-up must not replay the warm-up's requests.
 *
 * libpq takes the server from the environment (PGHOST, PGPORT, ...).
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

/* Latency histogram: 1 µs buckets up to 1 s, the last one for the rest */
#define LATENCY_BUCKETS		1000000

/* Longest decimal code (an int64) and its terminator */
#define CODE_BUFFER			24

/* The golden ratio's fractional part: where the scatter's multiplier starts */
#define SCATTER_FRACTION	0.6180339887498949

typedef enum
{
	MODE_PLAIN,
	MODE_RESOLVE,
	MODE_REDIS
} bench_mode;

typedef enum
{
	PICK_HOT,
	PICK_UNIFORM,
	PICK_ZIPF
} bench_pick;

/* What every thread shares, set before they start */
static bench_mode mode;
static bench_pick pick;
static double zipf_s;
static int64_t links;
static int64_t first_code;
static uint64_t scatter_mult;
static uint64_t run_seed;
static const char *redis_socket;
static double seconds;
static pthread_barrier_t ready;
static struct timespec start_at;
static struct timespec stop_at;

/* One thread's connections, random state and figures */
typedef struct client
{
	int			index;
	uint64_t	rng;
	PGconn	   *pg;
	redisContext *redis;
	uint64_t	tx;
	uint64_t	hits;
	uint64_t	misses;
	double		latency_sum_us;
	uint32_t   *latency;
	char		error[512];
} client;

static void
fail(const char *what)
{
	fprintf(stderr, "urlcache_redis: %s\n", what);
	exit(1);
}

static double
ts_seconds(const struct timespec *t)
{
	return (double) t->tv_sec + (double) t->tv_nsec / 1e9;
}

/* next_u64 is splitmix64: small, fast, and good enough to draw ranks */
static uint64_t
next_u64(uint64_t *state)
{
	uint64_t	z = (*state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* next_double is uniform on [0, 1), from the top 53 bits */
static double
next_double(uint64_t *state)
{
	return (double) (next_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * zipf_rank draws x in 1 .. n with probability proportional to x^-s, for
 * s > 1, by rejection (Devroye, Non-Uniform Random Variate Generation,
 * p. 550), the method of pgbench's random_zipfian() for s > 1.
 */
static int64_t
zipf_rank(uint64_t *state, int64_t n, double s)
{
	double		b = pow(2.0, s - 1.0);

	for (;;)
	{
		double		u = 1.0 - next_double(state);	/* (0, 1]: pow(0, -k) is inf */
		double		v = next_double(state);
		double		x = floor(pow(u, -1.0 / (s - 1.0)));
		double		t = pow(1.0 + 1.0 / x, s - 1.0);

		if (v * x * (t - 1.0) / (b - 1.0) <= t / b && x <= (double) n)
			return (int64_t) x;
	}
}

static uint64_t
gcd(uint64_t a, uint64_t b)
{
	while (b != 0)
	{
		uint64_t	r = a % b;

		a = b;
		b = r;
	}
	return a;
}

/* next_code writes the decimal code of the next redirect into buf */
static int
next_code(client *c, char *buf)
{
	int64_t		r;

	switch (pick)
	{
		case PICK_HOT:
			r = 0;
			break;
		case PICK_UNIFORM:
			r = (int64_t) (next_u64(&c->rng) % (uint64_t) links);
			break;
		default:
			r = zipf_rank(&c->rng, links, zipf_s) - 1;
			break;
	}
	return snprintf(buf, CODE_BUFFER, "%" PRId64,
					first_code + 1 + (int64_t) (((uint64_t) r * scatter_mult) % (uint64_t) links));
}

/* select_url runs the prepared statement; false (and c->error) on failure */
static bool
select_url(client *c, const char *code, char **url, int *url_len)
{
	const char *params[1] = {code};
	PGresult   *res = PQexecPrepared(c->pg, "q", 1, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
	{
		snprintf(c->error, sizeof(c->error), "code %s: %s", code,
				 PQresultStatus(res) == PGRES_TUPLES_OK ? "no URL" : PQerrorMessage(c->pg));
		PQclear(res);
		return false;
	}
	if (url != NULL)
	{
		*url_len = PQgetlength(res, 0, 0);
		*url = malloc(*url_len + 1);
		memcpy(*url, PQgetvalue(res, 0, 0), *url_len + 1);
	}
	PQclear(res);
	return true;
}

/* redirect_redis answers from Redis, or from the table and fills Redis */
static bool
redirect_redis(client *c, const char *code, int code_len)
{
	redisReply *reply = redisCommand(c->redis, "GET %b", code, (size_t) code_len);
	char	   *url;
	int			url_len;

	if (reply == NULL)
	{
		snprintf(c->error, sizeof(c->error), "redis GET: %s", c->redis->errstr);
		return false;
	}
	if (reply->type == REDIS_REPLY_STRING)
	{
		c->hits++;
		freeReplyObject(reply);
		return true;
	}
	freeReplyObject(reply);
	c->misses++;
	if (!select_url(c, code, &url, &url_len))
		return false;
	reply = redisCommand(c->redis, "SET %b %b", code, (size_t) code_len, url, (size_t) url_len);
	free(url);
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
	{
		snprintf(c->error, sizeof(c->error), "redis SET: %s",
				 reply == NULL ? c->redis->errstr : reply->str);
		if (reply != NULL)
			freeReplyObject(reply);
		return false;
	}
	freeReplyObject(reply);
	return true;
}

static void *
client_main(void *arg)
{
	client	   *c = arg;
	const char *sql = mode == MODE_RESOLVE ? "SELECT shorturl.resolve($1)"
		: "SELECT url FROM bench.plain WHERE code = $1";
	PGresult   *res;
	char		code[CODE_BUFFER];
	struct timespec t0,
				t1;
	bool		ok = true;

	c->pg = PQconnectdb("");
	if (PQstatus(c->pg) != CONNECTION_OK)
	{
		snprintf(c->error, sizeof(c->error), "connection: %s", PQerrorMessage(c->pg));
		ok = false;
	}
	else
	{
		res = PQprepare(c->pg, "q", sql, 1, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			snprintf(c->error, sizeof(c->error), "prepare: %s", PQerrorMessage(c->pg));
			ok = false;
		}
		PQclear(res);
	}
	if (ok && mode == MODE_REDIS)
	{
		c->redis = redisConnectUnix(redis_socket);
		if (c->redis == NULL || c->redis->err)
		{
			snprintf(c->error, sizeof(c->error), "redis connection: %s",
					 c->redis ? c->redis->errstr : "out of memory");
			ok = false;
		}
	}
	/* every thread connected before the clock starts, as pgbench does */
	pthread_barrier_wait(&ready);
	if (!ok)
		return NULL;
	for (;;)
	{
		int			len = next_code(c, code);
		uint64_t	us;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (ts_seconds(&t0) >= ts_seconds(&stop_at))
			break;
		if (mode == MODE_REDIS)
			ok = redirect_redis(c, code, len);
		else
			ok = select_url(c, code, NULL, NULL);
		if (!ok)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us = (uint64_t) ((ts_seconds(&t1) - ts_seconds(&t0)) * 1e6);
		c->latency[us < LATENCY_BUCKETS ? us : LATENCY_BUCKETS - 1]++;
		c->latency_sum_us += (ts_seconds(&t1) - ts_seconds(&t0)) * 1e6;
		c->tx++;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	int			nclients;
	client	   *clients;
	pthread_t  *threads;
	uint64_t	tx = 0,
				hits = 0,
				misses = 0,
				seen = 0,
				p99_at;
	double		latency_sum = 0,
				p99_us = 0,
				elapsed;
	uint32_t   *latency;
	struct timespec end_at;

	if (argc < 7)
		fail("usage: urlcache_redis plain|resolve|redis hot|uniform|zipfS SECONDS CLIENTS LINKS FIRST_CODE [REDIS_SOCKET]");
	if (strcmp(argv[1], "plain") == 0)
		mode = MODE_PLAIN;
	else if (strcmp(argv[1], "resolve") == 0)
		mode = MODE_RESOLVE;
	else if (strcmp(argv[1], "redis") == 0)
		mode = MODE_REDIS;
	else
		fail("the mode is plain, resolve or redis");
	if (strcmp(argv[2], "hot") == 0)
		pick = PICK_HOT;
	else if (strcmp(argv[2], "uniform") == 0)
		pick = PICK_UNIFORM;
	else if (strncmp(argv[2], "zipf", 4) == 0 && (zipf_s = atof(argv[2] + 4)) > 1.0)
		pick = PICK_ZIPF;
	else
		fail("the workload is hot, uniform or zipfS with S > 1");
	seconds = atof(argv[3]);
	nclients = atoi(argv[4]);
	links = strtoll(argv[5], NULL, 10);
	first_code = strtoll(argv[6], NULL, 10);
	redis_socket = argc > 7 ? argv[7] : NULL;
	if (seconds <= 0 || nclients < 1 || links < 1)
		fail("SECONDS, CLIENTS and LINKS must be positive");
	if (mode == MODE_REDIS && redis_socket == NULL)
		fail("the mode redis needs REDIS_SOCKET");

	clock_gettime(CLOCK_REALTIME, &start_at);
	run_seed = (uint64_t) start_at.tv_sec * 1000000000 + (uint64_t) start_at.tv_nsec;
	run_seed ^= (uint64_t) getpid() << 32;

	scatter_mult = (uint64_t) ((double) links * SCATTER_FRACTION);
	if (scatter_mult == 0)
		scatter_mult = 1;
	while (gcd(scatter_mult, (uint64_t) links) != 1)
		scatter_mult++;

	clients = calloc(nclients, sizeof(client));
	threads = calloc(nclients, sizeof(pthread_t));
	latency = calloc(LATENCY_BUCKETS, sizeof(uint32_t));
	if (clients == NULL || threads == NULL || latency == NULL)
		fail("out of memory");
	/* the main thread waits at the barrier too, then starts the clock */
	pthread_barrier_init(&ready, NULL, nclients + 1);
	for (int i = 0; i < nclients; i++)
	{
		clients[i].index = i;
		/* splitmix64 streams from seeds far apart */
		clients[i].rng = run_seed;
		for (int k = 0; k <= i; k++)
			clients[i].rng = next_u64(&clients[i].rng);
		clients[i].latency = calloc(LATENCY_BUCKETS, sizeof(uint32_t));
		if (clients[i].latency == NULL)
			fail("out of memory");
		if (pthread_create(&threads[i], NULL, client_main, &clients[i]) != 0)
			fail(strerror(errno));
	}
	/*
	 * stop_at is set before the threads pass the barrier, which orders the
	 * write before their reads.
	 */
	clock_gettime(CLOCK_MONOTONIC, &start_at);
	stop_at = start_at;
	stop_at.tv_sec += (time_t) seconds;
	stop_at.tv_nsec += (long) ((seconds - floor(seconds)) * 1e9);
	if (stop_at.tv_nsec >= 1000000000L)
	{
		stop_at.tv_sec++;
		stop_at.tv_nsec -= 1000000000L;
	}
	pthread_barrier_wait(&ready);
	for (int i = 0; i < nclients; i++)
		pthread_join(threads[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &end_at);
	elapsed = ts_seconds(&end_at) - ts_seconds(&start_at);

	for (int i = 0; i < nclients; i++)
	{
		client	   *c = &clients[i];

		if (c->error[0] != '\0')
			fail(c->error);
		tx += c->tx;
		hits += c->hits;
		misses += c->misses;
		latency_sum += c->latency_sum_us;
		for (int b = 0; b < LATENCY_BUCKETS; b++)
			latency[b] += c->latency[b];
		if (c->redis)
			redisFree(c->redis);
		PQfinish(c->pg);
	}
	if (tx == 0)
		fail("no redirect completed");
	p99_at = (uint64_t) ceil((double) tx * 0.99);
	for (int b = 0; b < LATENCY_BUCKETS; b++)
	{
		seen += latency[b];
		if (seen >= p99_at)
		{
			p99_us = b + 1;
			break;
		}
	}
	printf("tx %" PRIu64 " seconds %.3f tps %.1f mean_ms %.4f p99_ms %.3f hits %" PRIu64 " misses %" PRIu64 "\n",
		   tx, elapsed, tx / elapsed, latency_sum / tx / 1000, p99_us / 1000, hits, misses);
	return 0;
}
