/*-------------------------------------------------------------------------
 *
 * shorten.c
 *	  shorten(): storing a link, with a generated code or an alias.
 *
 * A link's id is the next value of shorturl.link_id_seq.  A generated code
 * is the id's place in the code space (codes.c), so codes are never issued
 * twice, consecutive links get unrelated codes, and no retry loop against
 * random collisions is needed: only an alias that happens to equal a
 * generated code costs another id.  An alias takes an id too, so every
 * link has an identity no other link ever shares (the counters are keyed
 * by it).
 *
 * A code that was ever issued is never issued again:
 *	- generated codes come from a sequence through a bijection, and an
 *	  alias that is the code of an id the sequence already handed out is
 *	  refused;
 *	- an alias of a deleted link is retired for good (a trigger on
 *	  shorturl.links puts it in shorturl.retired_codes, for DELETE and
 *	  TRUNCATE alike).
 *
 * shorten() runs as SECURITY DEFINER with a pinned search_path (see the
 * extension script), so its SQL may use plain operators; it still names
 * every table with its schema.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base62_sql.h"
#include "blocklist.h"
#include "clicks.h"
#include "catalog.h"
#include "codes.h"
#include "compat.h"
#include "lookup.h"
#include "pg_shorturl.h"
#include "routing.h"
#include "spi_util.h"
#include "ratelimit.h"
#include "url_check.h"
#include "validate.h"

/*
 * How many ids shorten() tries before giving up.  A generated code is only
 * taken when an alias equals it, which is rare in a sparse code space; ten
 * in a row mean the space is nearly full or the sequence was set back.
 */
#define MAX_CODE_ATTEMPTS	10

/*
 * reuse => true looks at this many of the newest links with the same URL,
 * so a URL shortened a million times costs no more than one shortened once.
 */
#define REUSE_CANDIDATES	50

static SPIPlanPtr plan_insert_alias;
static SPIPlanPtr plan_insert_generated;
static SPIPlanPtr plan_insert_alias_meta;
static SPIPlanPtr plan_insert_generated_meta;
static SPIPlanPtr plan_retired;
static SPIPlanPtr plan_reserved;
static SPIPlanPtr plan_domain;

/* The limits of a new link, as SPI arguments */
typedef struct link_limits
{
	Datum		expires_at;
	Datum		max_visits;
	char		expires_null;	/* 'n' or ' ' */
	char		max_null;
} link_limits;

/* Who a new link belongs to, and how it is listed (NULL for none) */
typedef struct link_meta
{
	text	   *owner;
	text	   *title;
	ArrayType  *tags;
} link_meta;

static const link_meta no_meta = {NULL, NULL, NULL};

/* check_alias reports a malformed, reserved or retired alias (inside SPI) */
static void
check_alias(text *alias, text *domain, bool check_issued)
{
	const char *s = VARDATA_ANY(alias);
	int			len = VARSIZE_ANY_EXHDR(alias);
	size_t		bad = 0;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {PointerGetDatum(alias), PointerGetDatum(domain)};
	int64		id;
	int64		last;

	switch (validate_alias(s, (size_t) len, &bad))
	{
		case ALIAS_OK:
			break;
		case ALIAS_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("alias must not be empty")));
			break;
		case ALIAS_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("alias is too long: %d characters, the maximum is %d",
							pg_mbstrlen_with_len(s, len), ALIAS_MAX_LENGTH)));
			break;
		case ALIAS_BAD_CHAR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid character \"%s\" at position %d of alias",
							shorturl_describe_char(s + bad, len - (int) bad),
							pg_mbstrlen_with_len(s, (int) bad) + 1),
					 errhint("Aliases use only A-Z, a-z, 0-9, \"_\" and \"-\".")));
			break;
	}

	spi_run(spi_plan(&plan_reserved,
					 "SELECT 1 FROM shorturl.reserved_aliases"
					 " WHERE pg_catalog.lower(alias) = pg_catalog.lower($1 COLLATE \"C\")",
					 1, argtypes),
			values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("alias \"%s\" is reserved", text_to_cstring(alias)),
				 errdetail("Reserved words are listed in shorturl.reserved_aliases, compared without regard to case.")));

	spi_run(spi_plan(&plan_retired,
					 "SELECT 1 FROM shorturl.retired_codes WHERE code = $1 AND domain = $2",
					 2, argtypes),
			values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("alias \"%s\" is retired", text_to_cstring(alias)),
				 errdetail("A link with this alias was deleted; a code is never handed out twice, so a printed old link cannot land on a new page."),
				 errhint("Choose another alias.")));

	/* the code of an id already handed out: taken, even if its link is gone */
	if (check_issued && codes_decode(s, len, &id) && codes_last_issued(&last) && id <= last)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("alias \"%s\" is already taken", text_to_cstring(alias)),
				 errdetail("It is a generated code that was handed out before; a code is never handed out twice."),
				 errhint("Choose another alias, or omit it to get a generated code.")));
}

