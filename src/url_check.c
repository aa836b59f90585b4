/*-------------------------------------------------------------------------
 *
 * url_check.c
 *	  The PostgreSQL side of validating what a link holds: its target URL,
 *	  owner, title and tags.  The rules live in the pure core (validate.c);
 *	  this file reports a broken one and builds what to store.
 *
 * Every refusal is SQLSTATE 22023 with a message that names the rule and
 * points at the character (positions count characters from 1).  Characters
 * that would garble or hide in a message are shown as code points (U+202E)
 * or escapes (\x09), never as themselves.
 *
 * The stored URL is the input byte for byte, except a non-ASCII host, which
 * is stored in its A-label (punycode) form: a Location header must be
 * ASCII, and one host then has one spelling for a blocklist and for reuse.
 *
 * Only a UTF8 database validates non-ASCII text as Unicode; in any other
 * encoding the bytes of a character mean something else to ICU, so a
 * non-ASCII URL is refused and must be percent-encoded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "blocklist.h"
#include "compat.h"
#include "pg_shorturl.h"
#include "url_check.h"
#include "validate.h"

/* in base62_sql.c: a character fit for an error message */
extern char *shorturl_describe_char(const char *p, int len);

/* url_position returns the character position (from 1) of byte offset off */
static int
url_position(const char *s, size_t off)
{
	return pg_mbstrlen_with_len(s, (int) off) + 1;
}

/* url_host returns the host span of a URL as a palloc'd string */
static char *
url_host(const char *s, const url_parts *parts)
{
	return pnstrdup(s + parts->host_off, parts->host_len);
}

/*
 * url_check_encoding refuses a non-ASCII URL in a database whose encoding
 * is not UTF8, since its bytes are not the UTF-8 that the checks read.
 */
static void
url_check_encoding(const char *s, int len)
{
	if (GetDatabaseEncoding() == PG_UTF8)
		return;
	for (int i = 0; i < len; i++)
	{
		if (IS_HIGHBIT_SET(s[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains a non-ASCII character \"%s\" at position %d",
							shorturl_describe_char(s + i, len - i),
							url_position(s, (size_t) i)),
					 errdetail("Non-ASCII URLs are checked only in databases with encoding UTF8, and this one uses %s.",
							   GetDatabaseEncodingName()),
					 errhint("Percent-encode non-ASCII characters as their UTF-8 bytes (such as %%C3%%A9), and write a non-ASCII host in its xn-- form.")));
	}
}

/*
 * url_report_host_char reports URL_BAD_HOST, with a detail that says why
 * the character is not allowed where the reason is not obvious.
 */
static void
url_report_host_char(const char *s, int len, size_t bad)
{
	unsigned char c = (unsigned char) s[bad];
	const char *detail = NULL;

	if (c == '%')
		detail = "Browsers decode percent escapes in a host name, so the link would lead to a host other than the one written.";
	else if (c == '\\')
		detail = "Browsers read a backslash as \"/\", so the host would end there.";
	else if (IS_HIGHBIT_SET(c))
		detail = "Internationalised domain names (UTS #46) do not allow this character; a browser may read it as an ASCII character such as \"/\" or \"@\".";
	else if (c == '[')
		detail = "An IP literal needs its closing \"]\" before the path.";
	else if (c != '\0' && strchr("_~!$&'()*+,;=", c) != NULL)
		detail = "A host name with non-ASCII or \"xn--\" labels may hold only letters, digits, hyphens and dots.";

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("URL host contains an invalid character \"%s\" at position %d",
					shorturl_describe_char(s + bad, len - (int) bad),
					url_position(s, bad)),
			 detail ? errdetail("%s", detail) : 0));
}

/*
 * url_report reports the status st of validate_url for the len bytes at s
 * and does not return.  The messages of the statuses that predate
 * internationalised names are kept word for word.
 */
