#ifndef SVIRT_CLEANUP_FS_H
#define SVIRT_CLEANUP_FS_H

#include <stddef.h>

/* Each returns 0, or -1 with a one-line reason in err (errlen bytes). */

/* Writes the reason into err; returns -1. */
int failf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Removes path and, when it is a directory, everything in it, never following a symlink (a
 * link inside is removed as a link). No symlink may be on the way to path itself. Already
 * gone is not an error. Bounded: REMOVE_MAX_DEPTH levels, REMOVE_MAX_ENTRIES names.
 */
#define REMOVE_MAX_DEPTH 16
#define REMOVE_MAX_ENTRIES 100000
int remove_path(const char *path, char *err, size_t errlen);

/*
 * What src/lifecycle/cgroup/remove.ts removeGuestCgroup does: reads the guest's cgroup
 * journal (STATE_DIR/cgroups/UUID.json), kills any process still in each directory it names,
 * removes the directory (retrying while the kernel still reaps QEMU, up to 5 s), then the
 * journal. No journal: nothing to do. A journal naming anything but a guest cgroup is refused.
 */
int remove_guest_cgroup(const char *state_dir, const char *uuid, char *err, size_t errlen);

/*
 * What src/host/acl.ts revokeUser does: uid's named-user entry leaves path's access ACL
 * (system.posix_acl_access, never following a link as the last component), the mask is made
 * again; when no named entry is left the ACL goes and the mode's group bits are the owning
 * group's again. No ACL: nothing to do.
 */
int revoke_acl_user(const char *path, unsigned uid, char *err, size_t errlen);

/* Reads at most cap - 1 bytes of the regular file path (no symlink as its last component)
 * into buf, NUL-terminated; returns the length, or -1 with errno (EFBIG when larger). */
long read_small_file(const char *path, char *buf, size_t cap);

#endif
