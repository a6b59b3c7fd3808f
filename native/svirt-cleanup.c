/*
 * svirt-cleanup: the per-guest monitor's hook when the guest's cleanup is only its files'
 * owners, its cgroup and its record (issue 17: a cleanup without a Node start). For that one
 * guest it does what `svirt reconcile` does (src/lifecycle/stop.ts cleanup()), and in every
 * other case it runs FALLBACK, the full cleanup (node bin/svirt-hook.js), before it has
 * changed anything:
 *
 *   svirt-cleanup --state-dir DIR --runtime-root DIR --uuid UUID -- FALLBACK [ARGS...]
 *   svirt-cleanup --schema     the store schema fingerprint this file was written for
 *
 * It takes the guest only when, in the transaction that claims its record:
 *   - the store's schema is the one this file was written for (PRAGMA user_version);
 *   - the record is 'running' with no operation pending and no helper process, and its QEMU
 *     (pid + start time) is gone;
 *   - its stack is made of dac, landlock and none (landlock and none restore nothing);
 *   - every owner the guest holds in the store is a dac owner of one of its resources, or the
 *     ACL entry a KVM guest's uid has on /dev/kvm;
 *   - no resource is a chardev, TPM state, helper log or shared dir, the live XML has no
 *     <tpm>, no tap is recorded, and no console lock of the guest exists.
 * A record a live svirt process is starting or stopping (destroy, shutdown) is that process's
 * to clean up: svirt-cleanup then does nothing, and starts no Node either.
 * svirt start picks this hook only for such guests (src/lifecycle/cleanup-hook.ts); the
 * checks here are made again because a guest changes while it runs.
 *
 * Then, as cleanup() does: every resource is reopened by path with no symlink on the way and
 * must be the file labelled (device + inode), else it is reported and forgotten, not touched;
 * the owners are given back, last resource first, each with its journal entry in one
 * transaction; the cgroup goes; the runtime dir goes (no link followed, bounded); the
 * reservations, their host-wide claims (src/store/host-claims.ts) and the record go; the
 * monitor socket goes. A failure after the claim leaves the record to the next reconcile (no
 * owner, as Store.abandon does) and FALLBACK runs at once: it retries and reports.
 * SVIRT_DEBUG=1 says on stderr why a guest went to FALLBACK.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup-fs.h"
#include "json.h"
#include "open-path.h"
#include "proc-stat.h"

/* src/store/store.ts SCHEMA_FINGERPRINT when this file was last checked against the schema
 * and cleanup(); test/native/svirt-cleanup.test.ts fails when they differ. */
#define SCHEMA_FINGERPRINT 60629155

#define KVM_DEVICE "/dev/kvm"
#define MAX_RESOURCES 512
#define RESOURCE_VALUES 16384
#define MAX_TEXT (1 << 20)
#define ERR_MAX 1024

enum outcome { CLEANED, NOT_MINE, FAILED };
enum handle_state { OPENED, GONE, CHANGED, UNOPENED };

struct resource {
	const char *path;
	const char *role;
	int has_ident;
	int64_t dev, ino;
	enum handle_state state;
	int fd;
	int open_errno;
};

struct guest {
	const char *uuid;
	char *name, *runtime_dir, *qmp_path, *resources_text;
	int has_dac;
	int kvm; /* it holds an ACL entry on /dev/kvm (dac, a KVM guest) */
	char real_state_dir[PATH_MAX]; /* what its host-wide label claims name; empty when unknown */
	struct resource res[MAX_RESOURCES];
	int nres;
};

static sqlite3 *db;
static char why[ERR_MAX];
static struct json_value pool[RESOURCE_VALUES];