/*
 * check_domain returns the domain a link goes on (inside SPI): '' for the
 * default one (NULL or ''), else the name in lower case, which must be a
 * row of shorturl.domains.
 */
static text *
check_domain(text *domain)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *name;
	int			len;

	if (domain == NULL || VARSIZE_ANY_EXHDR(domain) == 0)
		return cstring_to_text("");
	len = VARSIZE_ANY_EXHDR(domain);
	name = pnstrdup(VARDATA_ANY(domain), len);
	for (int i = 0; i < len; i++)
		name[i] = pg_ascii_tolower((unsigned char) name[i]);
	domain = cstring_to_text_with_len(name, len);
	values[0] = PointerGetDatum(domain);
	spi_run(spi_plan(&plan_domain,
					 "SELECT 1 FROM shorturl.domains WHERE domain = $1",
					 1, argtypes),
			values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown domain \"%s\"", shorturl_clip_for_message(name, len)),
				 errhint("The domains links may go on are the rows of shorturl.domains.")));
	return domain;
}

/*
 * lock_url serialises shorten(reuse => true) calls for the same URL, so two
 * of them at once cannot both miss each other and create two links.  The
 * lock is an advisory lock in pg_shorturl's own class, held to the end of
 * the transaction.
 */
static void
lock_url(uint64 url_hash)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (url_hash >> 32),
						 (uint32) url_hash, SHORTURL_LOCK_REUSE);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/* same_text tells whether two texts hold the same bytes */
