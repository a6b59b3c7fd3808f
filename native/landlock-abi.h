/*
 * Landlock user-space ABI, up to ABI 7, defined here so that the build does not depend on
 * the age of the installed kernel headers. Values: include/uapi/linux/landlock.h.
 */
#ifndef SVIRT_LANDLOCK_ABI_H
#define SVIRT_LANDLOCK_ABI_H

#include <stdint.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/syscall.h>

#if defined(__x86_64__) || defined(__aarch64__) || defined(__riscv)
/* The generic syscall table and x86_64 both number them 444, 445, 446. */
#define SVIRT_NR_landlock_create_ruleset 444
#define SVIRT_NR_landlock_add_rule 445
#define SVIRT_NR_landlock_restrict_self 446
#else
#error "Landlock syscall numbers are not known for this architecture"
#endif

#define LL_CREATE_RULESET_VERSION (1U << 0)

#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2

/* Filesystem rights (ABI 1 unless noted). */
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR (1ULL << 6)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_BLOCK (1ULL << 11)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)     /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */

/* Rights that make sense on a non-directory (the kernel rejects the others there). */
#define LL_FS_FILE_RIGHTS \
	(LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

/* Network rights (ABI 4). */
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)

/* IPC scopes (ABI 6). */
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

/* landlock_restrict_self() flags (ABI 7). */
#define LL_RESTRICT_SELF_LOG_SAME_EXEC_OFF (1U << 0)
#define LL_RESTRICT_SELF_LOG_NEW_EXEC_ON (1U << 1)
#define LL_RESTRICT_SELF_LOG_SUBDOMAINS_OFF (1U << 2)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
} __attribute__((packed));

static inline int ll_create_ruleset(const struct ll_ruleset_attr *attr, size_t size, uint32_t flags)
{
	return (int)syscall(SVIRT_NR_landlock_create_ruleset, attr, size, flags);
}

static inline int ll_add_rule(int ruleset_fd, int type, const void *attr, uint32_t flags)
{
	return (int)syscall(SVIRT_NR_landlock_add_rule, ruleset_fd, type, attr, flags);
}

static inline int ll_restrict_self(int ruleset_fd, uint32_t flags)
{
	return (int)syscall(SVIRT_NR_landlock_restrict_self, ruleset_fd, flags);
}

/* The running kernel's ABI version, or -1 with errno set (ENOSYS, EOPNOTSUPP). */
static inline int ll_abi(void)
{
	return ll_create_ruleset(NULL, 0, LL_CREATE_RULESET_VERSION);
}

#endif
