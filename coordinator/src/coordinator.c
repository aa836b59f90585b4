/*-------------------------------------------------------------------------
 *
 * coordinator.c
 *	  The C side of pg_shorturl_coordinator: parsing the shards' connection
 *	  strings, and turning a failed call to a shard into an error that names
 *	  the shard.
 *
 * The coordinator's calls to its shards run on PL/Proxy (see the extension
 * script): it keeps a connection per shard and backend, passes a shard's
 * SQLSTATE through, times out a shard that does not answer, and sends a
 * cancel to a shard when the local query is cancelled.  What PL/Proxy does
 * not do is say which shard failed (it names the database, the same on
 * every shard) or tell "the shard is down" from "the shard said no": the
 * API functions catch the error and hand it to shorturl_reraise(), which
 * classifies it by SQLSTATE, never by its (possibly translated) text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* InitMaterializedSRF and the PL/Proxy packages we test with need 15 */
#if PG_VERSION_NUM < 150000
#error "pg_shorturl_coordinator needs PostgreSQL 15 or later"
#endif

#if PG_VERSION_NUM >= 180000
PG_MODULE_MAGIC_EXT(.name = "pg_shorturl_coordinator", .version = "0.6");
#else
PG_MODULE_MAGIC;
#endif

/*
 * PL/Proxy raises its own failures (a refused connection, a timeout, a
 * connection lost mid-call) as internal errors whose message starts with
 * the function's name; a shard's own errors keep the shard's SQLSTATE.
 */
#define PLPROXY_REMOTE_TAG	"REMOTE "

/*
 * and hands a shard's DETAIL on as "Remote detail: <the shard's detail>",
 * in its own untranslated words
 */
#define PLPROXY_DETAIL_TAG	"Remote detail: "

PG_FUNCTION_INFO_V1(shorturl_conninfo_options);

/*
 * shorturl_conninfo_options implements conninfo_options(conninfo text)
 * RETURNS TABLE (keyword text, value text): the options a libpq connection
 * string sets, as libpq itself parses it (both key=value and URI forms).
 */
Datum
shorturl_conninfo_options(PG_FUNCTION_ARGS)
{
	char	   *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *err = NULL;
	PQconninfoOption *options;

	InitMaterializedSRF(fcinfo, 0);
	options = PQconninfoParse(conninfo, &err);
	if (options == NULL)
	{
		char	   *msg = err ? pstrdup(err) : pstrdup("out of memory");
		size_t		len = strlen(msg);

		if (err)
			PQfreemem(err);
		/* libpq ends its messages with a newline */
		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid connection string: %s", msg)));
	}

	for (PQconninfoOption *o = options; o->keyword != NULL; o++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (o->val == NULL || o->val[0] == '\0')
			continue;
		values[0] = CStringGetTextDatum(o->keyword);
		values[1] = CStringGetTextDatum(o->val);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PQconninfoFree(options);
	return (Datum) 0;
}

/*
 * remote_message returns the shard's own message out of PL/Proxy's
 * "func(n): [db] REMOTE ERROR: message", whatever language the shard's
 * severity word is in; the whole text if it has no such shape.
 */
static const char *
remote_message(const char *message)
{
	const char *tag = strstr(message, PLPROXY_REMOTE_TAG);
	const char *colon;

	if (tag == NULL)
		return message;
	colon = strstr(tag, ": ");
	return colon ? colon + 2 : message;
}

/* sqlstate_of turns a five-character SQLSTATE into an error code */
static int
sqlstate_of(const char *s)
{
	if (strlen(s) != 5)
		return ERRCODE_INTERNAL_ERROR;
	return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
}

/* ---------------------------------------------------------------------
 * The deadline of a call through the coordinator.
 *
 * PL/Proxy checks its query_timeout only when a shard's socket shows an
 * event, so a shard that accepts connections and then says nothing (a
 * frozen server) would hold the call for good; and a cancel makes it send
 * PQcancel, which waits on that same frozen server.  So the API functions
 * arm a deadline of shorturl.remote_timeout around their calls.  It uses
 * the server's lock-timeout timer, whose interrupt ends the call with
 * SQLSTATE 55P03 rather than 57014: PL/Proxy then drops the connection
 * (at its next use) instead of sending a cancel, and _reraise() turns the
 * error into "shard did not answer" (08006).  The API functions take no
 * lock while the deadline is armed, so the timer is theirs; it is disarmed
 * when they return, when _reraise() runs, and when the (sub)transaction
 * that armed it aborts.
 * ---------------------------------------------------------------------
 */

#define DEFAULT_REMOTE_TIMEOUT_MS	5000

static bool deadline_armed = false;
static TimestampTz deadline_at = 0;
static SubTransactionId deadline_subid = InvalidSubTransactionId;
static bool deadline_callbacks = false;

/* remote_timeout_ms reads shorturl.remote_timeout (pg_shorturl defines it) */
static int
remote_timeout_ms(void)
{
	const char *value = GetConfigOption("shorturl.remote_timeout", true, false);
	int			ms;

	/* a placeholder holds the text of postgresql.conf; units parse alike */
	if (value == NULL || !parse_int(value, &ms, GUC_UNIT_MS, NULL) || ms <= 0)
		return DEFAULT_REMOTE_TIMEOUT_MS;
	return ms;
}

static void
deadline_disarm(void)
{
	if (deadline_armed)
		disable_timeout(LOCK_TIMEOUT, false);
	deadline_armed = false;
	deadline_at = 0;
}

static void
deadline_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		deadline_disarm();
}

