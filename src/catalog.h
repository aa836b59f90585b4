/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  The extension's tables as the C code reads them directly: their OIDs,
 *	  indexes and column numbers, checked against what the extension made.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_CATALOG_H
#define SHORTURL_CATALOG_H

#include "access/attnum.h"
#include "fmgr.h"
#include "utils/relcache.h"

/* columns of shorturl.links that the C code reads, by position in links_att */
typedef enum links_column
{
	LINKS_ID,
	LINKS_CODE,
	LINKS_DOMAIN,
	LINKS_URL,
	LINKS_EXPIRES_AT,
	LINKS_MAX_VISITS,
	LINKS_DISABLED_AT,
	LINKS_EXHAUSTED_AT,
	LINKS_IS_ALIAS,
	LINKS_URL_HASH,
	LINKS_OWNER,				/* since 0.7: InvalidAttrNumber before */
	LINKS_NCOLUMNS
} links_column;

/* columns of shorturl.visit_counts and shorturl.pending_visits */
typedef enum counts_column
{
	COUNTS_LINK_ID,
	COUNTS_VISITS,
	COUNTS_NCOLUMNS
} counts_column;

typedef struct shorturl_tables
{
	Oid			owner;			/* the tables' (the extension's) owner */
	Oid			links;			/* shorturl.links */
	Oid			links_code_key; /* its unique index on (code, domain) */
	Oid			links_url_hash_idx; /* its index on (url_hash, id) */
	Oid			links_pkey;		/* its primary key, on (id) */
	Oid			link_id_seq;	/* shorturl.link_id_seq: ids of new links */
	AttrNumber	links_att[LINKS_NCOLUMNS];
	Oid			counts;			/* shorturl.visit_counts */
	Oid			counts_pkey;	/* on (link_id) */
	AttrNumber	counts_att[COUNTS_NCOLUMNS];
	Oid			pending;		/* shorturl.pending_visits */
	Oid			pending_idx;	/* on (link_id) */
	AttrNumber	pending_att[COUNTS_NCOLUMNS];
	/* since 0.8: visit analytics (shorturl.link_visits_hourly and friends) */
	bool		analytics;
	/* since 0.13: shorturl.standby_batches and its primary key (else invalid) */
	Oid			standby_batches;
	Oid			standby_batches_pkey;
} shorturl_tables;

extern void catalog_init(void);
extern Oid	catalog_relid(const char *relname);
extern void catalog_not_ours(const char *relname, const char *what);
extern const shorturl_tables *catalog_tables(void);
extern const shorturl_tables *catalog_tables_if_installed(void);
extern const shorturl_tables *catalog_lock_links(Relation *rel);

/* running a rare piece of SQL as the tables' owner; see catalog.c */
typedef struct as_owner
{
	Oid			userid;
	int			sec_context;
} as_owner;

extern as_owner catalog_become_owner(void);
extern void catalog_back_from_owner(as_owner saved);

extern Datum catalog_invalidate_trigger(FunctionCallInfo fcinfo, const char *name);

#endif							/* SHORTURL_CATALOG_H */
