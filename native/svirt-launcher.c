/*
 * svirt-launcher (installed as native/out/svirt): svirt's own entry point, the one program
 * the manager's MAC confinement attaches to (docs/confinement.md). Node is a generic binary
 * that every Node program on the host runs; a profile or domain on it would confine them
 * all. This wrapper is svirt's alone: SELinux labels it svirt's entry type (virtd_exec_t),
 * so executing it enters the manager's domain (virtd_t), and the AppArmor profile
 * svirt-manager attaches to its path. It then execs node on svirt's CLI, in place (same
 * pid), so node and everything it runs stay in that domain/profile.
 *
 *   svirt ARGS...   =   NODE ROOT/bin/svirt.js ARGS...
 *
 * NODE is fixed when the launcher is built (the node that built the addon; -DSVIRT_NODE);
 * ROOT is the package this launcher lives in: realpath(/proc/self/exe) minus
 * /native/out/<name> (a symlink on PATH resolves to it). Nothing from the caller chooses
 * the program or the script: NODE_OPTIONS, NODE_PATH, LD_PRELOAD and the like are dropped
 * (code they would load would run in the manager's domain). SVIRT_ENTRY is set to the
 * launcher's path, so `svirt profile` can say how the manager was entered.
 *
 * Exit status: that of svirt (the exec replaces this process); 127 when node or the CLI
 * cannot be run, with one line on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SVIRT_NODE
#define SVIRT_NODE "/usr/bin/node"
#endif

/* Variables that would make node (or ld.so) load code the caller chose. */
static const char *const DROPPED[] = {
	"NODE_OPTIONS", "NODE_PATH", "NODE_REPL_EXTERNAL_MODULE", "NODE_EXTRA_CA_CERTS",
	"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", NULL,
};

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "svirt: %s %s: %s\n", what, path, strerror(errno));
	return 127;
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], script[PATH_MAX];
	const char *suffix = "/native/out/";
	char *slash, *base;
	char **args;
	int i;

	if (realpath("/proc/self/exe", self) == NULL)
		return fail("cannot resolve", "/proc/self/exe");
	/* ROOT/native/out/NAME -> ROOT */
	slash = strrchr(self, '/');
	if (slash == NULL || slash - self < (long)strlen(suffix) - 1)
		goto layout;
	base = slash - (strlen(suffix) - 1);
	if (strncmp(base, suffix, strlen(suffix)) != 0)
		goto layout;
	if (setenv("SVIRT_ENTRY", self, 1) != 0)
		return fail("cannot set", "SVIRT_ENTRY");
	*base = '\0';
	if ((size_t)snprintf(script, sizeof script, "%s/bin/svirt.js", self) >= sizeof script) {
		errno = ENAMETOOLONG;
		return fail("cannot run", self);
	}
	for (i = 0; DROPPED[i] != NULL; i++)
		unsetenv(DROPPED[i]);

	args = calloc((size_t)argc + 2, sizeof *args);
	if (args == NULL)
		return fail("cannot allocate", "argv");
	args[0] = (char *)SVIRT_NODE;
	args[1] = script;
	for (i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	args[argc + 1] = NULL;
	execv(SVIRT_NODE, args);
	return fail("cannot execute", SVIRT_NODE);

layout:
	fprintf(stderr, "svirt: %s is not ROOT/native/out/NAME of an svirt package\n", self);
	return 127;
}
