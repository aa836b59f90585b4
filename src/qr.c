/*-------------------------------------------------------------------------
 *
 * qr.c
 *	  QR codes of short URLs: shorturl.qr_svg() and shorturl.qr_png().
 *
 * libqrencode builds the symbol (level M, case-sensitive) and libpng
 * compresses the picture; this file draws the modules inside a quiet zone
 * and turns the libraries' failures into ereport() calls.
 *
 * No error may leak what a library allocated:
 * - the QRcode that libqrencode mallocs is copied into a matrix palloc'd
 *   beforehand, and freed before anything can ereport;
 * - libpng allocates with palloc, so an ereport from inside it (out of
 *   memory in the allocator or the write callback) may longjmp through its
 *   frames and leave nothing behind.  libpng's own errors come to
 *   qr_png_error, which keeps the message and longjmps to the setjmp in
 *   shorturl_qr_png, which reports it.  No PG_TRY is needed, and no local
 *   changes between that setjmp and a longjmp, so none must be volatile.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <png.h>
#include <qrencode.h>

#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "compat.h"

/*
 * From ISO/IEC 18004: the blank margin around a symbol, in modules; the
 * modules per side of the largest symbol (version 40: 17 + 4 * 40); what
 * it holds at level M (table 7), in bytes and in digits, the densest mode
 * (longer text is refused before libqrencode sees it).
 */
#define QR_QUIET_ZONE	4
#define QR_MAX_WIDTH	177
#define QR_MAX_BYTES_M	2331
#define QR_MAX_DIGITS_M 5596

/* PNG pixels per module: 32 makes at most 5920 pixels square, enough for print */
#define QR_SCALE_MIN	1
#define QR_SCALE_MAX	32

/* A QR symbol, quiet zone excluded */
typedef struct QrMatrix
{
	int			width;			/* modules per side */
	bool	   *dark;			/* width * width modules, row by row */
} QrMatrix;

/* What libpng's callbacks share, through its io and error pointers */
typedef struct QrPngState
{
	StringInfoData out;			/* the bytea: its header, then the PNG */
	char		message[256];	/* why libpng failed */
} QrPngState;

PG_FUNCTION_INFO_V1(shorturl_qr_svg);
PG_FUNCTION_INFO_V1(shorturl_qr_png);

/*
 * qr_encode fills m with the QR symbol of content (converted to UTF-8, the
 * encoding readers expect of 8-bit data).
 */
static void
qr_encode(text *content, QrMatrix *m)
{
	char	   *utf8;
	size_t		len;
	QRcode	   *code;
	int			i;

	utf8 = text_to_cstring(content);
	utf8 = pg_server_to_any(utf8, strlen(utf8), PG_UTF8);
	len = strlen(utf8);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot make a QR code of an empty string")));

	m->dark = palloc(QR_MAX_WIDTH * QR_MAX_WIDTH * sizeof(bool));
	/*
	 * Version 0: the smallest symbol that fits.  QR_MODE_8: bytes that are
	 * not alphanumeric go as they are (not read as Shift-JIS kanji).
	 */
	errno = 0;
	code = len > QR_MAX_DIGITS_M ? NULL :
		QRcode_encodeString(utf8, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (code == NULL)
	{
		if (len > QR_MAX_DIGITS_M || errno == ERANGE)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("text is too long for a QR code"),
					 errdetail("The text is %zu bytes long in UTF-8; a QR code at error correction level M holds %d bytes of any text, and up to %d when it is all digits.",
							   len, QR_MAX_BYTES_M, QR_MAX_DIGITS_M),
					 errhint("Encode the short URL, not the URL it stands for.")));
		if (errno == ENOMEM)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("libqrencode could not allocate memory.")));
		elog(ERROR, "libqrencode could not encode the text: %m");
	}

	/* Copy the modules (bit 0 of each byte: dark), then free before any error */
	m->width = code->width;
	if (m->width <= QR_MAX_WIDTH)
		for (i = 0; i < m->width * m->width; i++)
			m->dark[i] = (code->data[i] & 1) != 0;
	QRcode_free(code);
	if (m->width > QR_MAX_WIDTH)
		elog(ERROR, "libqrencode returned a QR code %d modules wide", m->width);
}

/*
 * shorturl_qr_svg implements qr_svg(content text) RETURNS text: one path of
 * the dark modules, a horizontal run per subpath, on a white square, one
 * user unit per module.
 */
Datum
shorturl_qr_svg(PG_FUNCTION_ARGS)
{
	QrMatrix	m;
	StringInfoData svg;
	int			side;
	int			x;
	int			y;
	int			run;

	qr_encode(PG_GETARG_TEXT_PP(0), &m);
	side = m.width + 2 * QR_QUIET_ZONE; /* at most 185: qr_encode checked */
	initStringInfo(&svg);
	appendStringInfo(&svg,
					 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
					 "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">"
					 "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
					 side, side, side, side);
	for (y = 0; y < m.width; y++)
	{
		/* a run of dark modules (maybe none), then the light one after it */
		for (x = 0; x < m.width; x += run + 1)
		{
			for (run = 0; x + run < m.width && m.dark[y * m.width + x + run]; run++)
				;
			if (run > 0)
				appendStringInfo(&svg, "M%d %dh%dv1h-%dz",
								 x + QR_QUIET_ZONE, y + QR_QUIET_ZONE, run, run);
		}
	}
	appendStringInfoString(&svg, "\"/></svg>\n");

	PG_RETURN_TEXT_P(cstring_to_text_with_len(svg.data, svg.len));
}

