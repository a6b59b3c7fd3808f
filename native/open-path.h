#ifndef SVIRT_OPEN_PATH_H
#define SVIRT_OPEN_PATH_H

/*
 * An O_PATH|O_NOFOLLOW|O_CLOEXEC fd of exactly the file the absolute `path` names, when no
 * component of it is a symlink (openat2 with RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or
 * the same walk component by component where openat2 is missing); -1 with errno (ELOOP for
 * a link on the way) otherwise. The last component may itself be a link: the caller's fstat
 * sees S_IFLNK. Sockets, FIFOs and devices open without side effects.
 */
int open_path_nofollow(const char *path);

#endif
