/*
 * The confinement steps of svirt-exec, shared with svirt-monitor --spec-fd (which applies them
 * in QEMU's child itself and saves an exec on every start's path).
 *
 * Steps, strictly in this order: cgroups (join the guest's), rlimits, mount view, ids, user
 * root, no_new_privs, SELinux exec label, AppArmor exec profile, Landlock, close fds, execve.
 * The first failing step prints one line "svirt-exec: <step>: <what>: <strerror>" and exits
 * with that step's status; the program never runs then. See docs/native.md.
 *
 * Single-threaded callers only. svirt-monitor calls it in a child made by a raw clone3, whose
 * glibc thread id is its parent's: nothing here may use it (no raise, abort or pthread_*).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <grp.h>
#include <unistd.h>

#include "landlock-abi.h"
#include "spec.h"
#include "confine.h"

enum {
	EXIT_SPEC = 201,
	EXIT_RLIMITS = 202,
	EXIT_MOUNTVIEW = 203,
	EXIT_IDS = 204,
	EXIT_NONEWPRIVS = 205,
	EXIT_SELINUX = 206,
	EXIT_APPARMOR = 207,
	EXIT_LANDLOCK = 208,
	EXIT_FDS = 209,
	EXIT_EXEC = 210,
	EXIT_USERROOT = 211,
	EXIT_CGROUP = 212,
};

extern char **environ;

static char spec_buf[SPEC_MAX_BYTES + 1];
static struct svirt_spec spec;

/* Prints "svirt-exec: <step>: <what>: <strerror(err)>" as one line and exits. */
static _Noreturn void die(int status, const char *step, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static _Noreturn void die(int status, const char *step, int err, const char *fmt, ...)
{
	char what[1024], line[1400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	int n = snprintf(line, sizeof line - 1, "svirt-exec: %s: %s: %s", step, what, strerror(err));
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	for (int i = 0; i < n; i++) /* keep it one line whatever the program name holds */
		if ((unsigned char)line[i] < 0x20)
			line[i] = '?';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nothing left to report to */
	}
	_exit(status);
}

static int write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(data);
	ssize_t n = write(fd, data, len);
	int err = errno;
	close(fd);
	if (n < 0) {
		errno = err;
		return -1;
	}
	if ((size_t)n != len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static void read_spec(int fd)
{
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, spec_buf + len, sizeof spec_buf - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(EXIT_SPEC, "spec", errno, "read fd %d", fd);
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof spec_buf)
			die(EXIT_SPEC, "spec", EFBIG, "spec on fd %d is larger than %d bytes", fd, SPEC_MAX_BYTES);
	}
	close(fd);
	char err[400];
	if (spec_parse(spec_buf, len, &spec, err, sizeof err) < 0)
		die(EXIT_SPEC, "spec", EINVAL, "%s", err);
}

/*
 * Joins each cgroup of the spec (one per hierarchy) before anything else: QEMU is in its
 * cgroup from its first instruction. The dir is opened without following a link and must be
 * a cgroup file system.
 *
 * A v1 hierarchy is joined by writing "0" (the calling thread) to its `tasks`, a cgroup2 by
 * writing this pid to `cgroup.procs`. Both move the whole process here, as the confining
 * process (svirt-exec, or the monitor's child) never has a second thread, and every thread QEMU makes later starts where its creator is. The
 * difference is the kernel's cost: moving a thread group takes cgroup_threadgroup_rwsem for
 * writing, which first waits for an RCU grace period (5-20 ms on this host) and holds up
 * every fork and exec on the host meanwhile; moving the current thread alone does not take
 * that lock (Linux 6.0 and later; older kernels take it either way). cgroup2 refuses a
 * thread move into a domain cgroup, so it keeps the pid write (docs/cgroups.md), unless this
 * process already is there: svirt-monitor --cgroup2 creates it inside (clone3), which has no
 * such wait, and the write would take the lock all the same.
 */