static void
deadline_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid pg_attribute_unused(),
						  void *arg pg_attribute_unused())
{
	/* the exception blocks inside the API functions have later ids */
	if (event == SUBXACT_EVENT_ABORT_SUB && mySubid <= deadline_subid)
		deadline_disarm();
}

PG_FUNCTION_INFO_V1(shorturl_deadline_start);

/*
 * shorturl_deadline_start implements _deadline_start(): arm the deadline
 * of one API call.
 */
Datum
shorturl_deadline_start(PG_FUNCTION_ARGS)
{
	int			ms = remote_timeout_ms();

	if (!deadline_callbacks)
	{
		RegisterXactCallback(deadline_xact_callback, NULL);
		RegisterSubXactCallback(deadline_subxact_callback, NULL);
		deadline_callbacks = true;
	}
	deadline_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	deadline_subid = GetCurrentSubTransactionId();
	enable_timeout_after(LOCK_TIMEOUT, ms);
	deadline_armed = true;
	PG_RETURN_BOOL(true);
}

PG_FUNCTION_INFO_V1(shorturl_deadline_stop);

/*
 * shorturl_deadline_stop implements _deadline_stop(): disarm it.  (Both
 * return a boolean, so PL/pgSQL calls them as cheap assignments rather than
 * PERFORM statements.)
 */
Datum
shorturl_deadline_stop(PG_FUNCTION_ARGS)
{
	deadline_disarm();
	PG_RETURN_BOOL(true);
}

PG_FUNCTION_INFO_V1(shorturl_reraise);

/*
 * shorturl_reraise implements _reraise(sqlstate, message, detail, shard):
 * raise again an error a call to a shard failed with, classified by its
 * SQLSTATE.  PL/Proxy's own failures (internal errors), connection
 * failures (class 08) and a shard shutting down (57P01..57P03) become
 * "shard X is unavailable" (08006), a timeout "shard X did not answer"; an
 * error the shard raised keeps its SQLSTATE, message and detail (without
 * PL/Proxy's "Remote detail: "), with the shard named after the detail.
 */
Datum
shorturl_reraise(PG_FUNCTION_ARGS)
{
	const char *state = PG_ARGISNULL(0) ? "XX000" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *message = PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	const char *detail = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	const char *shard = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	bool		plproxy_failure = strcmp(state, "XX000") == 0 &&
		strstr(message, PLPROXY_REMOTE_TAG) == NULL;

	bool		deadline_passed = deadline_at != 0 && GetCurrentTimestamp() >= deadline_at;

	deadline_disarm();
	/* the shard's own detail, as a single server gives it (retry_after: ...) */
	if (detail != NULL && strncmp(detail, PLPROXY_DETAIL_TAG, strlen(PLPROXY_DETAIL_TAG)) == 0)
		detail += strlen(PLPROXY_DETAIL_TAG);
	if (detail != NULL && detail[0] == '\0')
		detail = NULL;

	/* raised by an inner call already, naming its shard: pass it on */
	if (strcmp(state, "08006") == 0 && strncmp(message, "shard \"", 7) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s", message),
				 detail ? errdetail("%s", detail) : 0,
				 errhint("Check that the shard's server is running and reachable; calls for codes on other shards go on.")));
	/* a call to every shard (shard NULL): which one failed is in the detail */
	if (shard == NULL)
	{
		if ((deadline_passed && strcmp(state, "55P03") == 0) || plproxy_failure ||
			strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("a shard is unavailable"),
					 errdetail("%s", remote_message(message)),
					 errhint("This call needs every shard; check that their servers are running and reachable.")));
		shard = "?";
	}

	/* the deadline's interrupt, or PL/Proxy's own timeouts */
	if ((deadline_passed && strcmp(state, "55P03") == 0) ||
		(plproxy_failure && strstr(message, "timeout") != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("shard \"%s\" did not answer within shorturl.remote_timeout (%d ms)",
						shard, remote_timeout_ms()),
				 errhint("Check that the shard's server is running and reachable; calls for codes on other shards go on.")));
	if (plproxy_failure || strncmp(state, "08", 2) == 0 ||
		strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
		strcmp(state, "57P03") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("shard \"%s\" is unavailable", shard),
				 errdetail("%s", remote_message(message)),
				 errhint("Check that the shard's server is running and reachable; calls for codes on other shards go on.")));
	ereport(ERROR,
			(errcode(sqlstate_of(state)),
			 errmsg("%s", remote_message(message)),
			 detail ? errdetail("%s (shard \"%s\")", detail, shard)
			 : errdetail("Raised by shard \"%s\".", shard)));
	PG_RETURN_VOID();
}