static enum outcome not_mine(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static enum outcome not_mine(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return NOT_MINE;
}

static int db_error(const char *what)
{
	snprintf(why, sizeof why, "%s: %s", what, sqlite3_errmsg(db));
	return -1;
}

/* A prepared statement with its arguments bound: 't' a string (NULL for SQL NULL), 'i' an int64. */
static sqlite3_stmt *vquery(const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_error("prepare");
		return NULL;
	}
	int rc = SQLITE_OK;
	for (int i = 0; types[i] != '\0' && rc == SQLITE_OK; i++) {
		if (types[i] == 't') {
			const char *v = va_arg(ap, const char *);
			rc = v == NULL ? sqlite3_bind_null(s, i + 1) : sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT);
		} else {
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, long long));
		}
	}
	if (rc != SQLITE_OK) {
		db_error("bind");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

static sqlite3_stmt *query(const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *s = vquery(sql, types, ap);
	va_end(ap);
	return s;
}

/* Runs a statement that returns no row; the number of rows it changed, or -1. */
static int run(const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *s = vquery(sql, types, ap);
	va_end(ap);
	if (s == NULL)
		return -1;
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? sqlite3_changes(db) : db_error(sql);
}

static char *column_copy(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t == NULL ? NULL : strdup((const char *)t);
}

static int role_is_plain(const char *role)
{
	static const char *const plain[] = { "disk",	"disk-readonly", "disk-shareable", "backing",	  "kernel",
					     "initrd", "dtb",		"loader",	  "nvram",	  "log",
					     "runtime-dir", "saved-state", NULL };
	for (const char *const *p = plain; *p != NULL; p++)
		if (strcmp(role, *p) == 0)
			return 1;
	return 0;
}

/* The record's resources (src/store/resources.ts toStored), parsed in place. */
static enum outcome parse_resources(struct guest *g)
{
	struct json_doc doc = { pool, RESOURCE_VALUES, 0, "" };
	int root = json_parse(&doc, g->resources_text, strlen(g->resources_text));
	if (root < 0 || pool[root].type != JSON_ARRAY)
		return not_mine("its resources do not parse: %s", doc.error);
	if (pool[root].count > MAX_RESOURCES)
		return not_mine("more than %d resources", MAX_RESOURCES);
	for (int e = pool[root].first; e >= 0; e = pool[e].next) {
		struct resource *r = &g->res[g->nres++];
		memset(r, 0, sizeof *r);
		r->fd = -1;
		int path = pool[e].type == JSON_OBJECT ? json_member(&doc, e, "path") : -1;
		int role = pool[e].type == JSON_OBJECT ? json_member(&doc, e, "role") : -1;
		if (path < 0 || role < 0 || pool[path].type != JSON_STRING || pool[role].type != JSON_STRING ||
		    pool[path].str[0] != '/')
			return not_mine("a resource without an absolute path and a role");
		r->path = pool[path].str;
		r->role = pool[role].str;
		if (!role_is_plain(r->role))
			return not_mine("a resource of role %s (%s) has more to clean up", r->role, r->path);
		int ident = json_member(&doc, e, "ident");
		if (ident >= 0) {
			int dev = pool[ident].type == JSON_OBJECT ? json_member(&doc, ident, "dev") : -1;
			int ino = pool[ident].type == JSON_OBJECT ? json_member(&doc, ident, "ino") : -1;
			if (dev < 0 || ino < 0 || pool[dev].type != JSON_INT || pool[ino].type != JSON_INT)
				return not_mine("a resource identity that is not a device and an inode");
			r->has_ident = 1;
			r->dev = pool[dev].num;
			r->ino = pool[ino].num;
		}
	}
	return CLEANED;
}

/* The stack is made of dac, landlock and none (text is parsed in place); *dac: it has dac. */
static int stack_is_plain(char *text, int *dac)
{
	struct json_value vals[16];
	struct json_doc doc = { vals, 16, 0, "" };
	int root = json_parse(&doc, text, strlen(text));
	if (root < 0 || vals[root].type != JSON_ARRAY)
		return 0;
	*dac = 0;
	for (int e = vals[root].first; e >= 0; e = vals[e].next) {
		if (vals[e].type != JSON_STRING ||
		    (strcmp(vals[e].str, "dac") != 0 && strcmp(vals[e].str, "landlock") != 0 && strcmp(vals[e].str, "none") != 0))
			return 0;
		*dac |= strcmp(vals[e].str, "dac") == 0;
	}
	return 1;
}

static int has_resource(const struct guest *g, const char *path)
{
	for (int i = 0; i < g->nres; i++)
		if (strcmp(g->res[i].path, path) == 0)
			return 1;
	return 0;
}

/* Every remembered owner the guest holds is a dac owner of one of its resources, or its
 * /dev/kvm ACL entry. */
static enum outcome remembered_are_plain(struct guest *g)
{
	sqlite3_stmt *s = query("SELECT driver, path FROM remembered_users WHERE uuid = ?", "t", g->uuid);
	if (s == NULL)
		return FAILED;
	int rc = SQLITE_DONE;
	enum outcome o = CLEANED;
	while (o == CLEANED && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *driver = (const char *)sqlite3_column_text(s, 0);
		const char *path = (const char *)sqlite3_column_text(s, 1);
		int kvm = path != NULL && strcmp(path, KVM_DEVICE) == 0;
		if (driver == NULL || path == NULL || strcmp(driver, "dac") != 0 || !g->has_dac || (!kvm && !has_resource(g, path)))
			o = not_mine("it holds a %s label of %s", driver ? driver : "?", path ? path : "?");
		g->kvm |= kvm;
	}
	if (o == CLEANED && rc != SQLITE_DONE) {
		db_error("remembered_users");
		o = FAILED;
	}
	sqlite3_finalize(s);
	return o;
}

/* A console session lock of the guest (RUNTIME_ROOT/monitor/UUID.*.console): the full cleanup
 * decides whether its holder lives. */
static int has_console_lock(const char *runtime_root, const char *uuid)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/monitor", runtime_root);
	int at = open_path_nofollow(path);
	if (at < 0)
		return errno != ENOENT; /* none, or (unsure) one may be there */
	int fd = openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(at);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return 1;
	}
	size_t u = strlen(uuid);
	int found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		/* as console-session.ts: starts with "UUID." and ends with ".console" */
		found = n >= u + 8 && strncmp(e->d_name, uuid, u) == 0 && e->d_name[u] == '.' &&
			strcmp(e->d_name + n - 8, ".console") == 0;
	}
	closedir(d);
	return found;
}