static bool
same_text(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/*
 * find_reusable returns the code of an active link with this URL, domain,
 * limits and owner among the newest REUSE_CANDIDATES links with the URL's hash,
 * or NULL.  With an alias, only that alias can be reused.  The lookup takes
 * a new snapshot, so it sees links made earlier in this statement and,
 * under READ COMMITTED, those a concurrent shorten() committed while we
 * waited for the URL's lock.  It walks the index on (url_hash, id) from
 * the newest entry and stops after REUSE_CANDIDATES, so a URL shortened a
 * million times costs what one shortened once costs.
 */
static text *
find_reusable(text *url, uint64 url_hash, text *domain, const link_limits *limits,
			  text *alias, text *owner)
{
	link_candidate cand[REUSE_CANDIDATES];
	Snapshot	snapshot;
	int			n;
	TimestampTz now = GetCurrentTimestamp();
	text	   *found = NULL;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	n = lookup_newest_by_url_hash((int64) url_hash, snapshot, REUSE_CANDIDATES, cand);
	UnregisterSnapshot(snapshot);

	/* the oldest matching one, so repeated calls agree */
	for (int i = n - 1; i >= 0 && found == NULL; i--)
	{
		link_candidate *c = &cand[i];
		link_row   *r = &c->row;

		if (!same_text(r->url, url) || !same_text(c->domain, domain))
			continue;
		if ((c->owner == NULL) != (owner == NULL) ||
			(owner != NULL && !same_text(c->owner, owner)))
			continue;
		if (r->has_expiry != (limits->expires_null == ' ') ||
			(r->has_expiry && r->expires_at != DatumGetTimestampTz(limits->expires_at)) ||
			r->has_max != (limits->max_null == ' ') ||
			(r->has_max && r->max_visits != DatumGetInt64(limits->max_visits)))
			continue;
		if (alias ? !same_text(c->code, alias) : c->is_alias)
			continue;
		if (r->disabled || c->exhausted || (r->has_expiry && r->expires_at <= now))
			continue;
		/* a limited link must have visits left, counting unflushed ones */
		if (r->has_max && clicks_live_visits(r->id) >= r->max_visits)
			continue;
		found = c->code;
	}
	return found;
}

/*
 * next_id is nextval of the code sequence, called directly rather than
 * through a query (that cost a shorten() about 5% of its time).  The
 * function runs as the sequence's owner, and nextval_internal checks the
 * privilege all the same.
 */
static int64
next_id(void)
{
	return nextval_internal(catalog_tables()->link_id_seq, true);
}

/*
 * insert_link inserts one link; false if its code is taken (for a
 * generated code: on any domain, or retired: an alias that equalled a
 * future code and was deleted).  The owner, title and tags go in where
 * the table has them (0.7 on; the library also runs on 0.6 tables until
 * ALTER EXTENSION UPDATE, and 0.6's shorten() passes none).
 */
static bool
insert_link(int64 id, text *code, text *domain, text *url,
			const link_limits *limits, bool is_alias, const link_meta *meta)
{
	Oid			argtypes[9] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID,
	TEXTOID, TEXTOID, TEXTARRAYOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', limits->expires_null, limits->max_null,
	meta->owner ? ' ' : 'n', meta->title ? ' ' : 'n', meta->tags ? ' ' : 'n'};
	bool		with_meta = catalog_tables()->links_att[LINKS_OWNER] != InvalidAttrNumber;

	values[0] = Int64GetDatum(id);
	values[1] = PointerGetDatum(code);
	values[2] = PointerGetDatum(domain);
	values[3] = PointerGetDatum(url);
	values[4] = limits->expires_at;
	values[5] = limits->max_visits;
	values[6] = PointerGetDatum(meta->owner);
	values[7] = PointerGetDatum(meta->title);
	values[8] = PointerGetDatum(meta->tags);

	if (is_alias && with_meta)
		spi_run(spi_plan(&plan_insert_alias_meta,
						 "INSERT INTO shorturl.links (id, code, domain, url, expires_at, max_visits, is_alias,"
						 "                            owner, title, tags)"
						 " VALUES ($1, $2, $3, $4, $5, $6, true, $7, $8, $9)"
						 " ON CONFLICT (code, domain) DO NOTHING",
						 9, argtypes),
				values, nulls, false, SPI_OK_INSERT);
	else if (is_alias)
		spi_run(spi_plan(&plan_insert_alias,
						 "INSERT INTO shorturl.links (id, code, domain, url, expires_at, max_visits, is_alias)"
						 " VALUES ($1, $2, $3, $4, $5, $6, true)"
						 " ON CONFLICT (code, domain) DO NOTHING",
						 6, argtypes),
				values, nulls, false, SPI_OK_INSERT);
	else if (with_meta)
		spi_run(spi_plan(&plan_insert_generated_meta,
						 "INSERT INTO shorturl.links (id, code, domain, url, expires_at, max_visits, is_alias,"
						 "                            owner, title, tags)"
						 " SELECT $1, $2, $3, $4, $5, $6, false, $7, $8, $9"
						 "  WHERE NOT EXISTS (SELECT FROM shorturl.links WHERE code = $2)"
						 "    AND NOT EXISTS (SELECT FROM shorturl.retired_codes WHERE code = $2)"
						 " ON CONFLICT (code, domain) DO NOTHING",
						 9, argtypes),
				values, nulls, false, SPI_OK_INSERT);
	else
		spi_run(spi_plan(&plan_insert_generated,
						 "INSERT INTO shorturl.links (id, code, domain, url, expires_at, max_visits, is_alias)"
						 " SELECT $1, $2, $3, $4, $5, $6, false"
						 "  WHERE NOT EXISTS (SELECT FROM shorturl.links WHERE code = $2)"
						 "    AND NOT EXISTS (SELECT FROM shorturl.retired_codes WHERE code = $2)"
						 " ON CONFLICT (code, domain) DO NOTHING",
						 6, argtypes),
				values, nulls, false, SPI_OK_INSERT);
	return SPI_processed == 1;
}

/*
 * check_limits validates expires_at and max_visits (arguments exp_arg and
 * exp_arg + 1) into SPI arguments
 */
static link_limits
check_limits(FunctionCallInfo fcinfo, int exp_arg)
{
	link_limits limits = {0, 0, 'n', 'n'};

	if (!PG_ARGISNULL(exp_arg))
	{
		TimestampTz expires_at = PG_GETARG_TIMESTAMPTZ(exp_arg);
		TimestampTz now = GetCurrentTimestamp();

		/* expiry is a fact of the clock, not of the transaction's start */
		if (expires_at <= now)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expires_at must be in the future"),
					 errdetail("It is %s; the time is now %s.",
							   pstrdup(timestamptz_to_str(expires_at)),
							   pstrdup(timestamptz_to_str(now)))));
		limits.expires_at = TimestampTzGetDatum(expires_at);
		limits.expires_null = ' ';
	}
	if (!PG_ARGISNULL(exp_arg + 1))
	{
		int64		max_visits = PG_GETARG_INT64(exp_arg + 1);

		if (max_visits < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_visits must be at least 1, not " INT64_FORMAT,
							max_visits)));
		limits.max_visits = Int64GetDatum(max_visits);
		limits.max_null = ' ';
	}
	return limits;
}

