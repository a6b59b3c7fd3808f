/*
 * open_path_nofollow (open-path.h): the one way svirt's C code opens a path it will act on,
 * shared by the addon's openPath and svirt-cleanup.
 */
#define _GNU_SOURCE
#include "open-path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Opens every component with O_PATH|O_NOFOLLOW from the root: the walk openat2's
 * RESOLVE_NO_SYMLINKS does, for kernels without openat2 (before 5.6). */
static int walk_no_symlinks(const char *path)
{
	if (path[0] != '/') {
		errno = EINVAL;
		return -1;
	}
	int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -1;
	const char *p = path;
	char part[NAME_MAX + 1];
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			return dir;
		size_t n = strcspn(p, "/");
		if (n > NAME_MAX) {
			close(dir);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(part, p, n);
		part[n] = '\0';
		p += n;
		int next = openat(dir, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		close(dir);
		if (next < 0) {
			errno = saved;
			return -1;
		}
		struct stat st;
		if (fstat(next, &st) == 0 && S_ISLNK(st.st_mode)) {
			close(next);
			errno = ELOOP;
			return -1;
		}
		dir = next;
	}
}

int open_path_nofollow(const char *path)
{
	struct open_how how;
	memset(&how, 0, sizeof how);
	how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
	how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
	if (fd < 0 && errno == ENOSYS)
		fd = walk_no_symlinks(path);
	return fd;
}
