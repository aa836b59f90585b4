/*-------------------------------------------------------------------------
 *
 * blocklist.c
 *	  Hosts links may not point at: the patterns of shorturl.blocked_hosts
 *	  (a pattern blocks its host and every subdomain), and the deployment's
 *	  own short domains (shorturl.domains), so that a short link never
 *	  points at another short link.
 *
 * shorten() and update_link() refuse such a URL.  resolve() and
 * link_status() check the link's host against the patterns on every call,
 * so a pattern added later also takes down the links made before it.  To
 * keep that cheap, each backend caches both tables as hash sets
 * (config_cache.c): a statement trigger on each table queues a relcache
 * invalidation, so a committed change is seen by the next statement of
 * every session.  A host of n labels then costs at most n hash probes,
 * however many patterns there are, and nothing at all while the list is
 * empty.
 *
 * A database whose extension predates the tables (0.8 before ALTER
 * EXTENSION UPDATE) simply has no patterns.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "blocklist.h"
#include "catalog.h"
#include "config_cache.h"
#include "pg_shorturl.h"
#include "validate.h"

/* A host name is at most 253 bytes (RFC 1035), as a key with its NUL */
#define HOST_KEY_SIZE		256

typedef struct host_entry
{
	char		host[HOST_KEY_SIZE];	/* the hash key: first */
	char	   *reason;			/* NULL for none */
} host_entry;

/* One cached table of hosts */
typedef struct host_set
{
	const char *relname;
	const char *host_column;
	const char *reason_column;	/* NULL: the table has none */
	config_cache cache;
	MemoryContext cxt;
	HTAB	   *hosts;
	long		count;
} host_set;

static host_set blocked = {.relname = "blocked_hosts", .host_column = "pattern", .reason_column = "reason"};
static host_set own = {.relname = "domains", .host_column = "domain"};

/* blocklist_callback marks either set stale when its table changes */
static void
blocklist_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	config_cache_invalidate(&blocked.cache, relid);
	config_cache_invalidate(&own.cache, relid);
}

/* blocklist_init registers the caches' relcache callback; from _PG_init */
void
blocklist_init(void)
{
	CacheRegisterRelcacheCallback(blocklist_callback, (Datum) 0);
}

