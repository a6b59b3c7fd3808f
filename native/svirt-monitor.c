/*
 * svirt-monitor: the small per-guest process that outlives the svirt command (like podman's
 * conmon). It starts CHILD, reports its pid and how it ended on fd 1, then runs the hook.
 *
 *   svirt-monitor [--hook ARG]... [--relay PTY,SOCK]... [--notify PATH] [--cgroup2 DIR] [--spec-fd N] -- CHILD [ARGS...]
 *
 * fd 1 gets "pid <pid>\n", later "exit <code>\n" or "signal <num>\n" (or "error <why>\n" and
 * exit status 1 when it cannot fork). The hook argv runs after fd 1 is closed, with
 * SVIRT_CHILD_PID and SVIRT_CHILD_STATUS ("exit 0", "signal 9") in its environment.
 * Uses no heap: a monitor lives as long as its guest.
 *
 * A forked backup (sharing the monitor's pages) watches QEMU through a pidfd and the monitor
 * through a pipe: if the monitor is killed first, the backup runs the hook once QEMU exits,
 * so the guest's files are given back even then.
 *
 *   --notify PATH   before the hook, tell `svirt serve` (listening on the UNIX socket PATH)
 * that the child exited: "exited <pid> <status>\n". The server cleans up and answers "done\n";
 * then no hook runs (it would cost a whole Node start). No socket, a peer of another uid, a
 * wrong answer or none within NOTIFY_TIMEOUT_MS: the hook runs, as without --notify (the
 * cleanup is idempotent, so a server that died half-way is covered by it).
 *
 *   --relay PTY,SOCK   (repeatable) relays a guest's pty chardev: PTY is the master of a pty
 * svirt allocated and labelled, SOCK svirt's end of the socket QEMU's chardev uses. QEMU opens
 * no pty and needs no right on /dev/pts (docs/native.md). As QEMU's own pty backend does,
 * guest output is dropped while nobody has the slave open, and the master is not polled then
 * (its hang-up would wake every poll): its state is checked every ATTACH_CHECK_MS instead.
 *
 *   --cgroup2 DIR   starts CHILD in the cgroup2 directory DIR (clone3 with CLONE_INTO_CGROUP),
 * not in the monitor's own. A process moved into a cgroup2 later (a write to cgroup.procs)
 * makes the kernel wait for an RCU grace period first, holding up every fork on the host;
 * a child created there does not. DIR must be a cgroup2 directory, opened without following
 * a link. Where clone3 refuses (an older kernel, a cgroup that cannot take a process), CHILD
 * is forked as without the option, and the spec's own join reports any error.
 *
 *   --spec-fd N   the child confines itself before it execs CHILD: it reads the confinement
 * spec from fd N and applies it as svirt-exec does (confine.c, the same code, the same
 * one-line errors and exit statuses 201-212). `svirt-monitor --spec-fd N -- QEMU` is
 * `svirt-monitor -- svirt-exec --spec-fd N -- QEMU` without svirt-exec's exec (1.2 ms of a
 * start measured here, docs/native.md). The monitor itself never reads the spec: the fd is closed in it
 * right after the fork, and the spec's buffers are touched only in the child.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdbool.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "confine.h"

extern char **environ;

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* clone3's argument, as far as CLONE_INTO_CGROUP (CLONE_ARGS_SIZE_VER2) */
struct clone_args_v2 {
	unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
		set_tid_size, cgroup;
};

#define MAX_RELAYS 16
#define RELAY_BUF 4096
#define ATTACH_CHECK_MS 250
/* How long the monitor waits for svirt serve's "done". A cleanup that ends a helper waits out
 * its 2 s SIGTERM grace (docs/lifecycle.md), and a notification may wait for one reconcile
 * already running before its own: 5 s covers both. Past it the hook runs; a slow server
 * still finishing is harmless (the hook's reconcile leaves a guest being stopped to it), and
 * a wedged one delays the cleanup by at most this much. */
#define NOTIFY_TIMEOUT_MS 5000
#define NOTIFY_NAME_MAX 64

struct relay {
	int pty;  /* the pty master */
	int sock; /* svirt's end of QEMU's chardev socket; -1 once QEMU closed it */
	bool attached; /* someone has the slave open */
	size_t out_len; /* QEMU -> pty, not yet written */
	size_t in_len;  /* pty -> QEMU, not yet written */
	char out[RELAY_BUF];
	char in[RELAY_BUF];
};

static struct relay relays[MAX_RELAYS];
static int nrelays;

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

