/*-------------------------------------------------------------------------
 *
 * unit.h
 *	  A minimal assertion kit for the pure-core unit tests in test/unit.
 *
 * Each test program counts failed checks and exits non-zero if any failed,
 * printing the file, line and expression of each.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_UNIT_H
#define SHORTURL_UNIT_H

#include <stdio.h>
#include <stdlib.h>

static int	unit_failures = 0;
static int	unit_checks = 0;

#define EXPECT(cond) \
	do { \
		unit_checks++; \
		if (!(cond)) \
		{ \
			unit_failures++; \
			fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

static inline int
unit_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
	return unit_failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif							/* SHORTURL_UNIT_H */
