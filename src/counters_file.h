/*-------------------------------------------------------------------------
 *
 * counters_file.h
 *	  The file that keeps the click counters' pending clicks across a clean
 *	  restart (counters_file.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_COUNTERS_FILE_H
#define SHORTURL_COUNTERS_FILE_H

extern void counters_file_load(void);
extern void counters_file_save(int code, Datum arg);

#endif							/* SHORTURL_COUNTERS_FILE_H */
