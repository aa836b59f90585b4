/*-------------------------------------------------------------------------
 *
 * counters_file.c
 *	  The file that carries the click counters' pending clicks across a
 *	  clean restart.
 *
 * At a clean shutdown the postmaster, after every other process has
 * exited, writes the entries with pending clicks to a file, and then the
 * unflushed dimension values and visitors (analytics.c), and the next
 * start reads them back, as pg_stat_statements does with its statistics.
 * The file says which data it belongs to (system identifier, shutdown
 * checkpoint, data directory's inode, PostgreSQL version, layout) and is
 * removed before its contents are used, so its clicks are restored at most
 * once in the history of the data: never after a crash, never on a server
 * in recovery (a standby made from a cold copy), never on a copy of the
 * data directory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/transam.h"
#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"
#include "storage/fd.h"

#include "analytics.h"
#include "counters.h"
#include "counters_file.h"

/* Where a clean shutdown leaves the pending clicks for the next start */
#define DUMP_FILE		"pg_stat/pg_shorturl_counters.stat"
#define DUMP_MAGIC		0x53555244	/* "SURD" */
#define DUMP_VERSION	5
/* libraries from 0.8 to this one's previous build wrote version 4: no analytics section */
#define DUMP_VERSION_V4 4
/* 0.7 wrote version 3: the records without the fields from pending_bots on */
#define DUMP_VERSION_V3 3

/* What the dump file says about itself */
typedef struct dump_header
{
	uint32		magic;
	uint32		version;
	uint32		pg_major;		/* PG_VERSION_NUM / 100 */
	uint32		record_size;	/* sizeof(dump_record): the layout */
	uint64		system_identifier;
	XLogRecPtr	checkpoint;		/* the shutdown checkpoint it was made at */
	/* not the device number: it can change across a reboot */
	uint64		datadir_ino;
	uint64		count;
} dump_header;

typedef struct dump_record
{
	Oid			dbid;
	Oid			relid;
	bool		limited;
	int64		link_id;
	int64		pending;
	int64		total;
	TimestampTz last_visit;
	TimestampTz exhausted_at;
	/* since version 4 */
	int64		pending_bots;
	uint64		first_hour;
} dump_record;

#define DUMP_RECORD_V3_SIZE offsetof(dump_record, pending_bots)

/* discard_dump removes the dump file; false if it could not */
static bool
discard_dump(void)
{
	if (unlink(DUMP_FILE) != 0 && errno != ENOENT)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", DUMP_FILE)));
		return false;
	}
	fsync_fname("pg_stat", true);
	return true;
}

/*
 * dump_belongs_here tells whether a dump file's header matches this data
 * directory as the last clean shutdown left it.
 */
static bool
dump_belongs_here(const dump_header *h, const char **why)
{
	bool		crc_ok;
	ControlFileData *control = get_controlfile(DataDir, &crc_ok);
	struct stat st;
	bool		ok = false;

	if (!crc_ok)
		*why = "the control file is damaged";
	else if (h->magic != DUMP_MAGIC ||
			 !(((h->version == DUMP_VERSION || h->version == DUMP_VERSION_V4) &&
				h->record_size == sizeof(dump_record)) ||
			   (h->version == DUMP_VERSION_V3 && h->record_size == DUMP_RECORD_V3_SIZE)))
		*why = "it was written by another version of pg_shorturl";
	else if (h->pg_major != PG_VERSION_NUM / 100)
		*why = "it was written by another major version of PostgreSQL";
	else if (h->system_identifier != control->system_identifier)
		*why = "it belongs to another database system";
	else if (control->state != DB_SHUTDOWNED &&
			 control->state != DB_SHUTDOWNED_IN_RECOVERY)
		*why = "the server did not shut down cleanly";
	else if (h->checkpoint != control->checkPoint)
		*why = "the data changed after it was written";
	else if (stat(DataDir, &st) != 0 || (uint64) st.st_ino != h->datadir_ino)
		*why = "the data directory is a copy";
	else if (control->state == DB_SHUTDOWNED &&
			 (access(STANDBY_SIGNAL_FILE, F_OK) == 0 ||
			  access(RECOVERY_SIGNAL_FILE, F_OK) == 0))
		*why = "the server starts in recovery";
	else
		ok = true;
	pfree(control);
	return ok;
}

