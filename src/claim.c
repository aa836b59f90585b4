/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  Read replicas: a link with max_visits, served from a hot standby by
 *	  claiming its visit on the primary in one round trip.
 *
 * A limited link's total is kept on the primary alone: a standby's own
 * count could not stop two standbys from serving the last visit twice.  So
 * resolve() on a standby that ships its clicks (clicks.c, CLICKS_STANDBY)
 * asks the primary's shorturl.claim_visit() (apply.c) to count the visit
 * there, exactly as the primary's resolve() would, and serves the URL only
 * if it did.  link_status() asks the same function without taking a visit.
 * The primary answers with the link's state there (active, exhausted,
 * expired, disabled or unknown): its row is the one that counts, whatever
 * this standby has replayed so far.
 *
 * Each backend keeps its own connection (upstream.c) to its database on
 * the primary, made at its first claim and kept for the session, or until
 * the connection string changes.  A claim is one statement, so one round
 * trip on a made connection, of a statement prepared there.  When the primary cannot be reached within
 * shorturl.claim_timeout, the claim fails: resolve() gives NULL and
 * link_status() "unreachable".  The backend then tries again no sooner
 * than RETRY_MS later, twice as long after each next failure in a row up
 * to MAX_RETRY_MS, so a primary that is down (or a role that may not
 * claim) costs a backend one wait, or one login, per such period, not one
 * per redirect.  A claim cut short (timeout, cancel)
 * may still have counted on the primary: a visit lost, never one served
 * beyond the limit.  The next claim reads that claim's answer to its end
 * and keeps the connection, so a session whose statements keep timing out
 * does not log in again each time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "claim.h"
#include "pg_shorturl.h"
#include "upstream.h"

/*
 * How long a backend leaves the primary alone after a failed claim, then
 * after each next one in a row (doubling up to the second)
 */
#define RETRY_MS		1000
#define MAX_RETRY_MS	16000

/*
 * The least time a claim that must connect first may take: a login to a
 * server that preloads libraries takes some 10 to 30 ms, more than the
 * smallest claim_timeout
 */
#define CONNECT_MS		1000

/* The claim, prepared on each new connection */
#define CLAIM_STATEMENT	"pg_shorturl_claim"

/* How often a backend logs a failed claim at most */
#define FAILURE_LOG_MS	60000

static upstream primary = {
	.interruptible = true,
	.application_name = "pg_shorturl claims",
	.timeout_name = "shorturl.claim_timeout",
};

/* the connection string the connection was made with */
static char *made_with = NULL;
static TimestampTz retry_at = 0;
static int	retry_ms = 0;		/* the wait after the last failure */
static bool exit_hooked = false;

/* The primary's answers, as claim_visit() spells them */
static const char *const answers[] = {
	[CLAIM_ACTIVE] = "active",
	[CLAIM_EXHAUSTED] = "exhausted",
	[CLAIM_EXPIRED] = "expired",
	[CLAIM_DISABLED] = "disabled",
	[CLAIM_UNKNOWN] = "unknown",
	[CLAIM_REFUSED] = "refused",
};

/* close_at_exit ends the session on the primary cleanly */
static void
close_at_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	upstream_close(&primary);
}

/*
 * failed notes a failed claim, and when to try again: RETRY_MS after the
 * first failure, twice as long after each next one, up to MAX_RETRY_MS
 */
static claim_answer
failed(const char *why)
{
	static TimestampTz logged_at = 0;
	TimestampTz now = GetCurrentTimestamp();

	retry_ms = retry_ms == 0 ? RETRY_MS : Min(retry_ms * 2, MAX_RETRY_MS);
	retry_at = TimestampTzPlusMilliseconds(now, retry_ms);
	if (TimestampDifferenceExceeds(logged_at, now, FAILURE_LOG_MS))
	{
		logged_at = now;
		ereport(LOG,
				(errmsg("pg_shorturl: could not claim a visit on the primary: %s", why)));
	}
	return CLAIM_UNREACHABLE;
}

/*
 * connected makes sure of a connection made with today's settings, with
 * the claim prepared on it, before the deadline, which making one moves
 * to CONNECT_MS from now if that is later
 */
static bool
connected(TimestampTz *deadline)
{
	const char *base = upstream_conninfo();
	char	   *dbname;

	/*
	 * A claim a cancel or a timeout cut short: its answer is read and
	 * dropped (its visit, if counted, is lost), rather than a login spent
	 */
	if (primary.busy)
		(void) upstream_finish(&primary, *deadline);
	/* what the primary sent meanwhile: its end of a session it closed */
	if (primary.conn != NULL && !primary.busy && base != NULL &&
		made_with != NULL && strcmp(base, made_with) == 0 &&
		PQconsumeInput(primary.conn) && PQstatus(primary.conn) == CONNECTION_OK)
		return true;
	dbname = get_database_name(MyDatabaseId);
	if (dbname == NULL)
	{
		upstream_close(&primary);
		strlcpy(primary.why, "this database is being dropped", sizeof(primary.why));
		return false;
	}
	/* set again once the claim is prepared on the new connection */
	if (made_with != NULL)
		pfree(made_with);
	made_with = NULL;
	*deadline = Max(*deadline, upstream_deadline(CONNECT_MS));
	if (!upstream_connect(&primary, dbname, *deadline) ||
		!upstream_prepare(&primary, CLAIM_STATEMENT,
						  "SELECT shorturl.claim_visit($1::bigint, $2::oid, $3::bigint,"
						  " $4::boolean, $5::boolean)",
						  5, *deadline))
		return false;
	made_with = MemoryContextStrdup(TopMemoryContext, base);
	if (!exit_hooked)
	{
		on_proc_exit(close_at_exit, 0);
		exit_hooked = true;
	}
	return true;
}

/*
 * claim_visit asks the primary how a link stands there, counting one visit
 * of it (a bot's, if bot) when take is set and the link is active there.
 * The whole of it waits shorturl.claim_timeout at most, or CONNECT_MS
 * when it has to connect first, if that is longer.
 */
claim_answer
claim_visit(int64 link_id, bool take, bool bot)
{
	TimestampTz deadline = upstream_deadline(shorturl_claim_timeout);
	char		id[32];
	char		relid[16];
	char		link[32];
	const char *params[5];
	char	   *answer;

	if (GetCurrentTimestamp() < retry_at)
		return CLAIM_UNREACHABLE;
	if (!connected(&deadline))
		return failed(primary.why);
	snprintf(id, sizeof(id), INT64_FORMAT, (int64) GetSystemIdentifier());
	snprintf(relid, sizeof(relid), "%u", catalog_tables()->links);
	snprintf(link, sizeof(link), INT64_FORMAT, link_id);
	params[0] = id;
	params[1] = relid;
	params[2] = link;
	params[3] = take ? "t" : "f";
	params[4] = bot ? "t" : "f";
	answer = upstream_call_prepared(&primary, CLAIM_STATEMENT, 5, params, deadline);
	if (answer == NULL)
		return failed(primary.why);
	retry_ms = 0;
	for (size_t a = 0; a < lengthof(answers); a++)
		if (strcmp(answer, answers[a]) == 0)
		{
			pfree(answer);
			return (claim_answer) a;
		}
	upstream_close(&primary);
	snprintf(primary.why, sizeof(primary.why), "an unexpected answer \"%s\"", answer);
	pfree(answer);
	return failed(primary.why);
}

/*
 * claim_forget closes this session's connection to the primary, if any:
 * a promoted server claims nothing.
 */
void
claim_forget(void)
{
	if (primary.conn != NULL)
		upstream_close(&primary);
}