/*
 * libpng's callbacks: write appends to the bytea, flush has nothing to do,
 * error keeps the message and jumps back to shorturl_qr_png, warning only
 * logs (nothing we write should warn), and memory comes from palloc.
 */
static void
qr_png_write_data(png_structp png, png_bytep data, size_t len)
{
	QrPngState *state = (QrPngState *) png_get_io_ptr(png);

	appendBinaryStringInfo(&state->out, (const char *) data, (int) len);
}

static void
qr_png_flush(png_structp png)
{
	(void) png;
}

static void
qr_png_error(png_structp png, png_const_charp message)
{
	QrPngState *state = (QrPngState *) png_get_error_ptr(png);

	strlcpy(state->message, message, sizeof(state->message));
	png_longjmp(png, 1);
}

static void
qr_png_warning(png_structp png, png_const_charp message)
{
	(void) png;
	elog(DEBUG1, "libpng warning: %s", message);
}

static png_voidp
qr_png_malloc(png_structp png, png_alloc_size_t size)
{
	(void) png;
	return palloc(size);
}

static void
qr_png_free(png_structp png, png_voidp p)
{
	(void) png;
	pfree(p);					/* libpng never frees NULL */
}

/*
 * qr_png_draw writes m as a 1-bit grayscale PNG (0 is black, 1 white),
 * side pixels square at scale pixels per module.
 */
static void
qr_png_draw(png_structp png, png_infop info, const QrMatrix *m, int scale,
			int side)
{
	size_t		row_bytes = ((size_t) side + 7) / 8;
	png_bytep	row = palloc(row_bytes);
	int			my;
	int			mx;
	int			x;
	int			i;

	png_set_IHDR(png, info, side, side, 1, PNG_COLOR_TYPE_GRAY,
				 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
				 PNG_FILTER_TYPE_DEFAULT);
	/* row filters do not pay at one bit per pixel (the PNG specification) */
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
	png_write_info(png, info);

	/* each row of modules, quiet zone included, is scale rows of pixels */
	for (my = -QR_QUIET_ZONE; my < m->width + QR_QUIET_ZONE; my++)
	{
		memset(row, 0xFF, row_bytes);
		if (my >= 0 && my < m->width)
		{
			for (mx = 0; mx < m->width; mx++)
			{
				if (!m->dark[my * m->width + mx])
					continue;
				for (x = (mx + QR_QUIET_ZONE) * scale;
					 x < (mx + QR_QUIET_ZONE + 1) * scale; x++)
					row[x / 8] &= ~(0x80 >> (x % 8));
			}
		}
		for (i = 0; i < scale; i++)
			png_write_row(png, row);
	}
	png_write_end(png, info);
}

/*
 * shorturl_qr_png implements qr_png(content text, scale integer DEFAULT 4)
 * RETURNS bytea.
 */
Datum
shorturl_qr_png(PG_FUNCTION_ARGS)
{
	text	   *content = PG_GETARG_TEXT_PP(0);
	int32		scale = PG_GETARG_INT32(1);
	QrMatrix	m;
	int			side;
	QrPngState *state;
	png_structp png;
	png_infop	info;

	if (scale < QR_SCALE_MIN || scale > QR_SCALE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("scale must be between %d and %d, not %d",
						QR_SCALE_MIN, QR_SCALE_MAX, scale)));
	qr_encode(content, &m);
	if (pg_mul_s32_overflow(m.width + 2 * QR_QUIET_ZONE, scale, &side))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("QR code image would be too large")));

	/* the PNG goes right after the room for the bytea's header */
	state = palloc0(sizeof(QrPngState));
	initStringInfo(&state->out);
	appendStringInfoSpaces(&state->out, VARHDRSZ);

	/* NULL only when the libpng loaded is not the one built against */
	png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING,
									state, qr_png_error, qr_png_warning,
									NULL, qr_png_malloc, qr_png_free);
	info = png == NULL ? NULL : png_create_info_struct(png);
	if (info == NULL)
		elog(ERROR, "could not start writing a PNG with libpng %s",
			 png_get_libpng_ver(NULL));
	png_set_write_fn(png, state, qr_png_write_data, qr_png_flush);

	if (setjmp(png_jmpbuf(png)))
	{
		/* qr_png_error kept the message and jumped here */
		png_destroy_write_struct(&png, &info);
		elog(ERROR, "libpng could not write the QR code: %s", state->message);
	}
	qr_png_draw(png, info, &m, scale, side);
	png_destroy_write_struct(&png, &info);

	SET_VARSIZE(state->out.data, state->out.len);
	PG_RETURN_BYTEA_P((bytea *) state->out.data);
}
