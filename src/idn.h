/*-------------------------------------------------------------------------
 *
 * idn.h
 *	  The Unicode half of URL validation (idn.c): well-formed UTF-8, no
 *	  invisible or unassigned character, internationalised host names that
 *	  are valid IDNA and imitate no other name.  Used by validate.c only.
 *	  No PostgreSQL headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_IDN_H
#define SHORTURL_IDN_H

#include "validate.h"

extern int	idn_open(void);
extern int	idn_has_ace_label(const unsigned char *h, size_t len);
extern url_status idn_check_chars(const unsigned char *u, size_t len, size_t *bad_offset);
extern url_status idn_check_name_chars(const unsigned char *u, size_t host, size_t host_end,
									   int idn, size_t *bad_offset);
extern url_status idn_check(const unsigned char *u, size_t len, const url_rules *rules,
							url_parts *parts, size_t *bad_offset);

#endif							/* SHORTURL_IDN_H */
