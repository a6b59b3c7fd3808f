/*
 * The confinement spec (src/security/confinement.ts, ConfinementSpec) as svirt-exec sees it
 * after parsing and validation. Strings point into the parsed document buffer.
 */
#ifndef SVIRT_SPEC_H
#define SVIRT_SPEC_H

#include <stdint.h>
#include <sys/types.h>

#define SPEC_MAX_BYTES (512 * 1024)
#define SPEC_MAX_RLIMITS 16
#define SPEC_MAX_GROUPS 64
#define SPEC_MAX_PATH_RULES 4096
#define SPEC_MAX_NET_RULES 1024
#define SPEC_MAX_KEEP_FDS 1024
#define SPEC_MAX_LABEL 4096
#define SPEC_MAX_CGROUPS 16

/* Access rights as the kernel numbers them (see landlock-abi.h). */
struct spec_path_rule {
	const char *path;
	uint64_t access;
	int optional;
};

struct spec_net_rule {
	uint64_t port;
	uint64_t access;
};

struct spec_landlock {
	uint64_t handled_fs;
	uint64_t handled_net;
	uint64_t scoped;
	int best_effort;
	int log_new_exec;
	int min_abi; /* optional: the ABI the ruleset was written for; enforced unless best effort */
	int npath;
	struct spec_path_rule *paths;
	int nnet;
	struct spec_net_rule *nets;
};

struct spec_rlimit {
	int resource;     /* RLIMIT_* */
	const char *name; /* as in the spec */
	uint64_t soft;    /* RLIM_INFINITY for -1 */
	uint64_t hard;
};

struct svirt_spec {
	int ncgroups; /* cgroup dirs to join first (each dir's cgroup.procs) */
	const char *cgroups[SPEC_MAX_CGROUPS];

	int nrlimits;
	struct spec_rlimit rlimits[SPEC_MAX_RLIMITS];

	int has_mount_view;
	const char *hide;
	const char *keep;
	int userns;

	int has_ids; /* uid and gid are both given */
	uid_t uid;
	gid_t gid;
	int has_groups;
	int ngroups;
	gid_t groups[SPEC_MAX_GROUPS];

	int user_root; /* after the ids step: a user namespace mapping root to the uid/gid */

	int no_new_privs;
	const char *selinux_label;    /* NULL when absent */
	const char *apparmor_profile; /* NULL when absent */

	int has_landlock;
	struct spec_landlock landlock;

	int nkeep;
	int keep_fds[SPEC_MAX_KEEP_FDS];
};

/* Parses and validates the JSON in buf[0..len) (modified in place) into *spec. Returns 0,
 * or -1 with a one-line reason in err. */
int spec_parse(char *buf, size_t len, struct svirt_spec *spec, char *err, size_t errlen);

#endif
