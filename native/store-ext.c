/*
 * A connection option of SQLite's that better-sqlite3 does not expose, set on each of svirt's
 * store connections through SQLite's extension entry point: src/store/store.ts has SQLite load
 * this addon's own file as the extension. Node has loaded the addon already, so SQLite's dlopen
 * of it only takes another reference, and the entry uses only the API table SQLite hands it
 * (the addon links no SQLite of its own).
 *
 * SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE: the last connection's close leaves the WAL as it is
 * instead of copying it into svirt.db, syncing both and removing the WAL and its index. A CLI
 * command is nearly always the last connection, so each writing verb paid that, and the next
 * one made the WAL anew (its header and the directory synced): four syncs and two unlinks a
 * command, where its own commit needs one sync of the WAL (src/store/wal-sync.ts does it).
 * The WAL is bounded by the store's wal_autocheckpoint instead (src/store/store.ts).
 */
#include <sqlite3ext.h>

SQLITE_EXTENSION_INIT1

int sqlite3_svirtstore_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
	SQLITE_EXTENSION_INIT2(api);
	(void)err;
	int set = 0;
	int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, &set);
	if (rc != SQLITE_OK)
		return rc;
	return set == 1 ? SQLITE_OK : SQLITE_ERROR;
}
