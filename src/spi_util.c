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

#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "spi_util.h"

/* prepare_kept prepares a statement once, with cursor options, and keeps it */
static SPIPlanPtr
prepare_kept(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes, int options)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, argtypes, options);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	return *plan;
}

/*
 * spi_plan prepares a statement the first time and returns the kept plan.
 */
SPIPlanPtr
spi_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept(plan, sql, nargs, argtypes, 0);
}

/*
 * spi_plan_generic is spi_plan for a statement that joins a table with the
 * rows of array arguments (unnest), a batch of scattered keys: it always
 * runs the generic plan, which probes the table's index once per row.  A
 * custom plan sees the arrays' real length and may prefer a merge join,
 * which reads the whole index from its start: for a flush of 10,000
 * scattered links among a million, that made it 3.5 times slower.
 */
SPIPlanPtr
spi_plan_generic(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept(plan, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
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

/*
 * spi_array builds the array parameter of a batch statement (unnest($1))
 * from n values of a built-in element type.
 */
Datum
spi_array(Datum *values, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(values, n, elemtype, typlen, typbyval, typalign));
}
