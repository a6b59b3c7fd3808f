/*
 * bench-reaper: runs a daemon as a child subreaper and reaps every orphan it inherits at
 * once, as systemd does on a normal host. The bench runs libvirtd under it because libvirt
 * daemonizes QEMU (so QEMU's parent becomes init) and, on destroy, waits until kill(pid, 0)
 * fails: under an init that reaps orphans late, libvirt would wait for that init, not QEMU.
 *
 *   bench-reaper PROGRAM [ARGS...]     SIGTERM/SIGINT are passed on to PROGRAM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t main_child = -1;

static void pass_on(int sig)
{
	if (main_child > 0)
		kill(main_child, sig);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench-reaper PROGRAM [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
		perror("bench-reaper: prctl(PR_SET_CHILD_SUBREAPER)");
		return 1;
	}
	struct sigaction sa = { 0 };
	sa.sa_handler = pass_on;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pid_t child = fork();
	if (child < 0) {
		perror("bench-reaper: fork");
		return 1;
	}
	if (child == 0) {
		execv(argv[1], argv + 1);
		perror("bench-reaper: exec");
		_exit(127);
	}
	main_child = child;
	int code = 0;
	for (;;) {
		int status;
		pid_t p = wait(&status);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: nothing left to reap */
		}
		if (p == child) {
			code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			/* Reap what is already dead, then leave: later orphans go to init. */
			while (waitpid(-1, &status, WNOHANG) > 0)
				;
			break;
		}
	}
	return code;
}
