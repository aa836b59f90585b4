/*-------------------------------------------------------------------------
 *
 * idn.c
 *	  The Unicode half of URL validation; see validate.c for the rules, of
 *	  which this file applies 2 (the characters of the whole URL), the
 *	  Unicode part of 6 (the characters of an internationalised host) and
 *	  8 to 10 (IDNA, confusables, the stored length), and computes a host's
 *	  ASCII form (url_ascii_host).
 *
 * It uses ICU: UTS #46 processing for IDNA, and the UTS #39 spoof checker
 * for mixed scripts and confusables.  ICU's objects are opened on first use
 * and kept for the life of the process, which is single-threaded.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/uidna.h>
#include <unicode/uscript.h>
#include <unicode/uset.h>
#include <unicode/uspoof.h>

#include "chars.h"
#include "idn.h"
#include "validate.h"

/* the largest Unicode code point */
#define MAX_CODE_POINT 0x10FFFF

/* U+2800 BRAILLE PATTERN BLANK is a symbol, not a space, but shows nothing */
#define BRAILLE_BLANK 0x2800

/*
 * The longest A-label form of a valid name: 253 bytes and a trailing dot
 * (RFC 1035).  ICU reports anything longer as UIDNA_ERROR_DOMAIN_NAME_TOO_LONG,
 * so a name that overflows a buffer of this size plus one is invalid anyway.
 */
#define IDN_ASCII_MAX 254

/*
 * Room for the Unicode form of such a name: a punycode label decodes to at
 * most as many code points as it has bytes, each at most 4 bytes of UTF-8.
 */
#define IDN_UNICODE_MAX (4 * IDN_ASCII_MAX)

/* the longest DNS label in bytes (RFC 1035), so at most 63 code points */
#define LABEL_MAX 63

/*
 * Room for the skeleton of one label: in ICU 72 the skeleton of one code
 * point takes at most 30 bytes (U+FDFA); a label that overflows this is
 * treated as confusable, since it cannot be shown not to be.
 */
#define SKELETON_MAX (LABEL_MAX * 32)

/* room for the UTS #46 mapping of one code point (U+FDFA maps to 18) */
#define MAPPING_MAX 256

/*
 * IDNA processing: UTS #46 nontransitional (so sharp s, U+00DF, stays
 * itself), with the STD3 rules that allow only letters, digits and '-' in
 * ASCII, and with the Bidi and ContextJ rules; ICU always checks hyphens.
 */
#define IDNA_OPTIONS (UIDNA_USE_STD3_RULES | UIDNA_CHECK_BIDI | \
					  UIDNA_CHECK_CONTEXTJ | UIDNA_NONTRANSITIONAL_TO_ASCII | \
					  UIDNA_NONTRANSITIONAL_TO_UNICODE)

/* the spoof checks run on each non-ASCII label; see the file header */
#define SPOOF_CHECKS (USPOOF_RESTRICTION_LEVEL | USPOOF_CHAR_LIMIT | \
					  USPOOF_MIXED_NUMBERS | USPOOF_INVISIBLE | \
					  USPOOF_HIDDEN_OVERLAY)

static UIDNA *url_idna = NULL;
static USpoofChecker *url_spoof = NULL;

/*
 * utf8_decode reads one character from the len > 0 bytes at s into *cp and
 * returns its length in bytes, or 0 if the bytes are not well-formed UTF-8
 * (a stray continuation byte, a truncated sequence, an overlong form, a
 * surrogate or a value above U+10FFFF).
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, int32_t *cp)
{
	unsigned char c = s[0];
	size_t		n;
	int32_t		v;
	int32_t		min;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
	{
		n = 2;
		v = c & 0x1F;
		min = 0x80;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		v = c & 0x0F;
		min = 0x800;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		v = c & 0x07;
		min = 0x10000;
	}
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if (v < min || v > MAX_CODE_POINT || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

/*
 * char_is_invisible tells whether a non-ASCII code point shows nothing, a
 * blank, or changes how its neighbours are shown, which is how a link is
 * made to read as something other than where it leads.
 */
