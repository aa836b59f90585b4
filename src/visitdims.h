/*-------------------------------------------------------------------------
 *
 * visitdims.h
 *	  Pure reduction of what a redirect knows about a visit (the User-Agent
 *	  and Referer headers, a country code from the proxy in front) to the
 *	  few values an analytics dimension holds: a device class, a referring
 *	  host and an ISO 3166-1 alpha-2 code.
 *
 * The inputs come from PostgreSQL text datums, so every function takes a
 * pointer and a length and never reads past the length: the bytes need not
 * be NUL-terminated.  This file and visitdims.c use no PostgreSQL headers
 * and never allocate, so the unit tests and the fuzzer
 * (test/fuzz/fuzz_visitdims.c) drive them directly; the SQL-callable
 * wrappers turn the results into text.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_VISITDIMS_H
#define SHORTURL_VISITDIMS_H

#include <stdbool.h>
#include <stddef.h>

/* device classes; the rules that choose one are at the top of visitdims.c */
typedef enum visit_device
{
	DEVICE_DESKTOP = 0,
	DEVICE_MOBILE,
	DEVICE_TABLET,
	DEVICE_BOT,
	DEVICE_OTHER
} visit_device;

/*
 * visit_device_class classifies the len bytes of a User-Agent header.  An
 * empty one is DEVICE_OTHER.  The cost grows linearly with len, whatever
 * the bytes are.
 */
extern visit_device visit_device_class(const char *ua, size_t len);

/*
 * visit_device_name returns the dimension value of a class: "desktop",
 * "mobile", "tablet", "bot" or "other" (also for a value outside the enum).
 */
extern const char *visit_device_name(visit_device d);

/*
 * The longest host visit_referrer_host returns: 253 bytes, the longest
 * domain name in text form without its final dot (RFC 1035 section 2.3.4
 * limits a name to 255 octets on the wire, which is 253 characters of
 * text).
 */
#define VISIT_HOST_MAX_LEN	253

/*
 * The size of the buffer visit_referrer_host writes: room for the longest
 * host and its NUL, rounded up.
 */
#define VISIT_HOST_BUFSIZE	256

/* what visit_referrer_host writes for a visit without a Referer */
#define VISIT_REFERRER_DIRECT_VALUE "direct"

/* what it writes for a Referer it cannot reduce to a host */
#define VISIT_REFERRER_OTHER_VALUE	"other"

typedef enum visit_referrer_status
{
	VISIT_REFERRER_HOST = 0,	/* out holds the host */
	VISIT_REFERRER_DIRECT,		/* the Referer is empty: out holds "direct" */
	VISIT_REFERRER_INVALID		/* not scheme://host: out holds "other" */
} visit_referrer_status;

/*
 * visit_referrer_host reduces the len bytes of a Referer header to its host,
 * lowercased, with the rules at the top of visitdims.c, and writes the
 * dimension value to out as a NUL-terminated string (at most
 * VISIT_HOST_MAX_LEN bytes before the NUL) and its length to *out_len.  The
 * value is the host, or "direct" or "other" as the status says.  A
 * single-label host named "direct" or "other" gives the same text as those
 * two results; the status tells them apart.
 */
extern visit_referrer_status visit_referrer_host(const char *ref, size_t len,
												 char out[VISIT_HOST_BUFSIZE],
												 size_t *out_len);

/*
 * visit_country_code accepts exactly two ASCII letters, in any case, and
 * writes them upper-cased and NUL-terminated to out.  For anything else it
 * returns false and writes an empty string.  It does not check the code
 * against the ISO 3166-1 list: proxies use user-assigned codes such as
 * "XX" for an unknown country.
 */
extern bool visit_country_code(const char *in, size_t len, char out[3]);

#endif							/* SHORTURL_VISITDIMS_H */