/*
 * Whether the row's state (column `state`) is not 'running' and its owner (columns `owner`,
 * `owner` + 1: pid, start time) is a live process: a live svirt is starting or stopping it
 * (destroy, shutdown), and the cleanup is its own. Says why when so.
 */
static int owned_by_live(sqlite3_stmt *s, int state_col, int owner_col)
{
	const char *state = (const char *)sqlite3_column_text(s, state_col);
	long long owner = sqlite3_column_int64(s, owner_col);
	if (state == NULL || strcmp(state, "running") == 0 || sqlite3_column_type(s, owner_col) == SQLITE_NULL ||
	    sqlite3_column_type(s, owner_col + 1) == SQLITE_NULL ||
	    proc_start_time(owner) != sqlite3_column_int64(s, owner_col + 1))
		return 0;
	snprintf(why, sizeof why, "it is %s, owned by the live process %lld: nothing to do", state, owner);
	return 1;
}

/*
 * Whether there is nothing to do, learnt in one SELECT (a read transaction of its own): no record (its stop already
 * cleaned up), or one a live svirt owns. A destroy's QEMU exits while the destroying svirt
 * cleans up, so this hook runs beside it each time; a read takes no write lock, so that svirt's
 * transactions never wait for this one (SQLite's busy wait sleeps 1 ms and more: a write-locked
 * check cost every destroy such a sleep). Anything else goes on to the claim, which checks again.
 */
static int nothing_to_do(const struct guest *g)
{
	sqlite3_stmt *s = query("SELECT state, owner_pid, owner_start FROM running WHERE uuid = ?", "t", g->uuid);
	int rc = s != NULL ? sqlite3_step(s) : SQLITE_ERROR;
	int nothing = rc == SQLITE_DONE || (rc == SQLITE_ROW && owned_by_live(s, 0, 1));
	sqlite3_finalize(s); /* the statement's own read transaction ends here */
	return nothing;
}

