/*-------------------------------------------------------------------------
 *
 * resolve.c
 *	  resolve(), link_status() and visits(): answering for a code.
 *
 * Each reads the link through its index on (code, domain) with one probe
 * (lookup.c) and counts or reads clicks through clicks.c.  None of them is
 * SECURITY DEFINER: what they do on every call needs no privilege (EXECUTE
 * is the gate), and their rare SQL runs as the tables' owner (catalog.c).
 * Anything that cannot be a code, or names nothing, gives NULL or
 * "unknown", never an error: these are the functions a redirect service
 * calls with whatever a visitor typed.
 *
 * Expiry is a fact of the clock: a link whose expires_at has passed is
 * refused even inside a transaction that started before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "blocklist.h"
#include "catalog.h"
#include "claim.h"
#include "clicks.h"
#include "compat.h"
#include "flush.h"
#include "hll.h"
#include "lookup.h"
#include "dbstate.h"
#include "pg_shorturl.h"
#include "ratelimit.h"
#include "urlcache.h"
#include "validate.h"
#include "visitdims.h"

/* How a link stands, as link_status() says it */
typedef enum link_state
{
	LINK_UNKNOWN,
	LINK_ACTIVE,
	LINK_EXPIRED,
	LINK_EXHAUSTED,
	LINK_DISABLED,
	LINK_BLOCKED,
	LINK_UNREACHABLE
} link_state;

static const char *const state_names[] = {
	[LINK_UNKNOWN] = "unknown",
	[LINK_ACTIVE] = "active",
	[LINK_EXPIRED] = "expired",
	[LINK_EXHAUSTED] = "exhausted",
	[LINK_DISABLED] = "disabled",
	[LINK_BLOCKED] = "blocked",
	[LINK_UNREACHABLE] = "unreachable",
};

/*
 * plausible_code tells whether a string could be a code or an alias at all:
 * 1..64 characters of [A-Za-z0-9_-].  Anything else is answered without
 * touching the table.
 */
static bool
plausible_code(text *code)
{
	int			len = VARSIZE_ANY_EXHDR(code);

	return len >= 1 && len <= ALIAS_MAX_LENGTH &&
		code_chars_ok(VARDATA_ANY(code), (size_t) len);
}

/*
 * find reads the link a call names: the code in argument 0, on the domain
 * in argument 1 where the function has one (NULL, '' or absent: the default
 * domain; compared in lower case).  False if there is no such link.  The
 * URL cache answers first (urlcache.c); a link read from the table goes
 * into it if it may (only with its URL: visits() reads none).
 */
static bool
find(FunctionCallInfo fcinfo, bool want_url, link_row *row)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	const char *domain = "";
	int			domain_len = 0;
	Relation	heap;
	urlcache_probe probe;
	bool		newest;

	memset(row, 0, sizeof(*row));
	if (!plausible_code(code))
		return false;
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
	{
		text	   *d = PG_GETARG_TEXT_PP(1);
		char	   *lower;

		/* domains are stored in lower case; a Host header may be in any */
		domain_len = VARSIZE_ANY_EXHDR(d);
		lower = palloc(domain_len + 1);
		for (int i = 0; i < domain_len; i++)
			lower[i] = pg_ascii_tolower((unsigned char) VARDATA_ANY(d)[i]);
		lower[domain_len] = '\0';
		domain = lower;
	}
	/* the lock stays to the end of the transaction, hit or miss */
	if (catalog_lock_links(&heap) == NULL)
		return false;
	if (urlcache_get(heap, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code), domain, domain_len,
					 want_url, row, &probe))
	{
		table_close(heap, NoLock);
		return true;
	}
	if (!lookup_link(heap, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code), domain, domain_len,
					 GetActiveSnapshot(), want_url, row, &newest) || !row->found)
		return false;
	if (newest && want_url)
		urlcache_fill(&probe, VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code), domain, domain_len, row);
	return true;
}

/*
 * remote_state is how a limited link stands on the primary, for a standby
 * (claim.c), or that the primary did not answer.
 */
static link_state
remote_state(claim_answer answer)
{
	switch (answer)
	{
		case CLAIM_ACTIVE:
			return LINK_ACTIVE;
		case CLAIM_EXHAUSTED:
			return LINK_EXHAUSTED;
		case CLAIM_EXPIRED:
			return LINK_EXPIRED;
		case CLAIM_DISABLED:
			return LINK_DISABLED;
		case CLAIM_UNKNOWN:
			return LINK_UNKNOWN;
		case CLAIM_REFUSED:
			return LINK_ACTIVE;
		case CLAIM_UNREACHABLE:
			break;
	}
	return LINK_UNREACHABLE;
}

