/*-------------------------------------------------------------------------
 *
 * upstream.c
 *	  A hot standby's libpq connection to its primary: the worker ships
 *	  clicks over one (ship.c), a backend claims a limited link's visit over
 *	  its own (claim.c).
 *
 * The connection is non-blocking once made, and every wait goes through
 * the process latch, bounded by the caller's timeout.  A worker being shut
 * down (SIGTERM) lets an exchange under way finish, for up to
 * SHUTDOWN_WAIT_MS per wait, since its answer may settle a batch.  A
 * backend's wait ends with a query cancel or a termination like any other
 * (CHECK_FOR_INTERRUPTS()); the exchange cut short leaves the connection
 * busy, and the next use drops it and connects afresh, since its answer
 * may still be on its way.
 *
 * Every failure closes the connection and leaves its message in u->why:
 * what failed, and libpq's reason where there is one.  Nothing is
 * allocated for it, so a worker that fails every second for days does
 * not grow.  Each call is bounded by the caller's deadline, one for a
 * whole exchange or one per step (upstream_deadline()).  Notices from the
 * primary go to the server log at DEBUG1, not to the standard error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "pg_shorturl.h"
#include "upstream.h"

/* How long a shutdown (or a replay conflict) waits for an exchange */
#define SHUTDOWN_WAIT_MS	1000

/*
 * upstream_conninfo is where the primary is: shorturl.primary_conninfo, else
 * the server's primary_conninfo; NULL when neither is set.
 */
const char *
upstream_conninfo(void)
{
	const char *base = shorturl_primary_conninfo && shorturl_primary_conninfo[0] ?
		shorturl_primary_conninfo : PrimaryConnInfo;

	return base && base[0] ? base : NULL;
}

/*
 * upstream_deadline is the moment timeout_ms from now, for the calls below
 */
TimestampTz
upstream_deadline(int timeout_ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
}

/*
 * fail closes the connection and says why in u->why: what, and libpq's
 * reason when with_reason (or detail, when given)
 */
static void
fail(upstream *u, const char *what, bool with_reason, const char *detail)
{
	const char *reason = detail;
	int			len;

	if (with_reason && reason == NULL && u->conn != NULL)
		reason = PQerrorMessage(u->conn);
	if (reason != NULL && reason[0] != '\0')
		snprintf(u->why, sizeof(u->why), "%s: %s", what, reason);
	else
		strlcpy(u->why, what, sizeof(u->why));
	/* libpq ends its messages with a newline */
	for (len = strlen(u->why); len > 0 && u->why[len - 1] == '\n';)
		u->why[--len] = '\0';
	upstream_close(u);
}

/* fail_timeout says no answer came within the timeout's setting */
static void
fail_timeout(upstream *u, const char *what)
{
	char		message[128];

	snprintf(message, sizeof(message), "%s within %s", what, u->timeout_name);
	fail(u, message, false, NULL);
}

/* notice passes what the primary says aside to the log, quietly */
static void
notice(void *arg pg_attribute_unused(), const char *message)
{
	ereport(DEBUG1, (errmsg_internal("pg_shorturl: the primary says: %s", message)));
}

/*
 * wait_socket waits until the connection's socket is ready for events, or
 * the deadline passes (false).
 */
static bool
wait_socket(upstream *u, int events, TimestampTz deadline)
{
	bool		cut = false;

	for (;;)
	{
		long		ms;
		int			rc;

		/* a worker told to stop waits SHUTDOWN_WAIT_MS from then, once */
		if (ProcDiePending && !u->interruptible && !cut)
		{
			deadline = Min(deadline, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																 SHUTDOWN_WAIT_MS));
			cut = true;
		}
		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (ms <= 0)
			return false;
		rc = WaitLatchOrSocket(MyLatch, events | WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							   PQsocket(u->conn), ms, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			if (u->interruptible)
				CHECK_FOR_INTERRUPTS();
		}
		if (rc & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			return true;
	}
}

/*
 * upstream_connect opens the connection to database dbname on the primary
 * before the deadline, or says why not.  (No statement or lock timeout is
 * set there: an exchange the standby gave up on may still commit.)
 */