static bool is_relay_fd(int fd)
{
	for (int i = 0; i < nrelays; i++)
		if (relays[i].pty == fd || relays[i].sock == fd)
			return true;
	return false;
}

/* Closes every fd from 3 on but the relays' (the child has the image fds; the monitor must
 * not hold them open). */
static void close_from_3(void)
{
	int from = 3;
	bool ranges_ok = true;
	for (;;) {
		int next = -1; /* the lowest relay fd >= from */
		for (int i = 0; i < nrelays; i++) {
			int fds[2] = { relays[i].pty, relays[i].sock };
			for (int k = 0; k < 2; k++)
				if (fds[k] >= from && (next < 0 || fds[k] < next))
					next = fds[k];
		}
		if (next < 0) {
			ranges_ok = ranges_ok && close_range((unsigned)from, ~0U, 0) == 0;
			break;
		}
		if (next > from)
			ranges_ok = ranges_ok && close_range((unsigned)from, (unsigned)next - 1, 0) == 0;
		from = next + 1;
	}
	if (ranges_ok)
		return;
	/* Kernels before 5.9: close up to the fd limit (bounded, the monitor is long-lived
	 * but this runs once). */
	struct rlimit rl;
	long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (long)rl.rlim_cur : 65536;
	for (long fd = 3; fd < max; fd++)
		if (!is_relay_fd((int)fd))
			close((int)fd);
}

static void close_relays(void)
{
	for (int i = 0; i < nrelays; i++) {
		close(relays[i].pty);
		if (relays[i].sock >= 0)
			close(relays[i].sock);
		relays[i].sock = -1;
	}
	nrelays = 0;
}

/* "PTY,SOCK": two fd numbers >= 3, distinct; 0 on success. */
static int parse_relay(const char *arg, struct relay *r)
{
	char *end;
	errno = 0;
	long pty = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != ',' || pty < 3 || pty > 65535)
		return -1;
	const char *rest = end + 1;
	long sock = strtol(rest, &end, 10);
	if (errno != 0 || end == rest || *end != '\0' || sock < 3 || sock > 65535 || sock == pty)
		return -1;
	if (fcntl((int)pty, F_GETFD) < 0 || fcntl((int)sock, F_GETFD) < 0)
		return -1;
	r->pty = (int)pty;
	r->sock = (int)sock;
	r->attached = false;
	r->out_len = r->in_len = 0;
	return 0;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Whether someone has the slave open: the master hangs up while nobody does. */
static bool slave_open(int pty)
{
	struct pollfd p = { .fd = pty, .events = POLLIN | POLLOUT };
	return poll(&p, 1, 0) >= 0 && !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* Writes what is pending from buf; returns -1 when the other end is gone. */
static int flush_buf(int fd, char *buf, size_t *len)
{
	ssize_t n = write(fd, buf, *len);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	memmove(buf, buf + n, *len - (size_t)n);
	*len -= (size_t)n;
	return 0;
}

static void detach(struct relay *r)
{
	r->attached = false;
	r->out_len = 0; /* what the last reader did not take goes, as with QEMU's pty backend */
}

static void close_sock(struct relay *r)
{
	close(r->sock); /* QEMU closed its chardev: nothing more to relay */
	r->sock = -1;
	r->in_len = 0;
}

/* One poll's worth of work for one relay; never leaves an fd that stays ready unserved. */
static void relay_step(struct relay *r, short sock_ev, short pty_ev)
{
	if (r->sock >= 0 && (sock_ev & POLLOUT) && r->in_len > 0 && flush_buf(r->sock, r->in, &r->in_len) < 0)
		close_sock(r);
	if (r->sock >= 0 && (sock_ev & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
		ssize_t n = r->out_len == 0 ? read(r->sock, r->out, sizeof r->out) : -1;
		if (n > 0)
			r->out_len = r->attached ? (size_t)n : 0; /* nobody reads: the output is dropped */
		else if (n == 0 || (r->out_len == 0 && errno != EAGAIN && errno != EINTR) ||
			 (sock_ev & (POLLHUP | POLLERR | POLLNVAL)))
			close_sock(r);
	}
	if (!r->attached)
		return;
	if ((pty_ev & POLLOUT) && r->out_len > 0 && flush_buf(r->pty, r->out, &r->out_len) < 0) {
		detach(r);
		return;
	}
	if ((pty_ev & POLLIN) && r->in_len == 0) {
		ssize_t n = read(r->pty, r->in, sizeof r->in);
		if (n > 0)
			r->in_len = r->sock >= 0 ? (size_t)n : 0;
		else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			detach(r); /* EIO: the last reader closed the slave */
			return;
		}
	}
	if (pty_ev & (POLLHUP | POLLERR | POLLNVAL))
		detach(r);
}

/* Whether the child has ended, leaving it to be reaped. */
static bool exited(pid_t child)
{
	siginfo_t info;
	memset(&info, 0, sizeof info);
	return waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT | WNOHANG) == 0 && info.si_pid != 0;
}