/*
 * state_of tells how a found link stands, without counting a visit: the
 * row must have its URL, for the blocklist.  A blocked link is counted in
 * shorturl.stats.
 */
static link_state
state_of(const link_row *row, bool with_visits)
{
	if (!row->found)
		return LINK_UNKNOWN;
	if (row->disabled)
		return LINK_DISABLED;
	if (blocklist_blocks_url(row->url))
	{
		db_state   *db = clicks_stats_slot();

		if (db != NULL)
			pg_atomic_fetch_add_u64(&db->host_lookups_blocked, 1);
		return LINK_BLOCKED;
	}
	if (row->has_expiry && row->expires_at <= GetCurrentTimestamp())
		return LINK_EXPIRED;
	if (with_visits && row->has_max && clicks_mode() == CLICKS_STANDBY)
		return remote_state(claim_visit(row->id, false, false));
	if (with_visits && row->has_max && clicks_live_visits(row->id) >= row->max_visits)
		return LINK_EXHAUSTED;
	return LINK_ACTIVE;
}

PG_FUNCTION_INFO_V1(shorturl_resolve);

/*
 * shorturl_resolve implements resolve(code) RETURNS text: the URL of an
 * active link, counting one visit, or NULL for anything else.
 */
Datum
shorturl_resolve(PG_FUNCTION_ARGS)
{
	link_row	row;

	/* the two-argument forms are not STRICT: a NULL domain is the default */
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	if (!find(fcinfo, true, &row) || state_of(&row, false) != LINK_ACTIVE)
		PG_RETURN_NULL();
	/* the visit limit is checked where the click is counted */
	if (clicks_count(row.id, row.has_max, row.max_visits, false) != CLICK_COUNTED)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(row.url);
}

/*
 * Arguments of resolve(code, domain, referrer, country, user_agent,
 * visitor, client); 0.8 defines it without the client
 */
#define ARG_REFERRER	2
#define ARG_COUNTRY		3
#define ARG_USER_AGENT	4
#define ARG_VISITOR		5
#define ARG_CLIENT		6

/* link_status(code, domain, client) */
#define STATUS_ARG_CLIENT	2

/* client_arg returns argument i, the caller's client, or NULL for none */
static text *
client_arg(FunctionCallInfo fcinfo, int i)
{
	return PG_NARGS() > i && !PG_ARGISNULL(i) ? PG_GETARG_TEXT_PP(i) : NULL;
}

/* client_blocked tells whether a client is blocked for scanning */
static bool
client_blocked(text *client)
{
	return client != NULL &&
		ratelimit_client_blocked(VARDATA_ANY(client), VARSIZE_ANY_EXHDR(client));
}

/* client_missed counts a lookup of an unknown code against its client */
static void
client_missed(text *client)
{
	if (client != NULL)
		ratelimit_client_missed(VARDATA_ANY(client), VARSIZE_ANY_EXHDR(client));
}

/*
 * visit_facts reads what the caller knows of a visit into dimension values
 * (see analytics.c): the referrer's host ("direct" without one, "other"
 * for one that names no host), the country ("unknown" without one), the
 * device class ("unknown" without a user agent).  A host longer than a
 * dimension value may be counts as "other".  False when the caller
 * passed none of the four: such a click has no analytics beyond its hour.
 * A country that is not two letters is an error: it comes from the
 * application's GeoIP lookup, not from the visitor.
 */
static bool
visit_facts(FunctionCallInfo fcinfo, const char *values[ANALYTICS_DIMS],
			bool *has_visitor, uint64 *visitor_hash, bool *bot)
{
	static char referrer[VISIT_HOST_BUFSIZE];
	static char country[3];
	bool		any = false;

	for (int a = ARG_REFERRER; a <= ARG_VISITOR; a++)
		any |= !PG_ARGISNULL(a);
	*has_visitor = false;
	*bot = false;
	if (!any)
		return false;

	values[DIM_REFERRER] = VISIT_REFERRER_DIRECT_VALUE;
	if (!PG_ARGISNULL(ARG_REFERRER))
	{
		text	   *r = PG_GETARG_TEXT_PP(ARG_REFERRER);
		size_t		len;

		(void) visit_referrer_host(VARDATA_ANY(r), VARSIZE_ANY_EXHDR(r), referrer, &len);
		values[DIM_REFERRER] = len < ANALYTICS_VALUE_SIZE ? referrer : ANALYTICS_OTHER;
	}
	values[DIM_COUNTRY] = "unknown";
	if (!PG_ARGISNULL(ARG_COUNTRY))
	{
		text	   *c = PG_GETARG_TEXT_PP(ARG_COUNTRY);

		if (!visit_country_code(VARDATA_ANY(c), VARSIZE_ANY_EXHDR(c), country))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid country code \"%s\"",
							text_to_cstring(DatumGetTextPP(DirectFunctionCall3(text_substr,
																			   PointerGetDatum(c),
																			   Int32GetDatum(1),
																			   Int32GetDatum(16))))),
					 errhint("A country is an ISO 3166-1 alpha-2 code, two letters such as \"DE\", or NULL.")));
		values[DIM_COUNTRY] = country;
	}
	values[DIM_DEVICE] = "unknown";
	if (!PG_ARGISNULL(ARG_USER_AGENT))
	{
		text	   *ua = PG_GETARG_TEXT_PP(ARG_USER_AGENT);
		visit_device d = visit_device_class(VARDATA_ANY(ua), VARSIZE_ANY_EXHDR(ua));

		values[DIM_DEVICE] = visit_device_name(d);
		*bot = (d == DEVICE_BOT);
	}
	if (!PG_ARGISNULL(ARG_VISITOR))
	{
		text	   *v = PG_GETARG_TEXT_PP(ARG_VISITOR);

		*has_visitor = true;
		*visitor_hash = hll_hash(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	}
	return true;
}