bool
upstream_connect(upstream *u, const char *dbname, TimestampTz deadline)
{
	const char *keys[4] = {"dbname", "dbname", "application_name", NULL};
	const char *values[4];
	const char *base = upstream_conninfo();
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;

	upstream_close(u);
	if (base == NULL)
	{
		fail(u, "neither shorturl.primary_conninfo nor primary_conninfo is set", false, NULL);
		return false;
	}
	/* the first dbname is the whole string; the second names our database */
	values[0] = base;
	values[1] = dbname;
	values[2] = u->application_name;
	values[3] = NULL;
	u->conn = PQconnectStartParams(keys, values, true);
	if (u->conn == NULL)
	{
		fail(u, "out of memory", false, NULL);
		return false;
	}
	u->busy = true;
	while (status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
	{
		if (PQstatus(u->conn) == CONNECTION_BAD)
			break;
		if (!wait_socket(u, status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE,
						 deadline))
		{
			fail_timeout(u, "no connection");
			return false;
		}
		status = PQconnectPoll(u->conn);
	}
	if (PQstatus(u->conn) != CONNECTION_OK || PQsetnonblocking(u->conn, 1) != 0)
	{
		fail(u, "could not connect", true, NULL);
		return false;
	}
	PQsetNoticeProcessor(u->conn, notice, NULL);
	u->busy = false;
	return true;
}

/* What an exchange waits for */
typedef enum exchange_want
{
	WANT_ROW,					/* a one-row, one-column answer */
	WANT_COMMAND,				/* a command's success */
	WANT_NOTHING				/* the end of whatever comes */
} exchange_want;

/*
 * exchange sends what the caller queued and reads every result before the
 * deadline: the single value of a one-row answer (WANT_ROW; palloc'd), or
 * "" for a command's, or for the end of the results of an exchange cut
 * short (WANT_NOTHING: whatever they say).  Any error among the results fails it: with the
 * extended protocol the commit comes after the row, and may fail.
 */
static char *
exchange(upstream *u, TimestampTz deadline, exchange_want want)
{
	PGresult   *answer = NULL;
	PGresult   *refusal = NULL;
	char	   *value = NULL;

	for (;;)
	{
		int			r = PQflush(u->conn);

		if (r == 0)
			break;
		if (r < 0)
		{
			fail(u, "could not send", true, NULL);
			return NULL;
		}
		if (!wait_socket(u, WL_SOCKET_WRITEABLE | WL_SOCKET_READABLE, deadline))
		{
			fail_timeout(u, "no answer");
			return NULL;
		}
		if (!PQconsumeInput(u->conn))
		{
			fail(u, "the connection broke", true, NULL);
			return NULL;
		}
	}
	for (;;)
	{
		PGresult   *res;
		bool		ok;

		while (PQisBusy(u->conn))
		{
			if (!wait_socket(u, WL_SOCKET_READABLE, deadline))
				fail_timeout(u, "no answer");
			else if (!PQconsumeInput(u->conn))
				fail(u, "the connection broke", true, NULL);
			else
				continue;
			/* (fail() closed the connection) */
			PQclear(answer);
			PQclear(refusal);
			return NULL;
		}
		res = PQgetResult(u->conn);
		if (res == NULL)
			break;
		if (want == WANT_NOTHING)
		{
			PQclear(res);
			continue;
		}
		ok = want == WANT_ROW ?
			PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			PQnfields(res) == 1 && !PQgetisnull(res, 0, 0) :
			PQresultStatus(res) == PGRES_COMMAND_OK;
		if (ok && answer == NULL && refusal == NULL)
			answer = res;
		else if (refusal == NULL)
			refusal = res;
		else
			PQclear(res);
	}
	u->busy = false;
	if (want == WANT_NOTHING)
		value = pstrdup("");
	else if (answer != NULL && refusal == NULL)
		value = pstrdup(want == WANT_ROW ? PQgetvalue(answer, 0, 0) : "");
	else
		fail(u, "the primary refused", false,
			 refusal == NULL ? "no answer" :
			 PQresultErrorMessage(refusal)[0] ? PQresultErrorMessage(refusal) : "an unexpected answer");
	PQclear(answer);
	PQclear(refusal);
	return value;
}

/*
 * upstream_call runs one statement on the primary before the deadline and
 * returns its single value (palloc'd), or NULL (u->why says why).
 */
char *
upstream_call(upstream *u, const char *sql, int nparams, const char *const *params,
			  TimestampTz deadline)
{
	return upstream_call_typed(u, sql, nparams, NULL, params, NULL, NULL, deadline);
}

/*
 * upstream_call_typed is upstream_call() with PQexecParams()'s types,
 * lengths and formats of the parameters (NULL: all text, types from the
 * statement), for values sent in binary
 */
char *
upstream_call_typed(upstream *u, const char *sql, int nparams, const Oid *types,
					const char *const *params, const int *lengths, const int *formats,
					TimestampTz deadline)
{
	Assert(u->conn != NULL && !u->busy);
	u->busy = true;
	if (!PQsendQueryParams(u->conn, sql, nparams, types, params, lengths, formats, 0))
	{
		fail(u, "could not send", true, NULL);
		return NULL;
	}
	return exchange(u, deadline, WANT_ROW);
}

/*
 * upstream_prepare prepares a statement on the primary under a name, for
 * upstream_call_prepared(), which then skips the parse and plan of each
 * call; false after a failure.
 */
bool
upstream_prepare(upstream *u, const char *name, const char *sql, int nparams,
				 TimestampTz deadline)
{
	char	   *done;

	Assert(u->conn != NULL && !u->busy);
	u->busy = true;
	if (!PQsendPrepare(u->conn, name, sql, nparams, NULL))
	{
		fail(u, "could not send", true, NULL);
		return false;
	}
	done = exchange(u, deadline, WANT_COMMAND);
	if (done == NULL)
		return false;
	pfree(done);
	return true;
}

/* upstream_call_prepared is upstream_call() of a prepared statement */
char *
upstream_call_prepared(upstream *u, const char *name, int nparams, const char *const *params,
					   TimestampTz deadline)
{
	Assert(u->conn != NULL && !u->busy);
	u->busy = true;
	if (!PQsendQueryPrepared(u->conn, name, nparams, params, NULL, NULL, 0))
	{
		fail(u, "could not send", true, NULL);
		return NULL;
	}
	return exchange(u, deadline, WANT_ROW);
}

/*
 * upstream_finish reads to its end an exchange a query cancel or a timeout
 * cut short, so that the connection can serve again without a new login;
 * false (and closed) when that fails before the deadline, or the cut came
 * while connecting.  A connection that is not busy is left as it is.
 */
bool
upstream_finish(upstream *u, TimestampTz deadline)
{
	char	   *done;

	if (u->conn == NULL)
		return false;
	if (!u->busy)
		return true;
	if (PQstatus(u->conn) != CONNECTION_OK)
	{
		fail(u, "a connection was cut short while it was made", false, NULL);
		return false;
	}
	done = exchange(u, deadline, WANT_NOTHING);
	if (done == NULL)
		return false;
	pfree(done);
	return true;
}

/* upstream_close drops the connection, if any */
void
upstream_close(upstream *u)
{
	if (u->conn != NULL)
		PQfinish(u->conn);
	u->conn = NULL;
	u->busy = false;
}