PG_FUNCTION_INFO_V1(shorturl_shorten);

/*
 * shorturl_shorten implements shorten(url, expires_at, max_visits, alias,
 * reuse, owner, title, tags, domain) RETURNS text.  Not STRICT: every
 * argument but url may be NULL.  (0.6 declared it with the first five
 * only.)
 */
Datum
shorturl_shorten(PG_FUNCTION_ARGS)
{
	text	   *url;
	text	   *alias = PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3);
	bool		reuse = PG_ARGISNULL(4) ? false : PG_GETARG_BOOL(4);
	text	   *domain = NULL;
	link_limits limits;
	link_meta	meta = no_meta;
	uint64		url_hash;
	text	   *code = NULL;
	text	   *result;
	int64		id;
	bool		made;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("url must not be null")));
	/* the tables this library writes: 55000 before an update, not worse */
	(void) catalog_tables();
	url = url_check(PG_GETARG_TEXT_PP(0), shorturl_max_url_length, shorturl_allow_userinfo);
	blocklist_check_url(url);
	limits = check_limits(fcinfo, 1);
	if (PG_NARGS() >= 8)
	{
		meta.owner = PG_ARGISNULL(5) ? NULL : PG_GETARG_TEXT_PP(5);
		meta.title = PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6);
		meta.tags = meta_check(meta.owner, meta.title,
							   PG_ARGISNULL(7) ? NULL : PG_GETARG_ARRAYTYPE_P(7));
	}
	if (PG_NARGS() >= 9 && !PG_ARGISNULL(8))
		domain = PG_GETARG_TEXT_PP(8);
	url_hash = route_hash64(VARDATA_ANY(url), VARSIZE_ANY_EXHDR(url));

	/* no width change while this transaction hands out ids */
	codes_lock_space();
	spi_begin();
	domain = check_domain(domain);
	if (alias)
		check_alias(alias, domain, true);

	if (reuse)
	{
		lock_url(url_hash);
		code = find_reusable(url, url_hash, domain, &limits, alias, meta.owner);
	}
	/* a new link takes one from its owner's quota once made; a reused one does not */
	made = (code == NULL);

	if (code == NULL && alias)
	{
		if (!insert_link(next_id(), alias, domain, url, &limits, true, &meta))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("alias \"%s\" is already taken", text_to_cstring(alias)),
					 errhint("Choose another alias, or omit it to get a generated code.")));
		code = alias;
	}
	else if (code == NULL)
	{
		const codespace *cs = codes_space(true);

		for (int attempt = 0; attempt < MAX_CODE_ATTEMPTS && code == NULL; attempt++)
		{
			text	   *candidate;

			id = next_id();
			candidate = codes_encode(cs, id);
			if (insert_link(id, candidate, domain, url, &limits, false, &meta))
				code = candidate;
		}
		if (code == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("could not find a free code in %d attempts",
							MAX_CODE_ATTEMPTS),
					 errdetail("Every generated code tried was already taken."),
					 errhint("If shorturl.link_id_seq was set back, set it past the highest id in shorturl.links; otherwise the code space is nearly full, and shorturl.set_code_width() can widen it.")));
	}

	/*
	 * Taken last, so that a call refused for anything else takes nothing; a
	 * refusal here undoes the link with the statement.
	 */
	if (made && meta.owner != NULL)
	{
		char	   *owner = text_to_cstring(meta.owner);

		ratelimit_check_quota(owner, strlen(owner));
	}

	/* copy the code out of SPI memory before SPI_finish frees it */
	result = (text *) DatumGetPointer(SPI_datumTransfer(PointerGetDatum(code), false, -1));
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/* ---------------------------------------------------------------------
 * The shard side of a coordinator's shorten()
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(shorturl_store_link);
PG_FUNCTION_INFO_V1(shorturl_reusable_code);

/* text_arg is argument i as text, or def when NULL or absent */
static text *
text_arg(FunctionCallInfo fcinfo, int i, const char *def)
{
	if (PG_NARGS() > i && !PG_ARGISNULL(i))
		return PG_GETARG_TEXT_PP(i);
	return def ? cstring_to_text(def) : NULL;
}