/* In the claiming transaction: reads the record and claims it when it is this program's. */
static enum outcome claim_in_tx(struct guest *g, const char *runtime_root, int *found)
{
	sqlite3_stmt *s = query("SELECT name, state, pid, pid_start, pending, helpers, stack, resources, runtime_dir, "
				"qmp_path, instr(live_xml, '<tpm'), owner_pid, owner_start FROM running WHERE uuid = ?",
				"t", g->uuid);
	if (s == NULL)
		return FAILED;
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? CLEANED : (db_error("running"), FAILED);
	}
	*found = 1;
	const char *state = (const char *)sqlite3_column_text(s, 1);
	const char *helpers = (const char *)sqlite3_column_text(s, 5);
	const char *child = getenv("SVIRT_CHILD_PID");
	long long pid = sqlite3_column_int64(s, 2);
	if (owned_by_live(s, 1, 11)) {
		*found = 0;
		sqlite3_finalize(s);
		return CLEANED;
	}
	enum outcome o = CLEANED;
	if (state == NULL || strcmp(state, "running") != 0)
		o = not_mine("it is %s and its owner is gone", state ? state : "?");
	else if (sqlite3_column_type(s, 4) != SQLITE_NULL)
		o = not_mine("an operation on it is pending");
	else if (helpers != NULL && strcmp(helpers, "[]") != 0)
		o = not_mine("it has helper processes");
	else if (sqlite3_column_type(s, 2) == SQLITE_NULL || sqlite3_column_type(s, 3) == SQLITE_NULL)
		o = not_mine("its record has no QEMU pid");
	else if (proc_start_time(pid) == sqlite3_column_int64(s, 3))
		o = not_mine("its QEMU (pid %lld) still runs", pid);
	else if (child != NULL && atoll(child) != pid)
		o = not_mine("the monitor's child %s is not its QEMU (pid %lld)", child, pid);
	else if (sqlite3_column_int64(s, 10) != 0)
		o = not_mine("it has a TPM");
	else if (sqlite3_column_bytes(s, 7) > MAX_TEXT)
		o = not_mine("its resources are larger than %d bytes", MAX_TEXT);
	if (o == CLEANED) {
		char *stack = column_copy(s, 6);
		g->name = column_copy(s, 0);
		g->resources_text = column_copy(s, 7);
		g->runtime_dir = column_copy(s, 8);
		g->qmp_path = column_copy(s, 9);
		if (stack == NULL || g->name == NULL || g->resources_text == NULL || g->runtime_dir == NULL || g->qmp_path == NULL)
			o = not_mine("its record is incomplete");
		else if (!stack_is_plain(stack, &g->has_dac))
			o = not_mine("its stack restores more than owners");
		free(stack);
	}
	sqlite3_finalize(s);
	if (o == CLEANED)
		o = parse_resources(g);
	if (o == CLEANED) {
		s = query("SELECT count(*) FROM guest_taps WHERE uuid = ?", "t", g->uuid);
		if (s == NULL || sqlite3_step(s) != SQLITE_ROW)
			o = (db_error("guest_taps"), FAILED);
		else if (sqlite3_column_int64(s, 0) > 0)
			o = not_mine("it has taps");
		sqlite3_finalize(s);
	}
	if (o == CLEANED)
		o = remembered_are_plain(g);
	if (o == CLEANED && has_console_lock(runtime_root, g->uuid))
		o = not_mine("a console session lock of it exists");
	if (o != CLEANED)
		return o;
	int n = run("UPDATE running SET state = 'stopping', owner_pid = ?, owner_start = ? WHERE uuid = ? AND state = 'running'",
		    "iit", (long long)getpid(), proc_start_time(getpid()), g->uuid);
	return n == 1 ? CLEANED : n == 0 ? not_mine("its record changed") : FAILED;
}

static enum outcome claim(struct guest *g, const char *runtime_root, int *found)
{
	if (nothing_to_do(g))
		return CLEANED;
	if (run("BEGIN IMMEDIATE", "") < 0)
		return FAILED;
	enum outcome o = claim_in_tx(g, runtime_root, found);
	if (o == CLEANED && *found && run("COMMIT", "") < 0)
		o = FAILED;
	if (o != CLEANED || !*found)
		run("ROLLBACK", "");
	return o;
}

static void warn(const struct guest *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const struct guest *g, const char *fmt, ...)
{
	char line[ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "warning: %s: %s\n", g->name, line);
}

typedef int step_fn(const struct guest *g, const struct resource *r, char *err, size_t errlen);

