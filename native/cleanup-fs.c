/*
 * The file-system steps of svirt-cleanup (cleanup-fs.h): a runtime dir removed without
 * following links, a guest's cgroup emptied and removed.
 */
#define _GNU_SOURCE
#include "cleanup-fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "open-path.h"

#define JOURNAL_MAX (64 * 1024)
#define JOURNAL_VALUES 2048
#define CGROUP_WAIT_MS 5000
#define PROCS_MAX (256 * 1024)

int failf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

long read_small_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	struct stat st;
	int err = fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
	if (err != 0) {
		close(fd);
		errno = err;
		return -1;
	}
	size_t got = 0;
	for (;;) {
		if (got == cap - 1) {
			char extra;
			ssize_t more = read(fd, &extra, 1);
			close(fd);
			errno = more == 0 ? 0 : EFBIG;
			return more == 0 ? (long)got : -1;
		}
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			errno = err;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (long)got;
}

/* Removes name in the directory dirfd: a directory with its contents, anything else unlinked. */
static int remove_at(int at, const char *name, int depth, long *budget, char *err, size_t errlen)
{
	if (--*budget < 0)
		return failf(err, errlen, "more than %d names to remove", REMOVE_MAX_ENTRIES);
	if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return failf(err, errlen, "cannot remove \"%s\": %s", name, strerror(errno));
	if (depth >= REMOVE_MAX_DEPTH)
		return failf(err, errlen, "\"%s\" is nested deeper than %d", name, REMOVE_MAX_DEPTH);
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : failf(err, errlen, "cannot open \"%s\": %s", name, strerror(errno));
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return failf(err, errlen, "cannot read \"%s\": %s", name, strerror(errno));
	}
	int rc = 0;
	struct dirent *e;
	errno = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		rc = remove_at(dirfd(d), e->d_name, depth + 1, budget, err, errlen);
		errno = 0;
	}
	if (rc == 0 && errno != 0)
		rc = failf(err, errlen, "cannot read \"%s\": %s", name, strerror(errno));
	closedir(d);
	if (rc == 0 && unlinkat(at, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = failf(err, errlen, "cannot remove \"%s\": %s", name, strerror(errno));
	return rc;
}

int remove_path(const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	if (path[0] != '/' || slash == NULL || slash[1] == '\0' || strcmp(slash + 1, "..") == 0 ||
	    strcmp(slash + 1, ".") == 0)
		return failf(err, errlen, "\"%s\" is not an absolute path to a name", path);
	char parent[PATH_MAX];
	size_t n = (size_t)(slash - path);
	if (n >= sizeof parent)
		return failf(err, errlen, "\"%s\" is too long", path);
	memcpy(parent, path, n);
	parent[n] = '\0';
	int dir = open_path_nofollow(n == 0 ? "/" : parent);
	if (dir < 0)
		return errno == ENOENT ? 0 : failf(err, errlen, "cannot open \"%s\": %s", parent, strerror(errno));
	long budget = REMOVE_MAX_ENTRIES;
	char what[PATH_MAX + 64];
	int rc = remove_at(dir, slash + 1, 0, &budget, what, sizeof what);
	close(dir);
	return rc == 0 ? 0 : failf(err, errlen, "%s: %s", path, what);
}

static void pause_ms(int ms)
{
	struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* SIGKILL to every process listed in dir/cgroup.procs: only the guest's are in its cgroup. */
static void kill_members(const char *dir)
{
	char path[PATH_MAX];
	static char procs[PROCS_MAX];
	if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, procs, sizeof procs - 1);
	close(fd);
	if (n <= 0)
		return;
	procs[n] = '\0';
	for (char *p = procs; *p != '\0';) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end != p && pid > 1 && (*end == '\n' || *end == '\0'))
			kill((pid_t)pid, SIGKILL);
		p = *end == '\0' ? end : end + 1;
	}
}

static int empty_and_remove(const char *dir, char *err, size_t errlen)
{
	long long deadline = now_ms() + CGROUP_WAIT_MS;
	int pause = 1;
	for (;;) {
		kill_members(dir);
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || now_ms() > deadline)
			return failf(err, errlen, "cannot remove the guest's cgroup \"%s\": %s", dir, strerror(errno));
		pause_ms(pause);
		pause = pause * 2 > 10 ? 10 : pause * 2;
	}
}

/* A directory the journal may name: /sys/fs/cgroup/..., no "..", ending in /svirt-UUID. */
static int guest_cgroup_dir(const char *dir, const char *uuid)
{
	char tail[128];
	snprintf(tail, sizeof tail, "/svirt-%s", uuid);
	size_t n = strlen(dir), t = strlen(tail);
	return strncmp(dir, "/sys/fs/cgroup/", 15) == 0 && strstr(dir, "/../") == NULL && n > t &&
	       strcmp(dir + n - t, tail) == 0;
}