static int
char_is_invisible(int32_t cp)
{
	switch (u_charType(cp))
	{
		case U_CONTROL_CHAR:	/* C1 controls such as U+0085, U+009B */
		case U_FORMAT_CHAR:		/* zero-width, bidi controls, U+FEFF */
		case U_SPACE_SEPARATOR:	/* U+00A0, U+2000..U+200A, U+3000 */
		case U_LINE_SEPARATOR:	/* U+2028 */
		case U_PARAGRAPH_SEPARATOR: /* U+2029 */
			return 1;
		default:
			break;
	}
	/* Hangul fillers, variation selectors, the combining grapheme joiner */
	if (u_hasBinaryProperty(cp, UCHAR_DEFAULT_IGNORABLE_CODE_POINT))
		return 1;
	return cp == BRAILLE_BLANK;
}

/* char_is_unassigned tells whether a code point has no agreed appearance */
static int
char_is_unassigned(int32_t cp)
{
	int8_t		type = u_charType(cp);

	/* noncharacters are unassigned (Cn); utf8_decode refuses surrogates */
	return type == U_UNASSIGNED || type == U_PRIVATE_USE_CHAR;
}

/*
 * idn_check_chars checks every character of the URL, in order, so that the
 * first offending one is reported whatever its kind.
 */
url_status
idn_check_chars(const unsigned char *u, size_t len, size_t *bad_offset)
{
	size_t		i = 0;

	while (i < len)
	{
		int32_t		cp;
		size_t		n;

		if (u[i] < 0x80)
		{
			if (u[i] < 0x20 || u[i] == 0x7f)
			{
				*bad_offset = i;
				return URL_CONTROL_CHAR;
			}
			if (u[i] == ' ')
			{
				*bad_offset = i;
				return URL_SPACE;
			}
			i++;
			continue;
		}
		n = utf8_decode(u + i, len - i, &cp);
		if (n == 0)
		{
			*bad_offset = i;
			return URL_BAD_UTF8;
		}
		if (char_is_invisible(cp))
		{
			*bad_offset = i;
			return URL_INVISIBLE_CHAR;
		}
		if (char_is_unassigned(cp))
		{
			*bad_offset = i;
			return URL_UNASSIGNED_CHAR;
		}
		i += n;
	}
	return URL_OK;
}

/*
 * idn_open opens the IDNA processor and the spoof checker on first use.  It
 * returns 0 if ICU cannot provide them (its data is missing, say); the next
 * call tries again.
 */
int
idn_open(void)
{
	UErrorCode	status = U_ZERO_ERROR;
	USpoofChecker *sc;
	USet	   *allowed;

	if (url_idna != NULL && url_spoof != NULL)
		return 1;
	if (url_idna == NULL)
	{
		url_idna = uidna_openUTS46(IDNA_OPTIONS, &status);
		if (U_FAILURE(status))
		{
			url_idna = NULL;
			return 0;
		}
	}

	sc = uspoof_open(&status);
	if (U_FAILURE(status))
		return 0;
	uspoof_setChecks(sc, SPOOF_CHECKS, &status);
	uspoof_setRestrictionLevel(sc, USPOOF_HIGHLY_RESTRICTIVE);

	/* UTS #39's identifier set, as the uspoof.h documentation recommends */
	allowed = uset_openEmpty();
	uset_addAll(allowed, uspoof_getRecommendedSet(&status));
	uset_addAll(allowed, uspoof_getInclusionSet(&status));
	uspoof_setAllowedChars(sc, allowed, &status);	/* copies the set */
	uset_close(allowed);
	if (U_FAILURE(status))
	{
		uspoof_close(sc);
		return 0;
	}
	url_spoof = sc;
	return 1;
}

/*
 * idn_has_ace_label tells whether an ASCII host has a label starting "xn--"
 * (any case), which makes it an internationalised name in disguise.
 */
int
idn_has_ace_label(const unsigned char *h, size_t len)
{
	size_t		label = 0;

	for (size_t i = 0; i <= len; i++)
	{
		if (i == len || h[i] == '.')
		{
			if (prefix_ci((const char *) h + label, i - label, "xn--", 4))
				return 1;
			label = i + 1;
		}
	}
	return 0;
}