/* Runs one step in a BEGIN IMMEDIATE transaction, rolled back when it or the store fails:
 * -1 with the reason in err. */
static int in_transaction(step_fn *step, const struct guest *g, const struct resource *r, char *err, size_t errlen)
{
	if (run("BEGIN IMMEDIATE", "") < 0)
		return failf(err, errlen, "the store: %s", why);
	if (step(g, r, err, errlen) < 0) {
		run("ROLLBACK", "");
		return -1;
	}
	if (run("COMMIT", "") < 0) {
		failf(err, errlen, "the store: %s", why);
		run("ROLLBACK", "");
		return -1;
	}
	return 0;
}

/* Store.release + forget for dac: this guest's use of path goes, and the original owner with
 * it once no guest uses the path. */
static int release(const struct guest *g, const char *path, char *err, size_t errlen)
{
	if (run("DELETE FROM remembered_users WHERE driver = 'dac' AND path = ? AND uuid = ?", "tt", path, g->uuid) < 0 ||
	    run("DELETE FROM remembered WHERE driver = 'dac' AND path = ? AND NOT EXISTS (SELECT 1 FROM remembered_users u "
		"WHERE u.driver = 'dac' AND u.path = remembered.path)",
		"t", path) < 0)
		return failf(err, errlen, "the store: %s", why);
	return 0;
}

/* The guest's use of a file that changed under its label is forgotten; no file is touched. */
static int forget(const struct guest *g, const struct resource *r, char *err, size_t errlen)
{
	return release(g, r->path, err, errlen);
}

/* src/security/open-for-restore.ts: each resource reopened by path, no symlink on the way,
 * and checked to be the file labelled; one that changed is reported and forgotten. */
static int open_resources(struct guest *g)
{
	int failed = 0;
	for (int i = 0; i < g->nres; i++) {
		struct resource *r = &g->res[i];
		struct stat st;
		char changed[160] = "";
		r->fd = open_path_nofollow(r->path);
		if (r->fd >= 0 && fstat(r->fd, &st) != 0) {
			r->open_errno = errno;
			close(r->fd);
			r->fd = -1;
			r->state = UNOPENED;
			continue;
		}
		if (r->fd < 0 ? errno == ELOOP : S_ISLNK(st.st_mode))
			snprintf(changed, sizeof changed, "a symbolic link is on the way");
		else if (r->fd >= 0 && r->has_ident && ((int64_t)st.st_dev != r->dev || (int64_t)st.st_ino != r->ino))
			snprintf(changed, sizeof changed, "device/inode %lld/%lld became %lld/%lld", (long long)r->dev,
				 (long long)r->ino, (long long)st.st_dev, (long long)st.st_ino);
		if (changed[0] != '\0' && r->has_ident) {
			char err[ERR_MAX];
			if (r->fd >= 0)
				close(r->fd);
			r->fd = -1;
			r->state = CHANGED;
			warn(g, "\"%s\" is no longer the file svirt labelled (%s): left alone", r->path, changed);
			failed |= in_transaction(forget, g, r, err, sizeof err);
		} else if (r->fd < 0 || changed[0] != '\0') {
			r->open_errno = r->fd < 0 ? errno : ELOOP;
			r->state = r->open_errno == ENOENT ? GONE : UNOPENED;
			if (r->fd >= 0)
				close(r->fd);
			r->fd = -1;
		} else {
			r->state = OPENED;
		}
	}
	return failed;
}

/* The original owner remembered as {"uid":N,"gid":N,"mode":N} (src/security/dac/dac-driver.ts). */
static int parse_owner(char *text, uid_t *uid, gid_t *gid, mode_t *mode)
{
	struct json_value vals[8];
	struct json_doc doc = { vals, 8, 0, "" };
	int root = json_parse(&doc, text, strlen(text));
	int u = root >= 0 && vals[root].type == JSON_OBJECT ? json_member(&doc, root, "uid") : -1;
	int g = root >= 0 && vals[root].type == JSON_OBJECT ? json_member(&doc, root, "gid") : -1;
	int m = root >= 0 && vals[root].type == JSON_OBJECT ? json_member(&doc, root, "mode") : -1;
	if (u < 0 || g < 0 || m < 0 || vals[u].type != JSON_INT || vals[g].type != JSON_INT || vals[m].type != JSON_INT ||
	    vals[u].num < 0 || vals[u].num > 0xfffffffe || vals[g].num < 0 || vals[g].num > 0xfffffffe || vals[m].num < 0 ||
	    vals[m].num > 07777)
		return -1;
	*uid = (uid_t)vals[u].num;
	*gid = (gid_t)vals[g].num;
	*mode = (mode_t)vals[m].num;
	return 0;
}