static int already_in(int dfd, const char *pid)
{
	char buf[4096];
	int fd = openat(dfd, "cgroup.procs", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	size_t len = strlen(pid);
	for (char *line = buf; line < buf + n;) {
		char *end = strchr(line, '\n');
		if (end == NULL)
			break; /* a last line cut by the buffer: not taken as a match */
		if ((size_t)(end - line) == len && memcmp(line, pid, len) == 0)
			return 1;
		line = end + 1;
	}
	return 0;
}

static void apply_cgroups(void)
{
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	for (int i = 0; i < spec.ncgroups; i++) {
		const char *dir = spec.cgroups[i];
		int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			die(EXIT_CGROUP, "cgroup", errno, "open %s", dir);
		struct statfs sf;
		if (fstatfs(dfd, &sf) < 0)
			die(EXIT_CGROUP, "cgroup", errno, "statfs %s", dir);
		if (sf.f_type != CGROUP_SUPER_MAGIC && sf.f_type != CGROUP2_SUPER_MAGIC)
			die(EXIT_CGROUP, "cgroup", EINVAL, "%s is not a cgroup", dir);
		const int v1 = sf.f_type == CGROUP_SUPER_MAGIC;
		if (!v1 && already_in(dfd, pid)) {
			close(dfd);
			continue;
		}
		const char *file = v1 ? "tasks" : "cgroup.procs";
		const char *who = v1 ? "0" : pid;
		int fd = openat(dfd, file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			die(EXIT_CGROUP, "cgroup", errno, "open %s/%s", dir, file);
		if (write(fd, who, strlen(who)) != (ssize_t)strlen(who))
			die(EXIT_CGROUP, "cgroup", errno, "join %s", dir);
		close(fd);
		close(dfd);
	}
}

static void apply_rlimits(void)
{
	for (int i = 0; i < spec.nrlimits; i++) {
		const struct spec_rlimit *r = &spec.rlimits[i];
		struct rlimit rl = { .rlim_cur = r->soft, .rlim_max = r->hard };
		if (setrlimit(r->resource, &rl) < 0)
			die(EXIT_RLIMITS, "rlimits", errno, "setrlimit %s", r->name);
	}
}

static void apply_mount_view(void)
{
	char buf[64], path[4200];
	if (!spec.has_mount_view)
		return;
	if (spec.userns) {
		uid_t uid = geteuid();
		gid_t gid = getegid();
		if (unshare(CLONE_NEWUSER) < 0)
			die(EXIT_MOUNTVIEW, "mountview", errno, "unshare user namespace");
		if (write_file("/proc/self/setgroups", "deny") < 0)
			die(EXIT_MOUNTVIEW, "mountview", errno, "write /proc/self/setgroups");
		snprintf(buf, sizeof buf, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
		if (write_file("/proc/self/uid_map", buf) < 0)
			die(EXIT_MOUNTVIEW, "mountview", errno, "write /proc/self/uid_map");
		snprintf(buf, sizeof buf, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
		if (write_file("/proc/self/gid_map", buf) < 0)
			die(EXIT_MOUNTVIEW, "mountview", errno, "write /proc/self/gid_map");
	}
	if (unshare(CLONE_NEWNS) < 0)
		die(EXIT_MOUNTVIEW, "mountview", errno, "unshare mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die(EXIT_MOUNTVIEW, "mountview", errno, "make / private");
	/* Opened inside the new namespace (a bind source must be a mount of ours) and before
	 * the tmpfs hides it. */
	int keep = open(spec.keep, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (keep < 0)
		die(EXIT_MOUNTVIEW, "mountview", errno, "open \"%s\"", spec.keep);
	const unsigned long tmpfs_flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount("tmpfs", spec.hide, "tmpfs", tmpfs_flags, "mode=0755,size=64k") < 0)
		die(EXIT_MOUNTVIEW, "mountview", errno, "mount tmpfs on \"%s\"", spec.hide);
	/* Recreate keep's path inside the tmpfs, one component at a time. */
	snprintf(path, sizeof path, "%s", spec.keep);
	for (char *slash = path + strlen(spec.hide) + 1; (slash = strchr(slash, '/')) != NULL; slash++) {
		*slash = '\0';
		if (mkdir(path, 0755) < 0)
			die(EXIT_MOUNTVIEW, "mountview", errno, "mkdir \"%s\"", path);
		*slash = '/';
	}
	if (mkdir(path, 0755) < 0)
		die(EXIT_MOUNTVIEW, "mountview", errno, "mkdir \"%s\"", path);
	snprintf(buf, sizeof buf, "/proc/self/fd/%d", keep);
	if (mount(buf, spec.keep, NULL, MS_BIND | MS_REC, NULL) < 0)
		die(EXIT_MOUNTVIEW, "mountview", errno, "bind \"%s\"", spec.keep);
	if (mount(NULL, spec.hide, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | tmpfs_flags, NULL) < 0)
		die(EXIT_MOUNTVIEW, "mountview", errno, "make the tmpfs on \"%s\" read-only", spec.hide);
	close(keep);
}

static int has_group(const gid_t *list, int n, gid_t g)
{
	for (int i = 0; i < n; i++)
		if (list[i] == g)
			return 1;
	return 0;
}

static void apply_ids(void)
{
	if (!spec.has_ids && !spec.has_groups)
		return;
	/* Changing ids without a groups list still drops every supplementary group. */
	if (setgroups((size_t)spec.ngroups, spec.groups) < 0)
		die(EXIT_IDS, "ids", errno, "setgroups (%d groups)", spec.ngroups);
	if (spec.has_ids) {
		if (setresgid(spec.gid, spec.gid, spec.gid) < 0)
			die(EXIT_IDS, "ids", errno, "setresgid %u", (unsigned)spec.gid);
		if (setresuid(spec.uid, spec.uid, spec.uid) < 0)
			die(EXIT_IDS, "ids", errno, "setresuid %u", (unsigned)spec.uid);
		uid_t ru, eu, su;
		gid_t rg, eg, sg;
		if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
			die(EXIT_IDS, "ids", errno, "getresuid/getresgid");
		if (ru != spec.uid || eu != spec.uid || su != spec.uid)
			die(EXIT_IDS, "ids", EPERM, "uids are %u/%u/%u, not %u", (unsigned)ru, (unsigned)eu,
			    (unsigned)su, (unsigned)spec.uid);
		if (rg != spec.gid || eg != spec.gid || sg != spec.gid)
			die(EXIT_IDS, "ids", EPERM, "gids are %u/%u/%u, not %u", (unsigned)rg, (unsigned)eg,
			    (unsigned)sg, (unsigned)spec.gid);
	}
	gid_t now[SPEC_MAX_GROUPS + 1];
	int n = getgroups(SPEC_MAX_GROUPS + 1, now);
	if (n < 0)
		die(EXIT_IDS, "ids", errno, "getgroups");
	int same = n == spec.ngroups;
	for (int i = 0; same && i < n; i++) /* the kernel sorts the list: compare as sets */
		same = has_group(spec.groups, spec.ngroups, now[i]) && has_group(now, n, spec.groups[i]);
	if (!same)
		die(EXIT_IDS, "ids", EPERM, "supplementary groups differ from the %d requested", spec.ngroups);
	if (spec.has_ids && spec.uid != 0 && setuid(0) == 0)
		die(EXIT_IDS, "ids", ENOTRECOVERABLE, "uid 0 can still be regained");
}

/* Root inside a new user namespace that maps root to the (already dropped) uid and gid: the
 * program may use namespaces and chroot for its own sandbox, and holds no capability outside
 * it. Before Landlock, which would deny the /proc writes. */
static void apply_user_root(void)
{
	char buf[64];
	if (!spec.user_root)
		return;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	/* The id change made the process undumpable, so its /proc files are root's: it could not
	 * write its own maps. exec makes it dumpable again anyway (an ordinary program). */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		die(EXIT_USERROOT, "userroot", errno, "prctl(PR_SET_DUMPABLE)");
	if (unshare(CLONE_NEWUSER) < 0)
		die(EXIT_USERROOT, "userroot", errno, "unshare user namespace");
	if (write_file("/proc/self/setgroups", "deny") < 0)
		die(EXIT_USERROOT, "userroot", errno, "write /proc/self/setgroups");
	snprintf(buf, sizeof buf, "0 %u 1\n", (unsigned)uid);
	if (write_file("/proc/self/uid_map", buf) < 0)
		die(EXIT_USERROOT, "userroot", errno, "write /proc/self/uid_map");
	snprintf(buf, sizeof buf, "0 %u 1\n", (unsigned)gid);
	if (write_file("/proc/self/gid_map", buf) < 0)
		die(EXIT_USERROOT, "userroot", errno, "write /proc/self/gid_map");
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		die(EXIT_USERROOT, "userroot", errno, "become root in the user namespace");
}

static void apply_no_new_privs(void)
{
	if (spec.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die(EXIT_NONEWPRIVS, "nonewprivs", errno, "prctl(PR_SET_NO_NEW_PRIVS)");
}

static void apply_selinux(void)
{
	const char *attr = "/proc/thread-self/attr/exec";
	if (spec.selinux_label != NULL && write_file(attr, spec.selinux_label) < 0)
		die(EXIT_SELINUX, "selinux", errno, "write \"%s\" to %s", spec.selinux_label, attr);
}

/*
 * Whether this process runs under an AppArmor profile (svirt's manager confined by
 * svirt-manager, docs/confinement.md) rather than unconfined.
 */
static int apparmor_confined(void)
{
	char buf[256];
	const char *files[] = { "/proc/thread-self/attr/apparmor/current", "/proc/thread-self/attr/current" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		int fd = open(files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		return strncmp(buf, "unconfined", strlen("unconfined")) != 0;
	}
	return 0;
}

static void apply_apparmor(void)
{
	char cmd[SPEC_MAX_LABEL + 8];
	const char *attr = "/proc/thread-self/attr/apparmor/exec";
	if (spec.apparmor_profile == NULL)
		return;
	/*
	 * Unconfined, QEMU changes to the guest's profile at exec. A confined manager cannot
	 * leave its profile under no_new_privs (the kernel refuses the change with EPERM): it
	 * stacks the guest's profile on its own, so QEMU is confined by both (their intersection).
	 */
	snprintf(cmd, sizeof cmd, "%s %s", apparmor_confined() ? "stack" : "exec", spec.apparmor_profile);
	if (write_file(attr, cmd) == 0)
		return;
	if (errno == ENOENT) { /* kernels before 5.8 only have the shared attr file */
		attr = "/proc/thread-self/attr/exec";
		if (write_file(attr, cmd) == 0)
			return;
	}
	die(EXIT_APPARMOR, "apparmor", errno, "write \"%s\" to %s", cmd, attr);
}

/* Which ABI first offers each right, for the error message. */
static int fs_bit_abi(uint64_t bit)
{
	return bit == LL_FS_REFER ? 2 : bit == LL_FS_TRUNCATE ? 3 : bit == LL_FS_IOCTL_DEV ? 5 : 1;
}

static uint64_t lowest_bit(uint64_t v)
{
	return v & (~v + 1);
}

static void apply_landlock(void)
{
	const struct spec_landlock *ll = &spec.landlock;
	if (!spec.has_landlock)
		return;
	int abi = ll_abi();
	if (abi < 0)
		die(EXIT_LANDLOCK, "landlock", errno, "query the ABI version");

	uint64_t fs_ok = abi >= 5 ? 0xffffULL : abi >= 3 ? 0x7fffULL : abi >= 2 ? 0x3fffULL : 0x1fffULL;
	uint64_t net_ok = abi >= 4 ? LL_NET_BIND_TCP | LL_NET_CONNECT_TCP : 0;
	uint64_t scope_ok = abi >= 6 ? LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL : 0;
	if (!ll->best_effort) {
		if (abi < ll->min_abi)
			die(EXIT_LANDLOCK, "landlock", EOPNOTSUPP, "the ruleset needs ABI %d, kernel has %d",
			    ll->min_abi, abi);
		if (ll->handled_fs & ~fs_ok) {
			uint64_t bit = lowest_bit(ll->handled_fs & ~fs_ok);
			die(EXIT_LANDLOCK, "landlock", EOPNOTSUPP, "filesystem right 0x%llx needs ABI %d, kernel has %d",
			    (unsigned long long)bit, fs_bit_abi(bit), abi);
		}
		if (ll->handled_net & ~net_ok)
			die(EXIT_LANDLOCK, "landlock", EOPNOTSUPP, "network rights need ABI 4, kernel has %d", abi);
		if (ll->scoped & ~scope_ok)
			die(EXIT_LANDLOCK, "landlock", EOPNOTSUPP, "scopes need ABI 6, kernel has %d", abi);
	}
	struct ll_ruleset_attr attr = {
		.handled_access_fs = ll->handled_fs & fs_ok,
		.handled_access_net = ll->handled_net & net_ok,
		.scoped = ll->scoped & scope_ok,
	};
	if (attr.handled_access_fs == 0 && attr.handled_access_net == 0 && attr.scoped == 0)
		return; /* nothing this kernel can restrict (best effort), or nothing asked */
	/* Older kernels reject a larger struct only if the extra fields are non-zero, but pass
	 * the smallest size that carries what is set anyway. */
	size_t size = attr.scoped ? sizeof attr : attr.handled_access_net ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
	int rfd = ll_create_ruleset(&attr, size, 0);
	if (rfd < 0)
		die(EXIT_LANDLOCK, "landlock", errno, "create ruleset");

	for (int i = 0; i < ll->npath; i++) {
		const struct spec_path_rule *r = &ll->paths[i];
		int fd = open(r->path, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			if (r->optional && (errno == ENOENT || errno == ENOTDIR))
				continue;
			die(EXIT_LANDLOCK, "landlock", errno, "add rule \"%s\"", r->path);
		}
		struct stat st;
		if (fstat(fd, &st) < 0)
			die(EXIT_LANDLOCK, "landlock", errno, "add rule \"%s\"", r->path);
		/* A rule may only grant handled rights, and a non-directory only file rights. */
		uint64_t access = r->access & attr.handled_access_fs;
		if (!S_ISDIR(st.st_mode))
			access &= LL_FS_FILE_RIGHTS;
		if (access != 0) {
			struct ll_path_beneath_attr pb = { .allowed_access = access, .parent_fd = fd };
			if (ll_add_rule(rfd, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
				die(EXIT_LANDLOCK, "landlock", errno, "add rule \"%s\"", r->path);
		}
		close(fd);
	}
	for (int i = 0; i < ll->nnet; i++) {
		const struct spec_net_rule *r = &ll->nets[i];
		struct ll_net_port_attr np = { .allowed_access = r->access & attr.handled_access_net, .port = r->port };
		if (np.allowed_access != 0 && ll_add_rule(rfd, LL_RULE_NET_PORT, &np, 0) < 0)
			die(EXIT_LANDLOCK, "landlock", errno, "add rule port %llu", (unsigned long long)r->port);
	}
	uint32_t flags = ll->log_new_exec && abi >= 7 ? LL_RESTRICT_SELF_LOG_NEW_EXEC_ON : 0;
	if (ll_restrict_self(rfd, flags) < 0)
		die(EXIT_LANDLOCK, "landlock", errno, "restrict self");
	close(rfd);
}

static int is_kept(int fd)
{
	for (int i = 0; i < spec.nkeep; i++)
		if (spec.keep_fds[i] == fd)
			return 1;
	return 0;
}

/* Fallback for kernels without close_range (before 5.9). */
static void close_by_listing(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		die(EXIT_FDS, "fds", errno, "open /proc/self/fd");
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end != '\0' || end == e->d_name || fd < 3 || fd == dirfd(d) || is_kept((int)fd))
			continue;
		close((int)fd);
	}
	closedir(d);
}

static void close_fds(void)
{
	int sorted[SPEC_MAX_KEEP_FDS], n = 0;
	for (int i = 0; i < spec.nkeep; i++) {
		int fd = spec.keep_fds[i];
		if (fd < 3)
			continue;
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
			die(EXIT_FDS, "fds", errno, "keep fd %d", fd);
		int j = n; /* insertion sort, dropping duplicates */
		while (j > 0 && sorted[j - 1] > fd)
			j--;
		if (j > 0 && sorted[j - 1] == fd)
			continue;
		memmove(&sorted[j + 1], &sorted[j], (size_t)(n - j) * sizeof sorted[0]);
		sorted[j] = fd;
		n++;
	}
	unsigned lo = 3; /* close every gap between kept fds, then everything above the last */
	for (int i = 0; i <= n; i++) {
		unsigned hi = i < n ? (unsigned)sorted[i] - 1 : ~0U;
		if (hi >= lo && close_range(lo, hi, 0) < 0) {
			if (errno != ENOSYS)
				die(EXIT_FDS, "fds", errno, "close_range %u..%u", lo, hi);
			close_by_listing();
			return;
		}
		if (i < n)
			lo = (unsigned)sorted[i] + 1;
	}
}

_Noreturn void confine_exec(int spec_fd, char *const *argv)
{
	read_spec(spec_fd);
	apply_cgroups();
	apply_rlimits();
	apply_mount_view();
	apply_ids();
	apply_user_root();
	apply_no_new_privs();
	apply_selinux();
	apply_apparmor();
	apply_landlock();
	close_fds();
	execve(argv[0], argv, environ);
	die(EXIT_EXEC, "exec", errno, "execve \"%s\"", argv[0]);
}

_Noreturn void confine_usage(const char *usage)
{
	die(EXIT_SPEC, "spec", EINVAL, "%s", usage);
}
