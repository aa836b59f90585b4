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

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "clicks.h"
#include "compat.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "validate.h"

/* How a link stands, as link_status() says it */
typedef enum link_state
{
	LINK_UNKNOWN,
	LINK_ACTIVE,
	LINK_EXPIRED,
	LINK_EXHAUSTED,
	LINK_DISABLED
} link_state;

static const char *const state_names[] = {
	[LINK_UNKNOWN] = "unknown",
	[LINK_ACTIVE] = "active",
	[LINK_EXPIRED] = "expired",
	[LINK_EXHAUSTED] = "exhausted",
	[LINK_DISABLED] = "disabled",
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
 * domain; compared in lower case).  False if there is no such link.
 */
static bool
find(FunctionCallInfo fcinfo, bool want_url, link_row *row)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	const char *domain = "";
	int			domain_len = 0;

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
	return lookup_link(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code), domain, domain_len,
					   GetActiveSnapshot(), want_url, row) && row->found;
}

/* state_of tells how a found link stands, without counting a visit */
static link_state
state_of(const link_row *row, bool with_visits)
{
	if (!row->found)
		return LINK_UNKNOWN;
	if (row->disabled)
		return LINK_DISABLED;
	if (row->has_expiry && row->expires_at <= GetCurrentTimestamp())
		return LINK_EXPIRED;
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
	if (clicks_count(row.id, row.has_max, row.max_visits) != CLICK_COUNTED)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(row.url);
}

PG_FUNCTION_INFO_V1(shorturl_link_status);

/*
 * shorturl_link_status implements link_status(code) RETURNS text: active,
 * expired, exhausted, disabled or unknown, without counting a visit.
 */
Datum
shorturl_link_status(PG_FUNCTION_ARGS)
{
	link_row	row;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	(void) find(fcinfo, false, &row);
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
	PG_RETURN_INT64(clicks_live_visits(row.id));
}
