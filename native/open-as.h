/* open-as.c: asks the kernel whether another user may open (or create in) a path. */
#ifndef SVIRT_OPEN_AS_H
#define SVIRT_OPEN_AS_H
#include <stdint.h>
#include <sys/types.h>

#define OPEN_AS_MAX_GROUPS 64

struct open_as_result {
	int32_t err; /* 0, or the errno the user's open()/access() failed with */
	uint64_t dev;
	uint64_t ino;
};

/*
 * Forks; the child takes uid, gid and exactly `groups` (real, effective and saved ids), then
 * opens `path` with `flags` (amode < 0) or calls access(path, amode), and reports what the
 * kernel said and, for an open, the device and inode it reached. Returns 0 with *out filled,
 * or -1 with errno set when the check itself could not run.
 */
int open_as(const char *path, int flags, int amode, uid_t uid, gid_t gid, const gid_t *groups, int ngroups,
	    struct open_as_result *out);
#endif