/* Relays until the child exits (its pidfd, or waitpid every check on kernels without one). */
static void relay_until_exit(pid_t child)
{
	int pfd = (int)syscall(SYS_pidfd_open, child, 0);
	struct pollfd p[1 + 2 * MAX_RELAYS];
	int sock_at[MAX_RELAYS], pty_at[MAX_RELAYS];
	for (int i = 0; i < nrelays; i++) {
		set_nonblock(relays[i].pty);
		set_nonblock(relays[i].sock);
	}
	for (;;) {
		nfds_t n = 0;
		bool detached = pfd < 0;
		if (pfd >= 0)
			p[n++] = (struct pollfd){ .fd = pfd, .events = POLLIN };
		for (int i = 0; i < nrelays; i++) {
			struct relay *r = &relays[i];
			if (!r->attached && slave_open(r->pty))
				r->attached = true;
			detached = detached || !r->attached;
			sock_at[i] = pty_at[i] = -1;
			if (r->sock >= 0) {
				sock_at[i] = (int)n;
				p[n++] = (struct pollfd){ .fd = r->sock,
							  .events = (short)((r->out_len == 0 ? POLLIN : 0) |
									    (r->in_len > 0 ? POLLOUT : 0)) };
			}
			if (r->attached) {
				pty_at[i] = (int)n;
				p[n++] = (struct pollfd){ .fd = r->pty,
							  .events = (short)((r->in_len == 0 ? POLLIN : 0) |
									    (r->out_len > 0 ? POLLOUT : 0)) };
			}
		}
		int ready = poll(p, n, detached ? ATTACH_CHECK_MS : -1);
		if (ready < 0 && errno != EINTR)
			break;
		if (pfd >= 0 ? ready > 0 && (p[0].revents & POLLIN) : exited(child))
			break;
		if (ready <= 0)
			continue;
		for (int i = 0; i < nrelays; i++)
			relay_step(&relays[i], sock_at[i] >= 0 ? p[sock_at[i]].revents : 0,
				   pty_at[i] >= 0 ? p[pty_at[i]].revents : 0);
	}
	if (pfd >= 0)
		close(pfd);
	close_relays();
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

/* --notify PATH: absolute, a file name of at most NOTIFY_NAME_MAX bytes, a directory that fits
 * PATH_MAX. Checked once at start, so notify_server needs no error path for it. */
static const char *notify_path;

static bool valid_notify_path(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t name = slash ? strlen(slash + 1) : 0;
	return path[0] == '/' && name > 0 && name <= NOTIFY_NAME_MAX && (size_t)(slash - path) < PATH_MAX;
}

static long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An O_PATH fd of the directory, refusing a symlink anywhere on the way (as svirt serve
 * refuses one when it binds there); kernels before 5.6: at least not the last component. */
static int open_dir(const char *dir)
{
	struct open_how how;
	memset(&how, 0, sizeof how);
	how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof how);
	if (fd < 0 && errno == ENOSYS)
		fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* A non-blocking socket connected to notify_path, reached through its directory's fd (so the
 * address always fits sun_path), whose peer runs as our own uid; -1 otherwise, errno kept. */
static int notify_connect(void)
{
	char dir[PATH_MAX], num[24];
	const char *slash = strrchr(notify_path, '/');
	size_t dlen = slash == notify_path ? 1 : (size_t)(slash - notify_path);
	memcpy(dir, notify_path, dlen);
	dir[dlen] = '\0';
	int dfd = open_dir(dir);
	if (dfd < 0)
		return -1;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	/* "/proc/self/fd/N/NAME": 14 + at most 10 + 1 + NOTIFY_NAME_MAX < sizeof sun_path */
	strcpy(sa.sun_path, "/proc/self/fd/");
	strcat(sa.sun_path, format(num, sizeof num, "", dfd));
	strcat(sa.sun_path, slash);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int err = errno;
	/* non-blocking: a backlog that is full fails at once (EAGAIN) instead of waiting */
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		err = errno;
		close(fd);
		fd = -1;
	}
	close(dfd);
	if (fd < 0) {
		errno = err;
		return -1;
	}
	struct ucred peer;
	socklen_t len = sizeof peer;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 || peer.uid != geteuid()) {
		close(fd);
		errno = EPERM; /* only svirt's own user may tell the monitor its hook is not needed */
		return -1;
	}
	return fd;
}

