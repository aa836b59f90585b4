/*-------------------------------------------------------------------------
 *
 * url_check.h
 *	  The PostgreSQL side of validating a link's URL, owner, title and tags
 *	  (src/url_check.c).
 *
 * validate.c decides; url_check turns its status into an error that points
 * at the offending character, and gives the URL to store.  Include it after
 * postgres.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_URL_CHECK_H
#define SHORTURL_URL_CHECK_H

#include "utils/array.h"

/*
 * url_check returns the URL to store for the (non-NULL) url, or reports
 * why it is refused: the input itself when its host is ASCII, else a
 * palloc'd copy with the host in its A-label (punycode) form.  max_len is
 * shorturl.max_url_length and allow_userinfo shorturl.allow_userinfo.
 */
extern text *url_check(text *url, int max_len, bool allow_userinfo);

/*
 * meta_check checks a link's owner, title and tags (NULL for none) and
 * returns the tags to store: each once, in the order first given.
 */
extern ArrayType *meta_check(text *owner, text *title, ArrayType *tags);

#endif							/* SHORTURL_URL_CHECK_H */
