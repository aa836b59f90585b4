/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Version guards: every PostgreSQL API difference between 13 and 18 that
 *	  pg_shorturl touches, in one place.
 *
 * The rest of the code calls the names defined here and never tests
 * PG_VERSION_NUM itself.  15 and 18 are built and tested; 13, 14, 16 and 17
 * are guarded from their sources and release notes but not built here (see
 * the README's "Installing").
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHORTURL_COMPAT_H
#define SHORTURL_COMPAT_H

#include "access/genam.h"
#include "storage/proc.h"
#include "utils/snapshot.h"

#if PG_VERSION_NUM < 130000
#error "pg_shorturl needs PostgreSQL 13 or later"
#endif

/*
 * The varlena macros (VARDATA_ANY and friends) moved to varatt.h in 16,
 * which postgres.h no longer pulls in everywhere from 18.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * The local transaction id of the current backend: PGPROC.lxid until 16,
 * PGPROC.vxid.lxid from 17 (commit 28f3915b73).
 */
#if PG_VERSION_NUM >= 170000
#define compat_my_lxid()	(MyProc->vxid.lxid)
#else
#define compat_my_lxid()	(MyProc->lxid)
#endif

/*
 * index_beginscan gained an IndexScanInstrumentation argument in 18, after
 * the snapshot.
 */
#if PG_VERSION_NUM >= 180000
#define compat_index_beginscan(heap, index, snap, nkeys, norderbys) \
	index_beginscan((heap), (index), (snap), NULL, (nkeys), (norderbys))
#else
#define compat_index_beginscan(heap, index, snap, nkeys, norderbys) \
	index_beginscan((heap), (index), (snap), (nkeys), (norderbys))
#endif

/*
 * How many transactions have ended, as seen by a snapshot: the surest sign
 * that a snapshot is newer than another, from 14 (snapXactCompletionCount).
 * 13 has no such count, so a hot standby on 13 can keep a cached
 * configuration while a long transaction holds back xmin.
 */
#if PG_VERSION_NUM >= 140000
#define compat_snapshot_completions(snap)	((snap)->snapXactCompletionCount)
#else
#define compat_snapshot_completions(snap)	((uint64) 0)
#endif

/*
 * shmem_request_hook exists from 15; before, shared memory is requested
 * directly from _PG_init.
 */
#if PG_VERSION_NUM >= 150000
#define COMPAT_HAS_SHMEM_REQUEST_HOOK 1
#endif

/* reserving the "shorturl." GUC prefix: MarkGUCPrefixReserved from 15 */
#if PG_VERSION_NUM >= 150000
#define compat_reserve_guc_prefix(p)	MarkGUCPrefixReserved(p)
#else
#define compat_reserve_guc_prefix(p)	EmitWarningsOnPlaceholders(p)
#endif

/*
 * A materialized set-returning function: InitMaterializedSRF from 15
 * (SetSingleFuncCall during 15's development); before, by hand.  Defined
 * in catalog.c for the older versions.
 */
#if PG_VERSION_NUM >= 150000
#include "funcapi.h"
#define compat_init_materialized_srf(fcinfo)	InitMaterializedSRF((fcinfo), 0)
#else
struct FunctionCallInfoBaseData;
extern void compat_init_materialized_srf(struct FunctionCallInfoBaseData *fcinfo);
#endif

/*
 * Ownership checks: pg_class_ownercheck and friends became object_ownercheck
 * in 16.
 */
#if PG_VERSION_NUM >= 160000
#define compat_rel_ownercheck(relid, roleid) \
	object_ownercheck(RelationRelationId, (relid), (roleid))
#else
#define compat_rel_ownercheck(relid, roleid)	pg_class_ownercheck((relid), (roleid))
#endif

/*
 * The module magic block: 18 lets a module name itself and its version
 * (shown by pg_get_loaded_modules()).
 */
#if PG_VERSION_NUM >= 180000
#define COMPAT_MODULE_MAGIC(module_name, module_version) \
	PG_MODULE_MAGIC_EXT(.name = module_name, .version = module_version)
#else
#define COMPAT_MODULE_MAGIC(module_name, module_version)	PG_MODULE_MAGIC
#endif

/*
 * The parallel-query debugging setting tests use: force_parallel_mode until
 * 15, debug_parallel_query from 16.  (Used by the test suite only; noted here
 * so the difference is in one list.)
 */

/*
 * The number of a relation's file: RelFileNode.relNode until 15,
 * RelFileLocator.relNumber from 16 (commit b0a55e4329).
 */
#if PG_VERSION_NUM >= 160000
#define compat_rel_filenumber(rel)	((Oid) (rel)->rd_locator.relNumber)
#else
#define compat_rel_filenumber(rel)	((rel)->rd_node.relNode)
#endif

#endif							/* SHORTURL_COMPAT_H */