/* load reads a table of hosts into its set */
static void
load(host_set *set)
{
	Oid			nsp = get_namespace_oid(SHORTURL_SCHEMA, true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(set->relname, nsp) : InvalidOid;
	HASHCTL		info;
	Relation	rel;
	TupleDesc	desc;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tuple;
	AttrNumber	att_host;
	AttrNumber	att_reason = InvalidAttrNumber;

	if (set->cxt == NULL)
		set->cxt = AllocSetContextCreate(CacheMemoryContext, "pg_shorturl hosts",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(set->cxt);
	set->hosts = NULL;
	set->count = 0;
	set->cache.loaded = false;
	/* not made yet (an older version): nothing to cache, look again next time */
	if (!OidIsValid(relid))
		return;

	att_host = get_attnum(relid, set->host_column);
	if (set->reason_column)
		att_reason = get_attnum(relid, set->reason_column);
	if (att_host == InvalidAttrNumber ||
		(set->reason_column && att_reason == InvalidAttrNumber))
		catalog_not_ours(set->relname, "a column is missing");

	memset(&info, 0, sizeof(info));
	info.keysize = HOST_KEY_SIZE;
	info.entrysize = sizeof(host_entry);
	info.hcxt = set->cxt;
	set->hosts = hash_create("pg_shorturl hosts", 64, &info,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	snapshot = config_cache_snapshot(&set->cache);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		h = heap_getattr(tuple, att_host, desc, &isnull);
		char		key[HOST_KEY_SIZE];
		text	   *t;
		int			len;
		host_entry *e;

		if (isnull)
			continue;
		t = DatumGetTextPP(h);
		len = VARSIZE_ANY_EXHDR(t);
		/* the tables' checks keep hosts shorter; a longer one matches nothing */
		if (len >= HOST_KEY_SIZE)
			continue;
		memset(key, 0, sizeof(key));
		memcpy(key, VARDATA_ANY(t), len);
		e = hash_search(set->hosts, key, HASH_ENTER, NULL);
		e->reason = NULL;
		if (att_reason != InvalidAttrNumber)
		{
			Datum		r = heap_getattr(tuple, att_reason, desc, &isnull);

			if (!isnull)
				e->reason = MemoryContextStrdup(set->cxt, TextDatumGetCString(r));
		}
		set->count++;
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	config_cache_loaded(&set->cache, relid);
}

/* ready loads a set when due, and tells whether it holds any host */
static bool
ready(host_set *set)
{
	if (config_cache_needs_load(&set->cache))
		load(set);
	return set->count > 0;
}

/*
 * canonical_ip writes an IP address host in its one spelling: an IPv4
 * address in any form a browser reads as one (decimal, octal or hex parts,
 * fewer than four parts: inet_aton's forms, as the WHATWG URL standard's)
 * as a.b.c.d, a bracketed IPv6 address in inet_ntop's compressed form, and
 * an IPv4-mapped IPv6 address as its IPv4 address.  False for a name.
 */
static bool
canonical_ip(const char *host, char out[HOST_KEY_SIZE])
{
	size_t		len = strlen(host);
	struct in_addr a4;
	struct in6_addr a6;
	char		text[INET6_ADDRSTRLEN];

	if (len > 2 && host[0] == '[' && host[len - 1] == ']')
	{
		if (len - 2 >= sizeof(text))
			return false;
		memcpy(text, host + 1, len - 2);
		text[len - 2] = '\0';
		if (inet_pton(AF_INET6, text, &a6) != 1)
			return false;
		if (IN6_IS_ADDR_V4MAPPED(&a6))
		{
			memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
			return inet_ntop(AF_INET, &a4, out, HOST_KEY_SIZE) != NULL;
		}
		if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) == NULL)
			return false;
		snprintf(out, HOST_KEY_SIZE, "[%s]", text);
		return true;
	}
	if (inet_aton(host, &a4) == 0)
		return false;
	return inet_ntop(AF_INET, &a4, out, HOST_KEY_SIZE) != NULL;
}

/*
 * url_host copies the host of a stored URL into buf as hosts are compared:
 * in lower case, without final dots, an IP address in its one spelling
 * (*ip then true).  A host too long to be in any table keeps only the
 * labels that fit, since only a suffix could match.  False for a URL whose
 * host cannot be read (a row written around shorten()).
 */
static bool
url_host(const text *url, char buf[HOST_KEY_SIZE], bool *ip)
{
	const char *s = VARDATA_ANY(url);
	size_t		len = VARSIZE_ANY_EXHDR(url);
	url_rules	rules = {len, 1};
	url_parts	parts;
	size_t		bad;
	const char *h;
	size_t		hlen;
	char		canon[HOST_KEY_SIZE];

	if (validate_url(s, len, &rules, &parts, &bad) != URL_OK || !parts.host_ascii)
		return false;
	h = s + parts.host_off;
	hlen = parts.host_len;
	while (hlen > 1 && h[hlen - 1] == '.')
		hlen--;
	while (hlen >= HOST_KEY_SIZE)
	{
		const char *dot = memchr(h, '.', hlen);

		if (dot == NULL)
			return false;
		hlen -= dot + 1 - h;
		h = dot + 1;
	}
	if (hlen == 0)
		return false;
	memset(buf, 0, HOST_KEY_SIZE);
	for (size_t i = 0; i < hlen; i++)
		buf[i] = pg_ascii_tolower((unsigned char) h[i]);
	/*
	 * An IP address blocks only itself: 1.2.3.4 is no subdomain of 3.4.  So
	 * is a host of digits and dots that is no address (1.2.3.4.5, which no
	 * browser opens).
	 */
	if (canonical_ip(buf, canon))
	{
		strlcpy(buf, canon, HOST_KEY_SIZE);
		*ip = true;
	}
	else
		*ip = strspn(buf, "0123456789.") == strlen(buf);
	return true;
}

/*
 * match finds the entry of set for host or, unless exact, for the nearest
 * domain it is a subdomain of.
 */
static host_entry *
match(host_set *set, const char *host, bool exact)
{
	const char *p = host;

	for (;;)
	{
		char		key[HOST_KEY_SIZE];
		host_entry *e;

		memset(key, 0, sizeof(key));
		strlcpy(key, p, sizeof(key));
		e = hash_search(set->hosts, key, HASH_FIND, NULL);
		if (e != NULL || exact)
			return e;
		p = strchr(p, '.');
		if (p == NULL)
			return NULL;
		p++;
	}
}

/*
 * blocklist_check_url refuses, with 22023, a URL that shorten() or
 * update_link() is about to store (its host in ASCII form) whose host is
 * blocked or is a short domain of this deployment.
 */
void
blocklist_check_url(text *url)
{
	char		host[HOST_KEY_SIZE];
	bool		ip;
	host_entry *e;

	if (!url_host(url, host, &ip))
		return;
	if (ready(&blocked) && (e = match(&blocked, host, ip)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("links to host \"%s\" are blocked", host),
				 e->reason ?
				 errdetail("The host matches \"%s\" in shorturl.blocked_hosts: %s", e->host, e->reason) :
				 errdetail("The host matches \"%s\" in shorturl.blocked_hosts.", e->host)));
	if (ready(&own) && match(&own, host, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a link may not point at the short domain \"%s\"", host),
				 errdetail("\"%s\" is in shorturl.domains, and a short link to a short link would hide where it goes.", host)));
}

