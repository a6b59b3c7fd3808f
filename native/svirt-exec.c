/*
 * svirt-exec: apply a confinement spec to itself, then exec the program.
 *
 *   svirt-exec --spec-fd N -- PROGRAM [ARGS...]
 *   svirt-exec --probe
 *
 * The steps are in confine.c (shared with svirt-monitor --spec-fd, which confines QEMU's
 * child without this exec): cgroups, rlimits, mount view, ids, user root, no_new_privs,
 * SELinux exec label, AppArmor exec profile, Landlock, close fds, execve. The first failing
 * step prints one line "svirt-exec: <step>: <what>: <strerror>" and exits with that step's
 * status; the program never runs then. See docs/native.md. svirt-exec runs the helpers
 * (passt, dnsmasq, swtpm, virtiofsd) and the attack matrix's probes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"
#include "landlock-abi.h"

static int probe(void)
{
	int abi = ll_abi();
	const char *err = abi < 0 ? strerrorname_np(errno) : NULL;
	int userns = 0;
	pid_t pid = fork();
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
	if (pid > 0) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
		}
		userns = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	printf("{\"landlockAbi\":%d,\"landlockError\":%s%s%s,\"userns\":%s}\n", abi < 0 ? 0 : abi,
	       err ? "\"" : "", err ? err : "null", err ? "\"" : "", userns ? "true" : "false");
	return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--probe") == 0)
		return probe();
	char *end = NULL;
	long fd = argc >= 5 && strcmp(argv[1], "--spec-fd") == 0 ? strtol(argv[2], &end, 10) : -1;
	if (fd < 0 || fd > 1 << 30 || end == argv[2] || *end != '\0' || strcmp(argv[3], "--") != 0)
		confine_usage("usage: svirt-exec --spec-fd N -- PROGRAM [ARGS...]");
	confine_exec((int)fd, &argv[4]);
}