/*
 * label_dot_length returns the length of the label separator at h[0..len),
 * or 0 if there is none there: '.' or one of the full stops UTS #46 maps to
 * '.' (U+3002, U+FF0E, U+FF61).
 */
static size_t
label_dot_length(const unsigned char *h, size_t len)
{
	if (h[0] == '.')
		return 1;
	if (len >= 3 && h[0] == 0xE3 && h[1] == 0x80 && h[2] == 0x82)
		return 3;				/* U+3002 IDEOGRAPHIC FULL STOP */
	if (len >= 3 && h[0] == 0xEF && h[1] == 0xBC && h[2] == 0x8E)
		return 3;				/* U+FF0E FULLWIDTH FULL STOP */
	if (len >= 3 && h[0] == 0xEF && h[1] == 0xBD && h[2] == 0xA1)
		return 3;				/* U+FF61 HALFWIDTH IDEOGRAPHIC FULL STOP */
	return 0;
}

/*
 * label_offset returns the offset in h of label number k (from 0), with the
 * separators UTS #46 recognises; len if there are fewer labels.
 */
static size_t
label_offset(const unsigned char *h, size_t len, size_t k)
{
	size_t		i = 0;

	while (k > 0 && i < len)
	{
		size_t		dot = label_dot_length(h + i, len - i);

		if (dot > 0)
		{
			i += dot;
			k--;
		}
		else
			i++;
	}
	return k == 0 ? i : len;
}

/*
 * idn_bad_label returns the offset in h of the first label that UTS #46
 * refuses on its own, so that the error can point at it; 0 (the host) when
 * the fault lies in the whole name, such as its length or the Bidi rule
 * across labels.  A final empty label is the root, not a fault.
 */
static size_t
idn_bad_label(const unsigned char *h, size_t len)
{
	size_t		label = 0;
	size_t		i = 0;

	for (;;)
	{
		size_t		dot = 0;

		while (i < len && (dot = label_dot_length(h + i, len - i)) == 0)
			i++;
		/* h[label..i) is a label */
		if (i < len || label < len || len == 0)
		{
			char		out[LABEL_MAX * 4 + 1];
			UIDNAInfo	info = UIDNA_INFO_INITIALIZER;
			UErrorCode	status = U_ZERO_ERROR;

			uidna_labelToASCII_UTF8(url_idna, (const char *) h + label,
									(int32_t) (i - label), out, sizeof(out),
									&info, &status);
			if (U_FAILURE(status) || info.errors != 0)
				return label < len ? label : 0;
		}
		if (i == len)
			return 0;
		i += dot;
		label = i;
	}
}

/*
 * idn_char_disallowed tells whether UTS #46 (with STD3 rules) disallows the
 * one code point at s, or what it maps to: U+FF0F and U+FF20 map to
 * '/' and '@', which a host name may not hold.  -1 if ICU failed.
 */
static int
idn_char_disallowed(const unsigned char *s, size_t n)
{
	char		out[MAPPING_MAX];
	UIDNAInfo	info = UIDNA_INFO_INITIALIZER;
	UErrorCode	status = U_ZERO_ERROR;

	uidna_labelToUnicodeUTF8(url_idna, (const char *) s, (int32_t) n,
							 out, sizeof(out), &info, &status);
	if (status == U_BUFFER_OVERFLOW_ERROR)
		return 1;				/* no mapping is this long; refuse it */
	if (U_FAILURE(status))
		return -1;
	return (info.errors & UIDNA_ERROR_DISALLOWED) != 0;
}

/*
 * idn_check_name_chars checks each character of the registered name at
 * u[host..host_end); idn says whether it is an internationalised one.
 */