static void
url_report(url_status st, const char *s, int len, int max_len,
		   const url_parts *parts, size_t bad)
{
	switch (st)
	{
		case URL_OK:
			break;
		case URL_TOO_LONG:
			if (len > max_len)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("URL is too long: %d bytes, the maximum is %d",
								len, max_len),
						 errhint("The limit is the setting shorturl.max_url_length.")));
			/* it fits as given, but not with its host in A-label form */
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL is too long: %d bytes, the maximum is %d",
							len - (int) parts->host_len + (int) parts->ascii_host_len,
							max_len),
					 errdetail("The URL is %d bytes as given, but its host is stored in its ASCII (punycode) form.",
							   len),
					 errhint("The limit is the setting shorturl.max_url_length.")));
			break;
		case URL_CONTROL_CHAR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains a control character \"%s\" at position %d",
							shorturl_describe_char(s + bad, len - (int) bad),
							url_position(s, bad)),
					 errhint("Percent-encode control characters.")));
			break;
		case URL_SPACE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains a space at position %d",
							url_position(s, bad)),
					 errhint("Percent-encode spaces as %%20.")));
			break;
		case URL_BAD_SCHEME:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL must start with http:// or https://")));
			break;
		case URL_NO_HOST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL has no host"),
					 errhint("Write the URL as http://host/path or https://host/path.")));
			break;
		case URL_BAD_HOST:
			url_report_host_char(s, len, bad);
			break;
		case URL_BAD_PORT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL port must be a number from 1 to 65535")));
			break;
		case URL_BAD_UTF8:
			/* a UTF8 database never holds such text; kept for safety */
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains an invalid UTF-8 sequence at position %d",
							url_position(s, bad)),
					 errdetail("The byte 0x%02X does not begin a valid UTF-8 character.",
							   (unsigned char) s[bad])));
			break;
		case URL_INVISIBLE_CHAR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains an invisible or bidirectional character U+%04X at position %d",
							(unsigned int) utf8_to_unicode((const unsigned char *) s + bad),
							url_position(s, bad)),
					 errdetail("Invisible characters, spaces other than the ASCII space and controls that reorder text can make a link read as something other than where it leads."),
					 errhint("Remove the character, or percent-encode it if it belongs in the path or query.")));
			break;
		case URL_UNASSIGNED_CHAR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains an unassigned or private-use character U+%04X at position %d",
							(unsigned int) utf8_to_unicode((const unsigned char *) s + bad),
							url_position(s, bad)),
					 errdetail("Such a character has no agreed appearance, so nobody can tell what the link says."),
					 errhint("Remove the character, or percent-encode it if it belongs in the path or query.")));
			break;
		case URL_USERINFO:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL contains userinfo (\"%s\")",
							pnstrdup(s + parts->authority_off, parts->userinfo_len)),
					 errdetail("The link leads to the host after the \"@\"; what comes before it is only a user name and password."),
					 errhint("Userinfo in a link is a classic way to disguise the real host; set shorturl.allow_userinfo to accept it.")));
			break;
		case URL_BAD_IDN:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL host is not a valid internationalised domain name"),
					 errdetail("The host \"%s\" breaks the IDNA rules (UTS #46) in its label at position %d.",
							   url_host(s, parts), url_position(s, bad)),
					 errhint("A label may not be empty, begin or end with a hyphen, have \"--\" as its third and fourth characters, begin with a combining mark, mix left-to-right and right-to-left letters, or take more than 63 bytes in its xn-- form.")));
			break;
		case URL_RARE_HOST_CHAR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL host \"%s\" contains a character outside the set recommended for domain names",
							url_host(s, parts)),
					 errdetail("Its label at position %d holds a symbol, a character of a historic or limited-use script, or another character that Unicode leaves out of identifiers (UTS #39) because readers take it for a common one.",
							   url_position(s, bad))));
			break;
		case URL_MIXED_SCRIPT_HOST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL host \"%s\" mixes scripts in a way that imitates another name",
							url_host(s, parts)),
					 errdetail("Its label at position %d mixes scripts that are not written together, such as a Cyrillic letter among Latin ones, or digits of two number systems.",
							   url_position(s, bad))));
			break;
		case URL_CONFUSABLE_HOST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("URL host \"%s\" imitates an ASCII name",
							url_host(s, parts)),
					 errdetail("Its label at position %d is made of characters that look like ASCII letters, digits or hyphens, or of marks hidden on them, so readers would take it for a different name.",
							   url_position(s, bad))));
			break;
		case URL_ICU_ERROR:
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not check the internationalised host name of a URL"),
					 errdetail("ICU could not open its IDNA or spoof-checking data, or failed while using it.")));
			break;
	}
}

/*
 * url_with_ascii_host returns the len bytes at s as text, with the host that
 * parts describes replaced by its A-label form.
 */
static text *
url_with_ascii_host(const char *s, int len, const url_parts *parts)
{
	size_t		tail = (size_t) len - parts->host_off - parts->host_len;
	size_t		stored_len = parts->host_off + parts->ascii_host_len + tail;
	char	   *p = palloc(stored_len);
	size_t		host_len = 0;

	memcpy(p, s, parts->host_off);
	if (url_ascii_host(s + parts->host_off, parts->host_len,
					   p + parts->host_off, parts->ascii_host_len,
					   &host_len) != 0 ||
		host_len != parts->ascii_host_len)
		elog(ERROR, "could not convert an accepted URL host to its ASCII form");
	memcpy(p + parts->host_off + host_len, s + parts->host_off + parts->host_len,
		   tail);
	return cstring_to_text_with_len(p, (int) stored_len);
}

/*
 * url_check checks url against the rules of validate.c and returns what
 * to store; see url_check.h.  The text is read through text_to_cstring
 * rather than the varlena macros, whose header moved between versions; a
 * URL is short, so the copy costs nothing that matters.
 */