/* dac's restoreResourceLabel, its journal entry changed in the same transaction: the owner
 * goes back when this guest is the file's last user. */
static int restore_owner(const struct guest *g, const struct resource *r, char *err, size_t errlen)
{
	sqlite3_stmt *s = query("SELECT original, (SELECT count(*) FROM remembered_users u WHERE u.driver = 'dac' AND u.path = "
				"remembered.path AND u.uuid = ?), (SELECT count(*) FROM remembered_users u WHERE u.driver = "
				"'dac' AND u.path = remembered.path AND u.uuid <> ?) FROM remembered WHERE driver = 'dac' AND "
				"path = ?",
				"ttt", g->uuid, g->uuid, r->path);
	if (s == NULL)
		return failf(err, errlen, "%s", why);
	int rc = sqlite3_step(s);
	char *original = rc == SQLITE_ROW ? column_copy(s, 0) : NULL;
	int mine = rc == SQLITE_ROW && sqlite3_column_int64(s, 1) > 0;
	int last = rc == SQLITE_ROW && sqlite3_column_int64(s, 2) == 0;
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return failf(err, errlen, "the store: %s", sqlite3_errmsg(db));
	int ok = 0;
	if (original != NULL && mine && last) {
		uid_t uid;
		gid_t gid;
		mode_t mode;
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", r->fd);
		if (parse_owner(original, &uid, &gid, &mode) < 0)
			ok = failf(err, errlen, "the remembered owner of \"%s\" does not parse", r->path);
		else if (r->state == UNOPENED)
			ok = failf(err, errlen, "cannot restore the owner of \"%s\": %s", r->path, strerror(r->open_errno));
		else if (r->state == OPENED && (fchownat(r->fd, "", uid, gid, AT_EMPTY_PATH) != 0 || chmod(proc, mode) != 0))
			ok = failf(err, errlen, "cannot chown \"%s\" to +%u:+%u: %s", r->path, (unsigned)uid, (unsigned)gid,
				      strerror(errno));
	}
	free(original);
	if (ok < 0 || !mine)
		return ok;
	return release(g, r->path, err, errlen);
}

/* dac's restoreGuestLabel, its journal rows changed in the same transaction: the guest's uid
 * (its dac reservation) leaves /dev/kvm's ACL. */
static int restore_kvm(const struct guest *g, const struct resource *none, char *err, size_t errlen)
{
	(void)none;
	sqlite3_stmt *s = query("SELECT label FROM reservations WHERE driver = 'dac' AND uuid = ?", "t", g->uuid);
	if (s == NULL)
		return failf(err, errlen, "%s", why);
	char *end = NULL;
	const char *label = sqlite3_step(s) == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	unsigned long long uid = label != NULL ? strtoull(label, &end, 10) : 0;
	int one = label != NULL && end != label && *end == '\0' && uid > 0 && uid <= 0xfffffffe && sqlite3_step(s) == SQLITE_DONE;
	sqlite3_finalize(s);
	if (!one)
		return failf(err, errlen, "cannot tell the uid of guest %s to take out of %s's ACL", g->uuid, KVM_DEVICE);
	if (revoke_acl_user(KVM_DEVICE, (unsigned)uid, err, errlen) < 0)
		return -1;
	return release(g, KVM_DEVICE, err, errlen);
}