/* Waits (until the deadline) for one line of at most `size - 1` bytes; its length, or -1. */
static int read_line(int fd, char *buf, size_t size, long deadline)
{
	size_t len = 0;
	while (len < size - 1) {
		long left = deadline - monotonic_ms();
		if (left <= 0)
			return errno = ETIMEDOUT, -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue; /* the deadline is checked above */
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return errno = n == 0 ? ECONNRESET : errno, -1;
		len += (size_t)n;
		if (memchr(buf, '\n', len) != NULL) {
			buf[len] = '\0';
			return (int)len;
		}
	}
	return errno = EMSGSIZE, -1;
}

/* Tells svirt serve the child exited ("exited <pid> <status>"); true once it answered "done".
 * Quiet when no server listens (the usual case without `svirt serve`); other failures say
 * why on stderr (QEMU's log), and the hook runs. */
static bool notify_server(pid_t child, const char *status)
{
	char msg[96], answer[32], num[24];
	long deadline = monotonic_ms() + NOTIFY_TIMEOUT_MS;
	int fd = notify_connect();
	if (fd < 0) {
		if (errno != ENOENT && errno != ECONNREFUSED) {
			put(STDERR_FILENO, "svirt-monitor: cannot tell svirt serve (");
			put(STDERR_FILENO, errno == EPERM ? "its peer is not svirt's user" : strerror(errno));
			put(STDERR_FILENO, "); running the hook\n");
		}
		return false;
	}
	size_t slen = strlen(status);
	strcpy(msg, format(num, sizeof num, "exited", (long)child));
	size_t mlen = strlen(msg);
	if (mlen + 1 + slen + 2 > sizeof msg)
		slen = 0; /* cannot happen: the status is one of this file's short lines */
	msg[mlen++] = ' ';
	memcpy(msg + mlen, status, slen);
	mlen += slen;
	msg[mlen++] = '\n';
	bool done = false;
	const char *why = "its answer was not \"done\"";
	ssize_t sent = send(fd, msg, mlen, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent != (ssize_t)mlen)
		why = sent < 0 ? strerror(errno) : "short write";
	else if (read_line(fd, answer, sizeof answer, deadline) < 0)
		why = errno == ETIMEDOUT ? "no answer in time" : errno == ECONNRESET ? "it closed without an answer" : strerror(errno);
	else
		done = strcmp(answer, "done\n") == 0;
	if (!done) {
		put(STDERR_FILENO, "svirt-monitor: svirt serve did not confirm the cleanup (");
		put(STDERR_FILENO, why);
		put(STDERR_FILENO, "); running the hook\n");
	}
	close(fd);
	return done;
}

/* QEMU has exited: svirt serve cleans up when it listens, else the hook runs. */
static void finish(char **hook, pid_t child, const char *status)
{
	if (notify_path != NULL && notify_server(child, status))
		return;
	if (hook[0] != NULL)
		run_hook(hook, child, status);
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
		close_relays(); /* the pty and QEMU's socket end with the monitor, not with its backup */
		close(STDOUT_FILENO); /* the status channel is the monitor's */
		struct pollfd p[2] = { { .fd = pfd, .events = POLLIN }, { .fd = link[0], .events = POLLIN } };
		if (wait_readable(p, 2) < 0 || (p[0].revents & POLLIN))
			_exit(0); /* QEMU ended while the monitor lives: the monitor runs the hook */
		/* The monitor is gone and QEMU runs on: wait for QEMU, then do the monitor's last job. */
		struct pollfd q = { .fd = pfd, .events = POLLIN };
		if (wait_readable(&q, 1) < 0)
			_exit(1);
		put(STDERR_FILENO, "svirt-monitor: the monitor was gone when QEMU exited; its backup finishes\n");
		finish(hook, child, "unknown");
		_exit(0);
	}
	close(pfd);
	close(link[0]);
	/* link[1] stays open for the monitor's life: its end is the backup's signal. */
}

