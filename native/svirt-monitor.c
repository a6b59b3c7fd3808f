/*
 * svirt-monitor: the small per-guest process that outlives the svirt command (like podman's
 * conmon). It starts CHILD, reports its pid and how it ended on fd 1, then runs the hook.
 *
 *   svirt-monitor [--hook ARG]... -- CHILD [ARGS...]
 *
 * fd 1 gets "pid <pid>\n", later "exit <code>\n" or "signal <num>\n" (or "error <why>\n" and
 * exit status 1 when it cannot fork). The hook argv runs after fd 1 is closed, with
 * SVIRT_CHILD_PID and SVIRT_CHILD_STATUS ("exit 0", "signal 9") in its environment.
 * Uses no heap: a monitor lives as long as its guest.
 *
 * A forked backup (sharing the monitor's pages) watches QEMU through a pidfd and the monitor
 * through a pipe: if the monitor is killed first, the backup runs the hook once QEMU exits,
 * so the guest's files are given back even then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void put(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the reader may be gone: nothing to do about it */
		s += n;
		len -= (size_t)n;
	}
}

/* "<word> <n>" into buf, or just "<n>" when word is empty; word is a short literal. */
static char *format(char *buf, size_t size, const char *word, long n)
{
	char digits[24];
	int i = sizeof digits;
	unsigned long v = n < 0 ? 0UL - (unsigned long)n : (unsigned long)n;
	digits[--i] = '\0';
	do {
		digits[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	if (n < 0)
		digits[--i] = '-';
	size_t w = strlen(word), d = sizeof digits - (size_t)i;
	if (w + 1 + d > size)
		return strcpy(buf, "");
	memcpy(buf, word, w);
	if (w > 0)
		buf[w++] = ' ';
	memcpy(buf + w, digits + i, d);
	return buf;
}

static void say(const char *line)
{
	put(STDOUT_FILENO, line);
	put(STDOUT_FILENO, "\n");
}

static pid_t wait_for(pid_t pid, int *status)
{
	pid_t r;
	while ((r = waitpid(pid, status, 0)) < 0 && errno == EINTR) {
	}
	return r;
}

static void close_from_3(void)
{
	if (close_range(3, ~0U, 0) == 0)
		return;
	/* Kernels before 5.9: close up to the fd limit (bounded, the monitor is long-lived
	 * but this runs once). */
	struct rlimit rl;
	long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (long)rl.rlim_cur : 65536;
	for (long fd = 3; fd < max; fd++)
		close((int)fd);
}

static void set_signals(void (*handler)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
}

static void run_hook(char **hook, pid_t child, const char *status)
{
	char pidbuf[48];
	pid_t pid = fork();
	if (pid < 0) {
		put(STDERR_FILENO, "svirt-monitor: cannot fork the hook: ");
		put(STDERR_FILENO, strerror(errno));
		put(STDERR_FILENO, "\n");
		return;
	}
	if (pid == 0) {
		set_signals(SIG_DFL);
		int nul = open("/dev/null", O_RDWR);
		if (nul < 0 || dup2(nul, STDIN_FILENO) < 0 || dup2(nul, STDOUT_FILENO) < 0)
			_exit(127);
		if (nul > STDERR_FILENO)
			close(nul);
		format(pidbuf, sizeof pidbuf, "", (long)child);
		/* heap use here is the hook child's, not the monitor's */
		if (setenv("SVIRT_CHILD_PID", pidbuf, 1) < 0 || setenv("SVIRT_CHILD_STATUS", status, 1) < 0)
			_exit(127);
		execvp(hook[0], hook);
		put(STDERR_FILENO, "svirt-monitor: cannot run the hook: ");
		put(STDERR_FILENO, strerror(errno));
		put(STDERR_FILENO, "\n");
		_exit(127);
	}
	int st;
	wait_for(pid, &st);
}

static int wait_readable(struct pollfd *p, nfds_t n)
{
	int r;
	while ((r = poll(p, n, -1)) < 0 && errno == EINTR) {
	}
	return r;
}

/* The backup: returns only in the monitor; the backup process ends in _exit. */
static void start_backup(char **hook, pid_t child)
{
	int pfd = (int)syscall(SYS_pidfd_open, child, 0);
	int link[2];
	if (pfd < 0)
		return; /* kernels before 5.3: the monitor alone watches */
	if (pipe2(link, O_CLOEXEC) < 0) {
		close(pfd);
		return;
	}
	pid_t w = fork();
	if (w < 0) {
		close(pfd);
		close(link[0]);
		close(link[1]);
		return;
	}
	if (w == 0) {
		close(link[1]);
		close(STDOUT_FILENO); /* the status channel is the monitor's */
		struct pollfd p[2] = { { .fd = pfd, .events = POLLIN }, { .fd = link[0], .events = POLLIN } };
		if (wait_readable(p, 2) < 0 || (p[0].revents & POLLIN))
			_exit(0); /* QEMU ended while the monitor lives: the monitor runs the hook */
		/* The monitor is gone and QEMU runs on: wait for QEMU, then do the monitor's last job. */
		struct pollfd q = { .fd = pfd, .events = POLLIN };
		if (wait_readable(&q, 1) < 0)
			_exit(1);
		put(STDERR_FILENO, "svirt-monitor: the monitor was gone when QEMU exited; its backup runs the hook\n");
		run_hook(hook, child, "unknown");
		_exit(0);
	}
	close(pfd);
	close(link[0]);
	/* link[1] stays open for the monitor's life: its end is the backup's signal. */
}

int main(int argc, char **argv)
{
	char *hook[argc + 1];
	int nhook = 0, i = 1;
	char line[64];

	while (i + 1 < argc && strcmp(argv[i], "--hook") == 0) {
		hook[nhook++] = argv[i + 1];
		i += 2;
	}
	hook[nhook] = NULL;
	if (i + 1 >= argc || strcmp(argv[i], "--") != 0) {
		put(STDERR_FILENO, "usage: svirt-monitor [--hook ARG]... -- CHILD [ARGS...]\n");
		return 2;
	}
	char **child_argv = &argv[i + 1];

	if (getsid(0) != getpid() && setsid() < 0) {
		/* EPERM: already a process-group leader; it still works as a monitor */
	}
	set_signals(SIG_IGN);

	pid_t pid = fork();
	if (pid < 0) {
		put(STDOUT_FILENO, "error ");
		say(strerror(errno));
		return 1;
	}
	if (pid == 0) {
		sigset_t none;
		set_signals(SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* fd 1 is the status channel: the child's output belongs in the log (fd 2) */
		if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(127);
		execve(child_argv[0], child_argv, environ);
		put(STDERR_FILENO, "svirt-monitor: cannot execute ");
		put(STDERR_FILENO, child_argv[0]);
		put(STDERR_FILENO, ": ");
		put(STDERR_FILENO, strerror(errno));
		put(STDERR_FILENO, "\n");
		_exit(127);
	}

	close_from_3(); /* the child has the image fds; the monitor must not hold them open */
	say(format(line, sizeof line, "pid", (long)pid));
	if (nhook > 0)
		start_backup(hook, pid);

	int status = 0;
	if (wait_for(pid, &status) < 0) {
		put(STDOUT_FILENO, "error ");
		say(strerror(errno));
		return 1;
	}
	if (WIFSIGNALED(status))
		format(line, sizeof line, "signal", (long)WTERMSIG(status));
	else
		format(line, sizeof line, "exit", (long)WEXITSTATUS(status));
	say(line);
	close(STDOUT_FILENO);

	if (nhook > 0)
		run_hook(hook, pid, line);
	return 0;
}
