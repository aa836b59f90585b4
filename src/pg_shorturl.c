/*-------------------------------------------------------------------------
 *
 * pg_shorturl.c
 *	  Module entry point of pg_shorturl: the magic block and _PG_init.
 *
 * Everything that must happen once per process when the library is loaded
 * (defining GUCs, installing hooks, registering the background worker when
 * preloaded) starts here and is delegated to the file that owns it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "pg_shorturl.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init runs when a backend (or, with shared_preload_libraries, the
 * postmaster) loads the library.
 */
void
_PG_init(void)
{
	routing_init();
}