/* N of --spec-fd: a decimal fd >= 3 that is open (fd 0-2 are the monitor's own); -1 otherwise. */
static int parse_spec_fd(const char *arg)
{
	char *end = NULL;
	errno = 0;
	long fd = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || fd < 3 || fd > 1 << 20 || fcntl((int)fd, F_GETFD) < 0)
		return -1;
	return (int)fd;
}

/* DIR opened as a path (no link followed), if it is a cgroup2 directory; -1 otherwise. */
static int open_cgroup2(const char *dir)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct statfs sf;
	if (fd < 0)
		return -1;
	if (fstatfs(fd, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * fork(), with the child created inside the cgroup2 dir `dfd`; a plain fork where clone3 refuses.
 * A raw clone3 does not update glibc's cached thread id in the child (fork() does), so the child
 * must call nothing that uses it (raise, abort, pthread_*): main's child only sets signals, dup2s
 * and execs.
 */
static pid_t fork_into(int dfd)
{
	struct clone_args_v2 args;
	memset(&args, 0, sizeof args);
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (unsigned long long)dfd;
	long pid = syscall(SYS_clone3, &args, sizeof args);
	if (pid >= 0)
		return (pid_t)pid;
	return fork();
}

int main(int argc, char **argv)
{
	char *hook[argc + 1];
	int nhook = 0, i = 1;
	char line[64];

	int cgroup2 = -1, spec_fd = -1;

	while (i + 1 < argc && (strcmp(argv[i], "--hook") == 0 || strcmp(argv[i], "--relay") == 0 ||
				strcmp(argv[i], "--notify") == 0 || strcmp(argv[i], "--cgroup2") == 0 ||
				strcmp(argv[i], "--spec-fd") == 0)) {
		if (strcmp(argv[i], "--hook") == 0)
			hook[nhook++] = argv[i + 1];
		else if (strcmp(argv[i], "--spec-fd") == 0) {
			if (spec_fd >= 0 || (spec_fd = parse_spec_fd(argv[i + 1])) < 0) {
				put(STDERR_FILENO, "svirt-monitor: --spec-fd wants one open fd >= 3\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--cgroup2") == 0) {
			if (cgroup2 >= 0 || (cgroup2 = open_cgroup2(argv[i + 1])) < 0) {
				put(STDERR_FILENO, "svirt-monitor: --cgroup2 wants one cgroup2 directory\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--notify") == 0) {
			if (notify_path != NULL || !valid_notify_path(argv[i + 1])) {
				put(STDERR_FILENO, "svirt-monitor: --notify wants one absolute socket path (a name of at most 64 bytes)\n");
				return 2;
			}
			notify_path = argv[i + 1];
		} else if (nrelays >= MAX_RELAYS || parse_relay(argv[i + 1], &relays[nrelays++]) < 0) {
			put(STDERR_FILENO, "svirt-monitor: --relay wants PTY,SOCK: two open fds >= 3 (at most 16 relays)\n");
			return 2;
		}
		i += 2;
	}
	hook[nhook] = NULL;
	if (i + 1 >= argc || strcmp(argv[i], "--") != 0) {
		put(STDERR_FILENO, "usage: svirt-monitor [--hook ARG]... [--relay PTY,SOCK]... [--notify PATH] [--cgroup2 DIR] [--spec-fd N] -- CHILD [ARGS...]\n");
		return 2;
	}
	char **child_argv = &argv[i + 1];

	if (getsid(0) != getpid() && setsid() < 0) {
		/* EPERM: already a process-group leader; it still works as a monitor */
	}
	set_signals(SIG_IGN);

	pid_t pid = cgroup2 >= 0 ? fork_into(cgroup2) : fork();
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
		if (spec_fd >= 0)
			confine_exec(spec_fd, child_argv);
		execve(child_argv[0], child_argv, environ);
		put(STDERR_FILENO, "svirt-monitor: cannot execute ");
		put(STDERR_FILENO, child_argv[0]);
		put(STDERR_FILENO, ": ");
		put(STDERR_FILENO, strerror(errno));
		put(STDERR_FILENO, "\n");
		_exit(127);
	}

	close_from_3(); /* the child has the image fds (the monitor must not hold them open); the cgroup2 dir fd goes too */
	/* The backup first: once svirt knows the pid (and its start returns), the monitor may be
	 * killed at any time, and the backup must already be there to finish its job. */
	if (nhook > 0 || notify_path != NULL)
		start_backup(hook, pid);
	say(format(line, sizeof line, "pid", (long)pid));
	if (nrelays > 0)
		relay_until_exit(pid);

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

	finish(hook, pid, line);
	return 0;
}