/* A claim file's name, as src/store/host-claims.ts claimName() makes it; -1 when too long. */
static int claim_name(char *out, size_t outlen, const char *driver, const char *label)
{
	static const char keep[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._,:+-";
	size_t n = (size_t)snprintf(out, outlen, "%s.", driver);
	for (const unsigned char *p = (const unsigned char *)label; *p != '\0' && n + 4 < outlen; p++)
		n += strchr(keep, *p) != NULL ? (size_t)snprintf(out + n, outlen - n, "%c", *p)
					      : (size_t)snprintf(out + n, outlen - n, "%%%02X", *p);
	return n + 4 >= outlen || n > 255 ? -1 : 0;
}

/* Host-wide label claims (src/store/host-claims.ts): the guest's go with its reservations, under
 * the same write lock, each only when it still names this state dir and this guest. A claim left
 * behind only keeps its label from other state dirs (fails closed): reported, not a failure. */
static void drop_claims(const struct guest *g)
{
	const char *dir = getenv("SVIRT_CLAIM_DIR");
	if (dir == NULL || dir[0] == '\0')
		dir = "/run/svirt-claims";
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		if (errno != ENOENT)
			warn(g, "cannot open the claim dir \"%s\": %s", dir, strerror(errno));
		return;
	}
	char want[PATH_MAX + 64];
	int wantlen = snprintf(want, sizeof want, "svirt-claim\n%s\n%s\n", g->real_state_dir, g->uuid);
	sqlite3_stmt *s = query("SELECT driver, label FROM reservations WHERE uuid = ? AND driver IN ('dac', 'selinux', 'apparmor')",
				"t", g->uuid);
	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		char name[300], have[PATH_MAX + 64];
		if (claim_name(name, sizeof name, (const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1)) < 0)
			continue;
		int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue; /* never claimed (uid 0, level s0) or already gone */
		struct stat st;
		ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, have, sizeof have, 0) : -1;
		close(fd);
		if (n == wantlen && memcmp(have, want, (size_t)n) == 0 && unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
			warn(g, "cannot remove its label claim \"%s/%s\": %s", dir, name, strerror(errno));
	}
	sqlite3_finalize(s);
	close(dfd);
}

/* The reservations and the record go together. */
static int drop_record(const struct guest *g, const struct resource *none, char *err, size_t errlen)
{
	(void)none;
	if (g->real_state_dir[0] != '\0')
		drop_claims(g);
	if (run("DELETE FROM reservations WHERE uuid = ?", "t", g->uuid) < 0 ||
	    run("DELETE FROM running WHERE uuid = ?", "t", g->uuid) < 0)
		return failf(err, errlen, "the store: %s", why);
	return 0;
}

/* The steps after the claim; -1 with the reason in err when the record must stay for a retry. */
static int clean_up(struct guest *g, const char *state_dir, char *err, size_t errlen)
{
	int failed = open_resources(g) < 0 ? failf(err, errlen, "the store: %s", why) : 0;
	/* dac's guest-wide grant goes before its files come back, as the manager's undo does */
	if (g->kvm && in_transaction(restore_kvm, g, NULL, err, errlen) < 0)
		failed = -1;
	/* Owners come back last resource first, as the manager's undo gives them back. */
	for (int i = g->nres - 1; i >= 0; i--) {
		struct resource *r = &g->res[i];
		if (g->has_dac && r->state != CHANGED && in_transaction(restore_owner, g, r, err, errlen) < 0)
			failed = -1;
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
	}
	if (failed < 0)
		return -1;
	const char *crash = getenv("SVIRT_TEST_CRASH_AT");
	if (crash != NULL && strcmp(crash, "cleanup:restored") == 0)
		raise(SIGKILL); /* as src/lifecycle/crash-points.ts, for the crash tests */
	if (remove_guest_cgroup(state_dir, g->uuid, err, errlen) < 0)
		return -1;
	/* Before the record goes (stop.ts removes it after): a runtime dir past remove_path's
	 * bounds (QEMU ran as its owner) is then still the full cleanup's, whose removal has none. */
	if (remove_path(g->runtime_dir, err, errlen) < 0)
		return -1;
	if (realpath(state_dir, g->real_state_dir) == NULL)
		g->real_state_dir[0] = '\0'; /* its claims stay: they keep their labels from other state dirs only */
	return in_transaction(drop_record, g, NULL, err, errlen);
}

/* What is left once the record is gone: nobody can retry it, so a failure is reported only. */
static void remove_leftovers(const struct guest *g)
{
	if (unlink(g->qmp_path) != 0 && errno != ENOENT)
		warn(g, "cannot remove its monitor socket \"%s\": %s", g->qmp_path, strerror(errno));
}

