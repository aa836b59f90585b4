/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  Saved SPI plans, prepared once per backend, and the arrays their
 *	  batch statements take (spi_util.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_SPI_UTIL_H
#define SHORTURL_SPI_UTIL_H

#include "executor/spi.h"

extern SPIPlanPtr spi_plan(SPIPlanPtr *plan, const char *sql, int nargs,
						   Oid *argtypes);
extern SPIPlanPtr spi_plan_generic(SPIPlanPtr *plan, const char *sql, int nargs,
								   Oid *argtypes);
extern void spi_run(SPIPlanPtr plan, Datum *values, const char *nulls,
					bool read_only, int expected);
extern void spi_begin(void);
extern Datum spi_result(int row, int col, bool *isnull);
extern Datum spi_array(Datum *values, int n, Oid elemtype);

#endif							/* SHORTURL_SPI_UTIL_H */
