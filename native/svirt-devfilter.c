/*
 * svirt-devfilter: a cgroup v2 device allow-list, as a BPF_PROG_TYPE_CGROUP_DEVICE program
 * assembled here by hand (no libbpf, no clang), loaded with bpf(2) and attached to one cgroup.
 *
 *   svirt-devfilter CGROUP_DIR RULE...      RULE: "c 1:3 rw", "b 7:* rwm", "c *:* m"
 *
 * The cgroup dir is opened O_DIRECTORY|O_NOFOLLOW and must be on a cgroup2 file system.
 * The program allows an access when one rule matches its type, major, minor and every
 * access bit asked for; everything else is denied. It is attached without flags, so a later
 * run on the same cgroup replaces the program atomically (the kernel swaps the single
 * program of a non-multi attachment): that is how hot-plug extends and shrinks the list.
 * One line on stderr and a non-zero status on any failure; nothing is attached then.
 */
#include <stdio.h>
#include "devfilter.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: svirt-devfilter CGROUP_DIR RULE...\n");
		return 2;
	}
	char err[512];
	if (devfilter_apply(argv[1], argc - 2, (const char *const *)(argv + 2), err, sizeof err) < 0) {
		fprintf(stderr, "svirt-devfilter: %s\n", err);
		return 1;
	}
	return 0;
}