/*
 * counters_file_load reads the pending clicks a clean shutdown left, into
 * the table just created (postmaster, before any other process starts).
 * The file goes first: if it cannot be removed, nothing is loaded, so
 * nothing can be loaded twice.
 */
void
counters_file_load(void)
{
	FILE	   *file = AllocateFile(DUMP_FILE, PG_BINARY_R);
	dump_header h;
	const char *why = NULL;
	dump_record *records;
	int64		loaded = 0;
	uint64		lost = 0;
	analytics_saved *saved = NULL;

	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", DUMP_FILE)));
		return;
	}
	if (fread(&h, sizeof(h), 1, file) != 1)
	{
		why = "it is truncated";
		h.count = 0;
	}
	else if (!dump_belongs_here(&h, &why))
		h.count = 0;
	else if (h.count > counters_capacity())
		why = "it holds more entries than the table";

	records = (why == NULL && h.count > 0) ? palloc0(h.count * sizeof(dump_record)) : NULL;
	for (uint64 i = 0; records != NULL && why == NULL && i < h.count; i++)
	{
		/* a version 3 record is a prefix of ours */
		if (fread(&records[i], h.record_size, 1, file) != 1)
			why = "it is truncated";
	}
	/* since version 5, the analytics, read whole or not at all */
	if (why == NULL && h.version == DUMP_VERSION)
		saved = analytics_file_read(file, &why);
	FreeFile(file);

	if (!discard_dump())
		why = "it could not be removed";
	if (why != NULL)
	{
		ereport(LOG,
				(errmsg("pg_shorturl: not restoring unflushed visits from \"%s\": %s",
						DUMP_FILE, why)));
		return;
	}

	for (uint64 i = 0; i < h.count; i++)
	{
		counter_key key;
		uint32		hash;
		bool		found;
		counter_entry *e;

		counters_make_key(&key, records[i].dbid, records[i].relid, records[i].link_id);
		hash = counters_hash(&key);
		e = counters_enter(&key, hash, &found);
		if (e == NULL)
		{
			lost += (uint64) records[i].pending;
			continue;
		}
		e->limited = records[i].limited;
		e->total = records[i].total;
		e->exhausted_at = records[i].exhausted_at;
		pg_atomic_write_u64(&e->pending, (uint64) records[i].pending);
		pg_atomic_write_u64(&e->pending_bots, (uint64) Max(records[i].pending_bots, 0));
		pg_atomic_write_u64(&e->first_hour, records[i].first_hour);
		pg_atomic_write_u64(&e->last_visit, (uint64) records[i].last_visit);
		loaded += records[i].pending;
	}
	if (records)
		pfree(records);
	if (lost > 0)
		ereport(LOG,
				(errmsg("pg_shorturl: shorturl.max_pending_links is too small to restore every saved counter; " UINT64_FORMAT " visits are lost",
						lost)));
	if (loaded > 0)
		ereport(LOG,
				(errmsg("pg_shorturl: restored " INT64_FORMAT " unflushed visits saved at shutdown",
						loaded)));
	if (saved != NULL)
		analytics_file_restore(saved);
}

/* What a walk over the table before saving learns */
typedef struct save_census
{
	uint64		entries;		/* entries with pending clicks */
	bool		interrupted;	/* an entry has clicks in flight */
	int64		unsettled;		/* a standby's clicks shipped, not acknowledged */
} save_census;

