/*
 * The kernel's own answer to "may this user open that file?" (entrypoint checks, issue 15):
 * a forked child drops to the user's ids and tries. Nothing is re-implemented (modes, ACLs,
 * LSMs all apply), and the device + inode the child reached are reported, so the caller can
 * check it is the very file it holds open.
 *
 * The child of a multi-threaded process may only make async-signal-safe calls: it uses raw
 * syscalls for the id changes (they apply to the calling thread, the child's only one),
 * open/fstat/access/write and _exit.
 */
#define _GNU_SOURCE
#include "open-as.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void child(int wfd, const char *path, int flags, int amode, uid_t uid, gid_t gid, const gid_t *groups, int ngroups)
{
	struct open_as_result r;
	memset(&r, 0, sizeof r);
	if (syscall(SYS_setgroups, (size_t)ngroups, groups) != 0 || syscall(SYS_setresgid, gid, gid, gid) != 0 ||
	    syscall(SYS_setresuid, uid, uid, uid) != 0) {
		/* The check could not be made as the user: report it as a refusal of the check itself. */
		r.err = -errno;
	} else if (amode >= 0) {
		r.err = access(path, amode) == 0 ? 0 : errno;
	} else {
		int fd = open(path, flags | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		struct stat st;
		if (fd < 0) {
			r.err = errno;
		} else if (fstat(fd, &st) != 0) {
			r.err = errno;
		} else {
			r.dev = (uint64_t)st.st_dev;
			r.ino = (uint64_t)st.st_ino;
		}
	}
	ssize_t n = write(wfd, &r, sizeof r);
	_exit(n == (ssize_t)sizeof r ? 0 : 1);
}

int open_as(const char *path, int flags, int amode, uid_t uid, gid_t gid, const gid_t *groups, int ngroups,
	    struct open_as_result *out)
{
	if (ngroups < 0 || ngroups > OPEN_AS_MAX_GROUPS) {
		errno = EINVAL;
		return -1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(p[0]);
		close(p[1]);
		errno = err;
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		child(p[1], path, flags, amode, uid, gid, groups, ngroups);
	}
	close(p[1]);
	struct open_as_result r;
	ssize_t got;
	do
		got = read(p[0], &r, sizeof r);
	while (got < 0 && errno == EINTR);
	int rerr = errno;
	close(p[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got != (ssize_t)sizeof r) {
		errno = got < 0 ? rerr : EIO;
		return -1;
	}
	if (r.err < 0) {
		errno = -r.err;
		return -1;
	}
	*out = r;
	return 0;
}
