/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Saved SPI plans, prepared once per backend.
 *
 * Every statement pg_shorturl sends through SPI is a constant string with
 * schema-qualified names and operators, so it is prepared the first time a
 * backend needs it and kept for the backend's life (SPI_keepplan); the
 * plan cache revalidates it after DDL.  Callers keep the plan pointer in a
 * static variable next to the statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "spi_util.h"

/*
 * spi_plan prepares a statement the first time and returns the kept plan.
 */
SPIPlanPtr
spi_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	return *plan;
}

/* spi_run executes a saved plan and checks its result code */
void
spi_run(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only,
		int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
}

/* spi_begin connects to SPI */
void
spi_begin(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* spi_result is column col (from 1) of result row row (from 0) */
Datum
spi_result(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}
