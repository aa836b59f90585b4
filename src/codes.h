/*-------------------------------------------------------------------------
 *
 * codes.h
 *	  Generated codes: the code key and width segments (cached per backend),
 *	  and turning link ids into codes and back (codes.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_CODES_H
#define SHORTURL_CODES_H

#include "codespace.h"

extern void codes_init(void);
extern const codespace *codes_space(bool create);
extern void codes_lock_space(void);
extern text *codes_encode(const codespace *cs, int64 id);
extern bool codes_decode(const char *code, int len, int64 *id);
extern bool codes_last_issued(int64 *id);

#endif							/* SHORTURL_CODES_H */