int remove_guest_cgroup(const char *state_dir, const char *uuid, char *err, size_t errlen)
{
	char path[PATH_MAX];
	static char text[JOURNAL_MAX];
	static struct json_value pool[JOURNAL_VALUES];
	if (snprintf(path, sizeof path, "%s/cgroups/%s.json", state_dir, uuid) >= (int)sizeof path)
		return failf(err, errlen, "the cgroup journal's path is too long");
	long len = read_small_file(path, text, sizeof text);
	if (len < 0)
		return errno == ENOENT ? 0 : failf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
	struct json_doc doc = { pool, JOURNAL_VALUES, 0, "" };
	int root = json_parse(&doc, text, (size_t)len);
	int dirs = root < 0 || pool[root].type != JSON_OBJECT ? -1 : json_member(&doc, root, "dirs");
	if (dirs < 0 || pool[dirs].type != JSON_ARRAY)
		return failf(err, errlen, "the cgroup journal \"%s\" has no list of directories", path);
	for (int e = pool[dirs].first; e >= 0; e = pool[e].next) {
		int d = pool[e].type == JSON_OBJECT ? json_member(&doc, e, "dir") : -1;
		if (d < 0 || pool[d].type != JSON_STRING || !guest_cgroup_dir(pool[d].str, uuid))
			return failf(err, errlen, "the cgroup journal of %s names something that is not a guest cgroup", uuid);
	}
	for (int e = pool[dirs].first; e >= 0; e = pool[e].next)
		if (empty_and_remove(pool[json_member(&doc, e, "dir")].str, err, errlen) < 0)
			return -1;
	if (unlink(path) != 0 && errno != ENOENT)
		return failf(err, errlen, "cannot remove \"%s\": %s", path, strerror(errno));
	return 0;
}

/* POSIX ACL xattr layout (linux/posix_acl_xattr.h): a version, then 8-byte entries. */
#define ACL_XATTR "system.posix_acl_access"
#define ACL_VERSION 2
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_GROUP 0x08
#define ACL_MASK 0x10
#define ACL_MAX 256

struct acl_entry {
	uint16_t tag, perm;
	uint32_t id;
};

static int acl_order(const void *a, const void *b)
{
	const struct acl_entry *x = a, *y = b;
	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int revoke_acl_user(const char *path, unsigned uid, char *err, size_t errlen)
{
	static unsigned char buf[4 + 8 * (ACL_MAX + 1)];
	struct acl_entry e[ACL_MAX + 1];
	ssize_t n = lgetxattr(path, ACL_XATTR, buf, 4 + 8 * ACL_MAX); /* room left for the mask */
	if (n < 0)
		return errno == ENODATA ? 0 : failf(err, errlen, "cannot read the ACL of %s: %s", path, strerror(errno));
	uint32_t version;
	memcpy(&version, buf, 4);
	if (n < 4 || (n - 4) % 8 != 0 || version != ACL_VERSION)
		return failf(err, errlen, "the ACL of %s is not in the format svirt knows", path);
	int count = 0, named = 0;
	uint16_t mask = 0, group_obj = 0;
	for (ssize_t o = 4; o < n; o += 8) {
		struct acl_entry x;
		memcpy(&x.tag, buf + o, 2);
		memcpy(&x.perm, buf + o + 2, 2);
		memcpy(&x.id, buf + o + 4, 4);
		if ((x.tag == ACL_USER && x.id == uid) || x.tag == ACL_MASK)
			continue; /* the guest's entry goes; the mask is made again below */
		named |= x.tag == ACL_USER || x.tag == ACL_GROUP;
		if (x.tag == ACL_USER || x.tag == ACL_GROUP || x.tag == ACL_GROUP_OBJ)
			mask |= x.perm;
		if (x.tag == ACL_GROUP_OBJ)
			group_obj = x.perm;
		e[count++] = x;
	}
	if (!named) {
		struct stat st;
		if (lremovexattr(path, ACL_XATTR) != 0 && errno != ENODATA)
			return failf(err, errlen, "cannot remove the ACL of %s: %s", path, strerror(errno));
		if (stat(path, &st) != 0 || chmod(path, (st.st_mode & 07707) | (mode_t)(group_obj << 3)) != 0)
			return failf(err, errlen, "cannot give %s its group bits back: %s", path, strerror(errno));
		return 0;
	}
	e[count++] = (struct acl_entry){ ACL_MASK, mask, 0xffffffffu };
	qsort(e, (size_t)count, sizeof e[0], acl_order);
	for (int i = 0; i < count; i++) {
		memcpy(buf + 4 + 8 * i, &e[i].tag, 2);
		memcpy(buf + 6 + 8 * i, &e[i].perm, 2);
		memcpy(buf + 8 + 8 * i, &e[i].id, 4);
	}
	if (lsetxattr(path, ACL_XATTR, buf, 4 + 8 * (size_t)count, 0) != 0)
		return failf(err, errlen, "cannot write the ACL of %s: %s", path, strerror(errno));
	return 0;
}