static enum outcome cleanup(struct guest *g, const char *state_dir, const char *runtime_root)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/svirt.db", state_dir) >= (int)sizeof path)
		return not_mine("the state dir's path is too long");
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		struct stat st;
		if (stat(path, &st) != 0 && errno == ENOENT)
			return CLEANED; /* no store, nothing to clean (and nothing is created) */
		return not_mine("cannot open the store: %s", db ? sqlite3_errmsg(db) : "out of memory");
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_stmt *s = query("PRAGMA user_version", "");
	long long version = s != NULL && sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sqlite3_finalize(s);
	if (version != SCHEMA_FINGERPRINT)
		return not_mine("the store's schema is %lld, this program knows %d", version, SCHEMA_FINGERPRINT);
	if (run("PRAGMA synchronous = NORMAL", "") < 0)
		return FAILED;
	int found = 0;
	enum outcome o = claim(g, runtime_root, &found);
	if (o != CLEANED || !found)
		return o == FAILED ? not_mine("%s", why) : o; /* nothing changed yet */
	char err[ERR_MAX];
	if (clean_up(g, state_dir, err, sizeof err) < 0) {
		/* Store.abandon: no owner, so the next reconcile (FALLBACK, at once) takes it again */
		run("UPDATE running SET owner_pid = NULL, owner_start = NULL WHERE uuid = ?", "t", g->uuid);
		snprintf(why, sizeof why, "%s", err);
		return FAILED;
	}
	remove_leftovers(g);
	return CLEANED;
}

static int uuid_ok(const char *u)
{
	if (strlen(u) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? u[i] != '-' : !((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f')))
			return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	static struct guest g;
	const char *state_dir = NULL, *runtime_root = NULL;
	if (argc == 2 && strcmp(argv[1], "--schema") == 0) {
		printf("%d\n", SCHEMA_FINGERPRINT);
		return 0;
	}
	int i = 1;
	for (; i + 1 < argc && strcmp(argv[i], "--") != 0; i += 2) {
		if (strcmp(argv[i], "--state-dir") == 0)
			state_dir = argv[i + 1];
		else if (strcmp(argv[i], "--runtime-root") == 0)
			runtime_root = argv[i + 1];
		else if (strcmp(argv[i], "--uuid") == 0)
			g.uuid = argv[i + 1];
		else
			break;
	}
	char **fallback = i < argc && strcmp(argv[i], "--") == 0 ? &argv[i + 1] : NULL;
	if (fallback == NULL || fallback[0] == NULL || fallback[0][0] != '/' || state_dir == NULL || state_dir[0] != '/' ||
	    runtime_root == NULL || runtime_root[0] != '/' || g.uuid == NULL || !uuid_ok(g.uuid)) {
		fputs("usage: svirt-cleanup --state-dir DIR --runtime-root DIR --uuid UUID -- FALLBACK [ARGS...] (absolute "
		      "paths; what the per-guest monitor runs)\n",
		      stderr);
		if (fallback != NULL && fallback[0] != NULL && fallback[0][0] == '/')
			execv(fallback[0], fallback);
		return 2;
	}
	enum outcome o = cleanup(&g, state_dir, runtime_root);
	sqlite3_close_v2(db);
	const char *debug = getenv("SVIRT_DEBUG");
	if (o == CLEANED && why[0] != '\0' && debug != NULL && strcmp(debug, "1") == 0)
		fprintf(stderr, "svirt-cleanup: guest %s: %s\n", g.uuid, why);
	if (o == CLEANED)
		return 0;
	if (o == FAILED)
		fprintf(stderr, "svirt-cleanup: guest %s: %s; the full cleanup takes over\n", g.uuid, why);
	else if (debug != NULL && strcmp(debug, "1") == 0)
		fprintf(stderr, "svirt-cleanup: guest %s: %s: the full cleanup takes it\n", g.uuid, why);
	execv(fallback[0], fallback);
	fprintf(stderr, "svirt-cleanup: cannot run %s: %s\n", fallback[0], strerror(errno));
	return 1;
}
