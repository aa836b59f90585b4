/*-------------------------------------------------------------------------
 *
 * base62_sql.c
 *	  SQL-callable wrappers around the pure base62 codec in base62.c.
 *
 * The wrappers only move bytes between varlenas and the codec and turn its
 * status codes into ereport() calls with the right SQLSTATE.  Both functions
 * are IMMUTABLE, STRICT and PARALLEL SAFE at the SQL level.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "base62.h"
#include "base62_sql.h"
#include "compat.h"

/* Characters of a value quoted in an error message, at most */
#define MESSAGE_CLIP 40

PG_FUNCTION_INFO_V1(shorturl_base62_encode);
PG_FUNCTION_INFO_V1(shorturl_base62_decode);

/*
 * shorturl_base62_encode implements base62_encode(value bigint,
 * min_width integer DEFAULT 0) RETURNS text.
 */
Datum
shorturl_base62_encode(PG_FUNCTION_ARGS)
{
	int64		value = PG_GETARG_INT64(0);
	int32		min_width = PG_GETARG_INT32(1);
	char		buf[BASE62_MAX_WIDTH];
	size_t		len;

	switch (base62_encode(value, min_width, buf, &len))
	{
		case BASE62_OK:
			break;
		case BASE62_NEGATIVE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("cannot base62-encode negative value " INT64_FORMAT,
							value),
					 errhint("Only values from 0 to 9223372036854775807 can be encoded.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("min_width must be between 0 and %d, not %d",
							BASE62_MAX_WIDTH, min_width)));
			break;
	}

	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf, (int) len));
}

/*
 * shorturl_base62_decode implements base62_decode(code text) RETURNS bigint.
 */
Datum
shorturl_base62_decode(PG_FUNCTION_ARGS)
{
	text	   *code = PG_GETARG_TEXT_PP(0);
	const char *data = VARDATA_ANY(code);
	int			len = VARSIZE_ANY_EXHDR(code);
	int64_t		value = 0;
	size_t		bad = 0;

	switch (base62_decode(data, (size_t) len, &value, &bad))
	{
		case BASE62_OK:
			break;
		case BASE62_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid base62 code: empty string"),
					 errhint("Codes use only 0-9, A-Z and a-z.")));
			break;
		case BASE62_INVALID_DIGIT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid base62 digit \"%s\" at position %d",
							shorturl_describe_char(data + bad, len - (int) bad),
							pg_mbstrlen_with_len(data, (int) bad) + 1),
					 errhint("Codes use only 0-9, A-Z and a-z.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("base62 code \"%s\" is out of range for type bigint",
							shorturl_clip_for_message(data, len)),
					 errdetail("The largest value is 9223372036854775807, which encodes as \"AzL8n0Y58m7\".")));
			break;
	}

	PG_RETURN_INT64(value);
}

/*
 * shorturl_describe_char returns the character at p (at most len bytes) in a
 * form fit for an error message: the whole multibyte character as typed, or
 * a \xNN escape for ASCII control characters, which would otherwise garble
 * the message.
 */
char *
shorturl_describe_char(const char *p, int len)
{
	unsigned char c = (unsigned char) p[0];
	int			clen;

	if (c < 0x20 || c == 0x7f)
		return psprintf("\\x%02X", c);

	clen = pg_mblen(p);
	if (clen > len)
		clen = len;
	return pnstrdup(p, clen);
}

/*
 * shorturl_clip_for_message returns a value fit to quote in an error
 * message: whole if short, else its first MESSAGE_CLIP characters and an
 * ellipsis, so a huge argument cannot make a huge message (or log line).
 */
char *
shorturl_clip_for_message(const char *p, int len)
{
	int			clip = pg_mbcharcliplen(p, len, MESSAGE_CLIP);

	if (clip >= len)
		return pnstrdup(p, len);
	return psprintf("%s...", pnstrdup(p, clip));
}