url_status
idn_check_name_chars(const unsigned char *u, size_t host, size_t host_end,
				 int idn, size_t *bad_offset)
{
	size_t		i = host;

	while (i < host_end)
	{
		int32_t		cp;
		size_t		n;

		if (u[i] < 0x80)
		{
			if (!is_host_char(u[i]) || (idn && !is_ldh_char(u[i])))
			{
				*bad_offset = i;
				return URL_BAD_HOST;
			}
			i++;
			continue;
		}
		/* idn_check_chars has made sure this is well-formed */
		n = utf8_decode(u + i, host_end - i, &cp);
		switch (idn_char_disallowed(u + i, n))
		{
			case 0:
				break;
			case 1:
				*bad_offset = i;
				return URL_BAD_HOST;
			default:
				return URL_ICU_ERROR;
		}
		i += n;
	}
	return URL_OK;
}

/* all_latin tells whether every non-ASCII character of a label is Latin */
static int
all_latin(const unsigned char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		int32_t		cp;
		size_t		n = utf8_decode(s + i, len - i, &cp);
		UErrorCode	status = U_ZERO_ERROR;

		if (n == 0)
			return 0;
		if (cp >= 0x80 && uscript_getScript(cp, &status) != USCRIPT_LATIN)
			return 0;
		i += n;
	}
	return 1;
}

/*
 * check_label_spoof runs the UTS #39 checks on one label of the Unicode
 * form of a host; see the file header for why each.
 */
static url_status
check_label_spoof(const char *label, size_t len)
{
	UErrorCode	status = U_ZERO_ERROR;
	int32_t		failed;
	char		skeleton[SKELETON_MAX];
	int32_t		n;

	failed = uspoof_checkUTF8(url_spoof, label, (int32_t) len, NULL, &status);
	if (U_FAILURE(status))
		return URL_ICU_ERROR;
	/* characters outside the set also fail the restriction level: say why */
	if (failed & USPOOF_CHAR_LIMIT)
		return URL_RARE_HOST_CHAR;
	if (failed & (USPOOF_RESTRICTION_LEVEL | USPOOF_MIXED_NUMBERS))
		return URL_MIXED_SCRIPT_HOST;
	if (failed & (USPOOF_INVISIBLE | USPOOF_HIDDEN_OVERLAY))
		return URL_CONFUSABLE_HOST;

	/*
	 * A whole-script confusable: if the skeleton is all ASCII, some ASCII
	 * label has the same skeleton and looks the same.  Labels whose only
	 * non-ASCII letters are Latin (German u-umlaut, Turkish dotless i) are
	 * left to the checks above, or every name with U+00E6 (ae) would be
	 * refused.
	 */
	if (all_latin((const unsigned char *) label, len))
		return URL_OK;
	n = uspoof_getSkeletonUTF8(url_spoof, 0, label, (int32_t) len,
							   skeleton, sizeof(skeleton), &status);
	if (status == U_BUFFER_OVERFLOW_ERROR)
		return URL_CONFUSABLE_HOST;
	if (U_FAILURE(status))
		return URL_ICU_ERROR;
	for (int32_t i = 0; i < n; i++)
		if ((unsigned char) skeleton[i] >= 0x80)
			return URL_OK;
	return URL_CONFUSABLE_HOST;
}

/*
 * idn_check applies rules 8 to 10 to the internationalised host found in
 * parts, and sets parts->ascii_host_len.
 */