/*
 * blocklist_blocks_url tells whether a stored link's host is blocked now:
 * resolve() and link_status() ask it on every call.
 */
bool
blocklist_blocks_url(const text *url)
{
	char		host[HOST_KEY_SIZE];
	bool		ip;

	if (!ready(&blocked) || !url_host(url, host, &ip))
		return false;
	return match(&blocked, host, ip) != NULL;
}

PG_FUNCTION_INFO_V1(shorturl_host_pattern);

/*
 * shorturl_host_pattern implements _host_pattern(pattern text) RETURNS
 * text: a pattern as shorturl.blocked_hosts stores it (a host name in
 * lower-case ASCII, an internationalised one in its xn-- form, without a
 * final dot; or an IP address), or 22023 for anything else.
 */
Datum
shorturl_host_pattern(PG_FUNCTION_ARGS)
{
	char	   *given = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *p = pstrdup(given);
	size_t		len = strlen(p);
	char	   *url;
	url_rules	rules;
	url_parts	parts;
	size_t		bad;
	char		out[HOST_KEY_SIZE];
	char		canon[HOST_KEY_SIZE];
	size_t		out_len = 0;
	bool		ok;

	while (len > 0 && p[len - 1] == '.')
		p[--len] = '\0';
	if (strchr(p, '*') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid host pattern \"%s\"", given),
				 errdetail("Patterns have no wildcards."),
				 errhint("A pattern such as \"example.com\" already blocks every subdomain.")));
	url = psprintf("http://%s/", p);
	/* room for the A-label form, which is longer than the Unicode one */
	rules.max_len = len + 8 + HOST_KEY_SIZE;
	rules.allow_userinfo = 0;
	ok = len > 0 && p[0] != '.' && strstr(p, "..") == NULL &&
		validate_url(url, len + 8, &rules, &parts, &bad) == URL_OK &&
		parts.host_off == 7 && parts.host_len == len &&
		url_ascii_host(url + 7, len, out, sizeof(out) - 1, &out_len) == 0 &&
		out_len <= 253;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid host pattern \"%s\"", given),
				 errhint("A pattern is a host name such as \"example.com\", which also blocks its subdomains, or an IP address; no scheme, port or path.")));
	out[out_len] = '\0';
	if (canonical_ip(out, canon))
		PG_RETURN_TEXT_P(cstring_to_text(canon));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out, (int) out_len));
}

PG_FUNCTION_INFO_V1(shorturl_hosts_changed);

/*
 * shorturl_hosts_changed is the statement trigger on shorturl.blocked_hosts
 * and shorturl.domains that makes every backend reload its copy once the
 * change commits.
 */
Datum
shorturl_hosts_changed(PG_FUNCTION_ARGS)
{
	return catalog_invalidate_trigger(fcinfo, "hosts_changed");
}

PG_FUNCTION_INFO_V1(shorturl_url_blocked);

/*
 * shorturl_url_blocked implements _url_blocked(url text) RETURNS boolean:
 * whether a stored link's host is blocked (for the status that get_link()
 * and list_links() show).
 */
Datum
shorturl_url_blocked(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(blocklist_blocks_url(PG_GETARG_TEXT_PP(0)));
}