static bool
census_visit(counter_entry *e, void *arg)
{
	save_census *c = arg;

	if (e->inflight != 0 && TransactionIdIsValid(e->flush_xid))
	{
		c->interrupted = true;
		return false;
	}
	/* a standby's batch (ship.c): the primary may have applied it */
	c->unsettled += e->inflight;
	if (pg_atomic_read_u64(&e->pending) > 0)
		c->entries++;
	return true;
}

/* A walk that writes the entries with pending clicks */
typedef struct save_writer
{
	FILE	   *file;
	bool		failed;
} save_writer;

static bool
write_visit(counter_entry *e, void *arg)
{
	save_writer *w = arg;
	dump_record r;

	if (pg_atomic_read_u64(&e->pending) == 0)
		return true;
	memset(&r, 0, sizeof(r));
	r.dbid = e->key.dbid;
	r.relid = e->key.relid;
	r.link_id = e->key.link_id;
	r.limited = e->limited;
	r.pending = (int64) pg_atomic_read_u64(&e->pending);
	r.pending_bots = (int64) pg_atomic_read_u64(&e->pending_bots);
	r.first_hour = pg_atomic_read_u64(&e->first_hour);
	r.total = e->total;
	r.last_visit = (TimestampTz) pg_atomic_read_u64(&e->last_visit);
	r.exhausted_at = e->exhausted_at;
	if (fwrite(&r, sizeof(r), 1, w->file) != 1)
	{
		w->failed = true;
		return false;
	}
	return true;
}

/*
 * counters_file_save runs in the postmaster when it exits, after all other
 * processes are gone and the shutdown checkpoint is written (so it takes
 * no lock).  It saves pending clicks unless the exit is a crash (shared
 * memory may be inconsistent) or a flush was caught between its commit and
 * its settlement (its clicks would be counted twice).
 */
void
counters_file_save(int code, Datum arg pg_attribute_unused())
{
	const char *tmp = DUMP_FILE ".tmp";
	FILE	   *file = NULL;
	dump_header h;
	bool		crc_ok;
	ControlFileData *control;
	struct stat st;
	save_census census = {0, false, 0};
	save_writer writer = {NULL, false};

	if (code != 0 || !counters_available())
		return;
	for (int p = 0; p < counters_partitions() && !census.interrupted; p++)
		counters_scan(p, census_visit, &census);
	if (census.interrupted)
	{
		ereport(LOG,
				(errmsg("pg_shorturl: not saving unflushed visits: a flush was interrupted")));
		return;
	}
	if (census.unsettled > 0)
		ereport(LOG,
				(errmsg("pg_shorturl: not saving " INT64_FORMAT " visits shipped to the primary and not acknowledged: it may have applied them",
						census.unsettled)));
	if (census.entries == 0 && analytics_unsaved() == 0)
		return;

	control = get_controlfile(DataDir, &crc_ok);
	if (!crc_ok || stat(DataDir, &st) != 0 ||
		(control->state != DB_SHUTDOWNED && control->state != DB_SHUTDOWNED_IN_RECOVERY))
	{
		ereport(LOG,
				(errmsg("pg_shorturl: not saving unflushed visits: the server did not shut down cleanly")));
		return;
	}
	memset(&h, 0, sizeof(h));
	h.magic = DUMP_MAGIC;
	h.version = DUMP_VERSION;
	h.pg_major = PG_VERSION_NUM / 100;
	h.record_size = sizeof(dump_record);
	h.system_identifier = control->system_identifier;
	h.checkpoint = control->checkPoint;
	h.datadir_ino = (uint64) st.st_ino;
	h.count = census.entries;
	pfree(control);

	file = AllocateFile(tmp, PG_BINARY_W);
	if (file == NULL || fwrite(&h, sizeof(h), 1, file) != 1)
		goto error;
	writer.file = file;
	for (int p = 0; p < counters_partitions() && !writer.failed; p++)
		counters_scan(p, write_visit, &writer);
	if (writer.failed || !analytics_file_write(file))
		goto error;
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(tmp, DUMP_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", tmp)));
	if (file)
		FreeFile(file);
	unlink(tmp);
}