url_status
idn_check(const unsigned char *u, size_t len, const url_rules *rules,
		  url_parts *parts, size_t *bad_offset)
{
	const unsigned char *h = u + parts->host_off;
	size_t		hlen = parts->host_len;
	char		ascii[IDN_ASCII_MAX + 1];
	char		uni[IDN_UNICODE_MAX + 1];
	UIDNAInfo	info = UIDNA_INFO_INITIALIZER;
	UIDNAInfo	uinfo = UIDNA_INFO_INITIALIZER;
	UErrorCode	status = U_ZERO_ERROR;
	int32_t		alen;
	int32_t		ulen;
	size_t		label;
	size_t		k;

	/* a name longer than this cannot have a valid A-label form */
	if (hlen > (size_t) INT32_MAX)
	{
		*bad_offset = parts->host_off;
		return URL_BAD_IDN;
	}
	alen = uidna_nameToASCII_UTF8(url_idna, (const char *) h, (int32_t) hlen,
								  ascii, sizeof(ascii), &info, &status);
	if (U_FAILURE(status) && status != U_BUFFER_OVERFLOW_ERROR)
		return URL_ICU_ERROR;
	if (status == U_BUFFER_OVERFLOW_ERROR || info.errors != 0)
	{
		*bad_offset = parts->host_off + idn_bad_label(h, hlen);
		return URL_BAD_IDN;
	}

	/* an ASCII name must already be its own canonical form, but for case */
	if (parts->host_ascii)
	{
		if ((size_t) alen != hlen)
		{
			*bad_offset = parts->host_off;
			return URL_BAD_IDN;
		}
		for (size_t i = 0; i < hlen; i++)
		{
			if (to_lower(h[i]) != (unsigned char) ascii[i])
			{
				*bad_offset = parts->host_off;
				return URL_BAD_IDN;
			}
		}
	}
	parts->ascii_host_len = (size_t) alen;

	/* the spoof checks read the Unicode form, as a browser would show it */
	status = U_ZERO_ERROR;
	ulen = uidna_nameToUnicodeUTF8(url_idna, ascii, alen, uni, sizeof(uni),
								   &uinfo, &status);
	if (U_FAILURE(status) && status != U_BUFFER_OVERFLOW_ERROR)
		return URL_ICU_ERROR;
	if (status == U_BUFFER_OVERFLOW_ERROR || uinfo.errors != 0)
	{
		*bad_offset = parts->host_off;
		return URL_BAD_IDN;
	}

	label = 0;
	k = 0;
	for (int32_t i = 0; i <= ulen; i++)
	{
		int			ascii_only = 1;
		size_t		off;
		url_status	st;

		if (i < ulen && uni[i] != '.')
			continue;
		for (size_t j = label; j < (size_t) i; j++)
			if ((unsigned char) uni[j] >= 0x80)
				ascii_only = 0;
		if (!ascii_only)
		{
			st = check_label_spoof(uni + label, (size_t) i - label);
			if (st != URL_OK)
			{
				off = label_offset(h, hlen, k);
				*bad_offset = parts->host_off + (off < hlen ? off : 0);
				return st;
			}
		}
		label = (size_t) i + 1;
		k++;
	}

	/* stored, the host takes its A-label form */
	if (!parts->host_ascii && len - hlen + (size_t) alen > rules->max_len)
		return URL_TOO_LONG;
	return URL_OK;
}

/*
 * url_ascii_host gives the spelling a blocklist or the reuse lookup compares
 * hosts by; see validate.h.
 */
int
url_ascii_host(const char *host, size_t len, char *out, size_t cap,
			   size_t *out_len)
{
	const unsigned char *h = (const unsigned char *) host;
	int			ascii = 1;
	UIDNAInfo	info = UIDNA_INFO_INITIALIZER;
	UErrorCode	status = U_ZERO_ERROR;
	int32_t		n;

	for (size_t i = 0; i < len; i++)
		if (h[i] >= 0x80)
			ascii = 0;

	/* an IP literal or a plain ASCII name: only the case changes */
	if (ascii && ((len > 0 && h[0] == '[') || !idn_has_ace_label(h, len)))
	{
		*out_len = len;
		if (cap < len)
			return 1;
		for (size_t i = 0; i < len; i++)
			out[i] = (char) to_lower(h[i]);
		return 0;
	}

	*out_len = 0;
	if (len > (size_t) INT32_MAX || !idn_open())
		return -1;
	n = uidna_nameToASCII_UTF8(url_idna, host, (int32_t) len, out,
							   cap > (size_t) INT32_MAX ? INT32_MAX : (int32_t) cap,
							   &info, &status);
	if (status == U_BUFFER_OVERFLOW_ERROR)
	{
		/* ICU does not finish the checks on overflow: the caller retries */
		*out_len = (size_t) n;
		return 1;
	}
	if (U_FAILURE(status) || info.errors != 0)
		return -1;
	*out_len = (size_t) n;
	return 0;
}
