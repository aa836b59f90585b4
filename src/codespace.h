/*-------------------------------------------------------------------------
 *
 * codespace.h
 *	  Pure layout of the generated-code space: which code a link id gets.
 *
 * Ids are the values of the code sequence.  The space is described by
 * segments, each starting at an id with a width: ids from a segment's
 * first id fill its width's space [0, 62^width) in permuted order, then
 * the next width's, and so on, until the next segment starts at a wider
 * width.  A deployment starts with one segment (0, 7); raising the width
 * later adds a segment at the next unissued id.  Widths only grow, and a
 * new segment's width must exceed every width the ids before it reached,
 * so no two ids ever get the same code.  No PostgreSQL headers, no
 * allocation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_CODESPACE_H
#define SHORTURL_CODESPACE_H

#include <stddef.h>
#include <stdint.h>

#include "permute.h"

/* how many width changes a code space can record */
#define CODESPACE_MAX_SEGMENTS	PERMUTE_MAX_WIDTH

/* the width a new deployment starts with: 62^7 = 3.5 trillion codes */
#define CODESPACE_DEFAULT_WIDTH	7

/* the narrowest width a segment may have */
#define CODESPACE_MIN_WIDTH		4

typedef struct codespace_segment
{
	int64_t		from_id;		/* first id of the segment */
	int			width;			/* the width its ids start at */
} codespace_segment;

typedef struct codespace
{
	codespace_segment seg[CODESPACE_MAX_SEGMENTS];
	int			nseg;
	unsigned char key[PERMUTE_KEY_BYTES];
} codespace;

typedef enum codespace_status
{
	CODESPACE_OK = 0,
	CODESPACE_BAD_ID,			/* a negative id */
	CODESPACE_EXHAUSTED,		/* the id needs a code wider than 10 */
	CODESPACE_OVERRUN,			/* the id reached the next segment's width */
	CODESPACE_BAD_SEGMENTS		/* segments out of order or out of range */
} codespace_status;

/* codespace_check validates the segments of a space */
extern codespace_status codespace_check(const codespace *cs);

/*
 * codespace_width_of gives the width of the code of an id, and its index
 * in that width's space.
 */
extern codespace_status codespace_width_of(const codespace *cs, int64_t id,
										   int *width, uint64_t *index);

/* codespace_encode writes the code of an id: *len characters in out[11] */
extern codespace_status codespace_encode(const codespace *cs, int64_t id,
										 char *out, size_t *len);

/*
 * codespace_decode gives the id whose code the text is, or returns 0 when
 * no id of this space has that code.
 */
extern int	codespace_decode(const codespace *cs, const char *code, size_t len,
							 int64_t *id);

#endif							/* SHORTURL_CODESPACE_H */