text *
url_check(text *url, int max_len, bool allow_userinfo)
{
	char	   *s = text_to_cstring(url);
	int			len = (int) strlen(s);
	url_rules	rules;
	url_parts	parts;
	size_t		bad = 0;
	url_status	st;

	rules.max_len = (size_t) Max(max_len, 0);
	rules.allow_userinfo = allow_userinfo ? 1 : 0;

	if (len <= max_len)
		url_check_encoding(s, len);
	st = validate_url(s, (size_t) len, &rules, &parts, &bad);
	if (st != URL_OK)
		url_report(st, s, len, max_len, &parts, bad);

	if (parts.host_ascii)
	{
		pfree(s);
		return url;
	}
	return url_with_ascii_host(s, len, &parts);
}

/* ---------------------------------------------------------------------
 * Labels: a link's owner, title and tags
 * ---------------------------------------------------------------------
 */

/*
 * label_check reports a label that validate_label refuses; what names it in
 * the message ("owner", "title", "tag 3").  The rules are about characters,
 * so a label of another server encoding is checked in UTF-8 (in LATIN1,
 * byte 0x85 is the C1 control NEL; in SQL_ASCII, bytes are just bytes).
 */
static void
label_check(text *label, size_t max_chars, const char *what)
{
	const char *raw = VARDATA_ANY(label);
	int			raw_len = VARSIZE_ANY_EXHDR(label);
	const char *s = pg_server_to_any(raw, raw_len, PG_UTF8);
	size_t		len = (s == raw) ? (size_t) raw_len : strlen(s);
	size_t		bad = 0;
	int			position = 1;

	switch (validate_label(s, len, max_chars, &bad))
	{
		case LABEL_OK:
			break;
		case LABEL_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be empty", what),
					 errhint("Pass NULL for none.")));
			break;
		case LABEL_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is too long: %d characters, the maximum is %zu",
							what, pg_mbstrlen_with_len(raw, raw_len), max_chars)));
			break;
		case LABEL_CONTROL_CHAR:
			/* characters of UTF-8 before it; a C1 control shows as U+0080..U+009F */
			for (size_t i = 0; i < bad; i++)
				position += ((unsigned char) s[i] & 0xC0) != 0x80;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid character \"%s\" at position %d of %s",
							(unsigned char) s[bad] == 0xC2 ?
							psprintf("U+%04X", (unsigned char) s[bad + 1]) :
							psprintf("\\x%02X", (unsigned char) s[bad]),
							position, what),
					 errdetail("Control characters are not allowed.")));
			break;
	}
}

/*
 * meta_check checks a link's owner, title and tags (each may be NULL) and
 * returns the tags to store: each once, in the order first given, from
 * subscript 1; NULL for none (an empty array too).
 */
ArrayType *
meta_check(text *owner, text *title, ArrayType *tags)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			kept = 0;

	if (owner)
		label_check(owner, OWNER_MAX_LENGTH, "owner");
	if (title)
		label_check(title, TITLE_MAX_LENGTH, "title");
	if (tags == NULL)
		return NULL;
	if (ARR_NDIM(tags) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tags must be a one-dimensional array")));
	deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		text	   *tag;
		bool		seen = false;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tags must not contain nulls")));
		tag = DatumGetTextPP(elems[i]);
		label_check(tag, TAG_MAX_LENGTH, psprintf("tag %d", i + 1));
		for (int j = 0; j < kept && !seen; j++)
			seen = DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID,
														elems[j], PointerGetDatum(tag)));
		if (!seen)
			elems[kept++] = PointerGetDatum(tag);
	}
	if (kept > MAX_TAGS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a link has at most %d tags, not %d", MAX_TAGS, kept)));
	/* stored from subscript 1, and no tags as NULL */
	if (kept == 0)
		return NULL;
	return construct_array(elems, kept, TEXTOID, -1, false, TYPALIGN_INT);
}

PG_FUNCTION_INFO_V1(shorturl_check_url);

/*
 * shorturl_check_url implements _check_url(url text) RETURNS text: the URL
 * as shorten() stores it, for update_link() and import_links(), refusing
 * as shorten() does a blocked host or a short domain of this deployment
 */
Datum
shorturl_check_url(PG_FUNCTION_ARGS)
{
	text	   *url = url_check(PG_GETARG_TEXT_PP(0), shorturl_max_url_length,
								shorturl_allow_userinfo);

	blocklist_check_url(url);
	PG_RETURN_TEXT_P(url);
}

PG_FUNCTION_INFO_V1(shorturl_check_meta);

/*
 * shorturl_check_meta implements _check_meta(owner, title, tags) RETURNS
 * text[]: the tags to store, for update_link() and import_links()
 */
Datum
shorturl_check_meta(PG_FUNCTION_ARGS)
{
	ArrayType  *tags;

	tags = meta_check(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
					  PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
					  PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2));
	if (tags == NULL)
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(tags);
}