PG_FUNCTION_INFO_V1(shorturl_resolve_visit);

/*
 * shorturl_resolve_visit implements resolve(code text, domain text,
 * referrer text DEFAULT NULL, country text DEFAULT NULL, user_agent text
 * DEFAULT NULL, visitor text DEFAULT NULL, client text DEFAULT NULL)
 * RETURNS text: resolve() that also keeps what the caller knows of the
 * visit for the link's analytics, and guards against a client scanning
 * for codes (ratelimit.c): a blocked client gets NULL for every code.
 * A bot's click counts in the link's visits like any other.
 */
Datum
shorturl_resolve_visit(PG_FUNCTION_ARGS)
{
	link_row	row;
	const char *values[ANALYTICS_DIMS];
	bool		has_visitor;
	uint64		visitor_hash = 0;
	bool		bot;
	bool		facts;
	text	   *client = client_arg(fcinfo, ARG_CLIENT);

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	/* the arguments are checked whether or not the code names a link */
	facts = visit_facts(fcinfo, values, &has_visitor, &visitor_hash, &bot);
	if (client_blocked(client))
		PG_RETURN_NULL();
	if (!find(fcinfo, true, &row))
	{
		client_missed(client);
		PG_RETURN_NULL();
	}
	if (state_of(&row, false) != LINK_ACTIVE)
		PG_RETURN_NULL();
	if (clicks_count(row.id, row.has_max, row.max_visits, bot) != CLICK_COUNTED)
		PG_RETURN_NULL();
	/* (a standby ships them with its clicks, ship.c) */
	if (facts && (clicks_mode() == CLICKS_SHARED || clicks_mode() == CLICKS_STANDBY))
		analytics_record(row.id, GetCurrentStatementStartTimestamp(), values,
						 has_visitor, visitor_hash, bot);
	PG_RETURN_TEXT_P(row.url);
}

PG_FUNCTION_INFO_V1(shorturl_link_status);

/*
 * shorturl_link_status implements link_status(code [, domain [, client]])
 * RETURNS text: active, expired, exhausted, disabled, blocked or unknown,
 * without counting a visit.  On a standby, a link with max_visits stands
 * as the primary says, or is unreachable when it does not answer.  A client blocked for scanning gets unknown
 * for every code, and an unknown code counts against its client.
 */
Datum
shorturl_link_status(PG_FUNCTION_ARGS)
{
	link_row	row;
	text	   *client = client_arg(fcinfo, STATUS_ARG_CLIENT);

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	if (client_blocked(client))
		PG_RETURN_TEXT_P(cstring_to_text(state_names[LINK_UNKNOWN]));
	if (!find(fcinfo, true, &row))
		client_missed(client);
	PG_RETURN_TEXT_P(cstring_to_text(state_names[state_of(&row, true)]));
}

PG_FUNCTION_INFO_V1(shorturl_visits);

/*
 * shorturl_visits implements visits(code) RETURNS bigint: the live count of
 * visits, including those not yet flushed, or NULL for an unknown code.
 */
Datum
shorturl_visits(PG_FUNCTION_ARGS)
{
	link_row	row;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	if (!find(fcinfo, false, &row))
		PG_RETURN_NULL();
	/* in a transaction that reset the link: the clicks made since */
	if (flush_reset_here(row.id))
		PG_RETURN_INT64(clicks_pending(row.id));
	PG_RETURN_INT64(clicks_live_visits(row.id));
}