/*
 * shorturl_store_link implements store_link(id, code, url, expires_at,
 * max_visits, is_alias, domain [, owner, title, tags]) RETURNS boolean: a
 * coordinator, which hands out ids and codes, stores a link on the shard
 * its key routes to.  The shard checks what it can (the URL, the limits,
 * the owner, title and tags, a reserved or retired alias, a code taken on
 * any domain); the coordinator has checked the domain, and that an alias
 * is no code it issued.  False if the code is taken.  (The seven-argument
 * form is a 0.6 coordinator's.)
 */
Datum
shorturl_store_link(PG_FUNCTION_ARGS)
{
	int64		id;
	text	   *code;
	text	   *url;
	bool		is_alias;
	text	   *domain = text_arg(fcinfo, 6, "");
	link_limits limits;
	link_meta	meta = no_meta;
	bool		stored;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id, code, url and is_alias must not be null")));
	(void) catalog_tables();
	id = PG_GETARG_INT64(0);
	code = PG_GETARG_TEXT_PP(1);
	is_alias = PG_GETARG_BOOL(5);
	url = url_check(PG_GETARG_TEXT_PP(2), shorturl_max_url_length, shorturl_allow_userinfo);
	blocklist_check_url(url);
	limits = check_limits(fcinfo, 3);
	if (PG_NARGS() >= 10)
	{
		meta.owner = PG_ARGISNULL(7) ? NULL : PG_GETARG_TEXT_PP(7);
		meta.title = PG_ARGISNULL(8) ? NULL : PG_GETARG_TEXT_PP(8);
		meta.tags = meta_check(meta.owner, meta.title,
							   PG_ARGISNULL(9) ? NULL : PG_GETARG_ARRAYTYPE_P(9));
	}
	spi_begin();
	if (is_alias)
		check_alias(code, domain, false);
	stored = insert_link(id, code, domain, url, &limits, is_alias, &meta);
	SPI_finish();
	PG_RETURN_BOOL(stored);
}

/*
 * shorturl_reusable_code implements reusable_code(url, expires_at,
 * max_visits, alias, domain [, owner]) RETURNS text: the code
 * shorten(reuse => true) would hand out again on this shard, or NULL.  A
 * coordinator asks every shard, since links live where their codes route,
 * not their URLs.
 */
Datum
shorturl_reusable_code(PG_FUNCTION_ARGS)
{
	text	   *url;
	text	   *alias = text_arg(fcinfo, 3, NULL);
	text	   *domain = text_arg(fcinfo, 4, "");
	link_limits limits = {0, 0, 'n', 'n'};
	uint64		url_hash;
	text	   *code;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	url = url_check(PG_GETARG_TEXT_PP(0), shorturl_max_url_length, shorturl_allow_userinfo);
	/* a blocked URL is refused, not handed out again (a coordinator asks first) */
	blocklist_check_url(url);
	if (!PG_ARGISNULL(1))
	{
		limits.expires_at = PG_GETARG_DATUM(1);
		limits.expires_null = ' ';
	}
	if (!PG_ARGISNULL(2))
	{
		limits.max_visits = PG_GETARG_DATUM(2);
		limits.max_null = ' ';
	}
	url_hash = route_hash64(VARDATA_ANY(url), VARSIZE_ANY_EXHDR(url));
	code = find_reusable(url, url_hash, domain, &limits, alias,
						 PG_NARGS() >= 6 && !PG_ARGISNULL(5) ? PG_GETARG_TEXT_PP(5) : NULL);
	if (code == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(code);
}

/* ---------------------------------------------------------------------
 * Importing links
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(shorturl_check_alias);

/*
 * shorturl_check_alias implements _check_alias(alias text, domain text)
 * RETURNS void, for import_links(): the error shorten() would raise for
 * this alias before trying to insert it (malformed, reserved, retired, or
 * the code of an id already handed out), or nothing.  Whether it is taken
 * is the caller's to find out.
 */
Datum
shorturl_check_alias(PG_FUNCTION_ARGS)
{
	(void) catalog_tables();
	spi_begin();
	check_alias(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), true);
	SPI_finish();
	PG_RETURN_VOID();
}
