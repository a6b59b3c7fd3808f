/*
 * spawn.c: starting a program without fork() (docs/native.md, "spawn").
 *
 * Node's child_process forks: the kernel copies the page tables of the whole Node process
 * and write-protects its memory, and on a VM where a page fault costs 10-25 us that is 4 ms
 * for a bare node and 6-14 ms for svirt's library or serve, on the start's critical path,
 * once per program. posix_spawn() here runs the child on the parent's memory until it execs
 * (clone with CLONE_VM | CLONE_VFORK): about 0.6 ms whatever the parent's size.
 *
 * The child gets exactly the fds asked for (fd i = fds[i], -1 = /dev/null), every signal at
 * its default and none blocked, optionally a session of its own. A reaper thread waits for
 * every child through a pidfd (one epoll set), so no zombie is left behind and Node's own
 * child handling (libuv waits for its pids only) is untouched; an optional callback gets the
 * exit status on the main thread, without keeping the event loop alive.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "napi-util.h"
#include "spawn.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define MAX_CHILD_FDS 256
#define MAX_STRINGS 4096
#define MAX_STRING (1 << 20)

struct child {
	pid_t pid;
	int pidfd; /* -1: waited for by a thread of its own (no pidfd_open) */
	napi_threadsafe_function tsfn; /* NULL: nobody asked for the status */
	/*
	 * Under `lock`: the status callback's finalizer has run (at the release below, or when
	 * Node tears the environment down first); from then on no thread may touch tsfn. The
	 * struct is freed by whichever of the two holders (reaper, finalizer) lets go last.
	 */
	bool tsfn_gone;
	int holders;
};

struct exit_status {
	int code; /* -1 when killed */
	int sig; /* 0 when it exited */
};

static pthread_once_t reaper_once = PTHREAD_ONCE_INIT;
static int reaper_epfd = -1;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void let_go(struct child *c)
{
	if (--c->holders == 0)
		free(c);
}

/* The finalizer of a child's status callback (main thread). */
static void tsfn_finalized(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct child *c = data;
	pthread_mutex_lock(&lock);
	c->tsfn_gone = true;
	let_go(c);
	pthread_mutex_unlock(&lock);
}

/* The child is reaped: its status goes to the callback, if there is one still to call. */
static void deliver(struct child *c, const siginfo_t *si)
{
	pthread_mutex_lock(&lock);
	if (c->tsfn != NULL && !c->tsfn_gone) {
		napi_status st = napi_closing;
		struct exit_status *s = malloc(sizeof *s);
		if (s != NULL) {
			bool exited = si->si_code == CLD_EXITED;
			s->code = exited ? si->si_status : -1;
			s->sig = exited ? 0 : si->si_status;
			st = napi_call_threadsafe_function(c->tsfn, s, napi_tsfn_nonblocking);
			if (st != napi_ok)
				free(s);
		}
		if (st != napi_closing) /* after napi_closing the function may not be used again */
			napi_release_threadsafe_function(c->tsfn, napi_tsfn_release);
	}
	let_go(c);
	pthread_mutex_unlock(&lock);
}

static void *reaper(void *arg)
{
	(void)arg;
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(reaper_epfd, ev, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct child *c = ev[i].data.ptr;
			siginfo_t si;
			memset(&si, 0, sizeof si);
			int rc;
			do
				rc = waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
			while (rc < 0 && errno == EINTR);
			epoll_ctl(reaper_epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
			close(c->pidfd);
			if (rc < 0) { /* reaped elsewhere (not ours to know): report it as killed */
				si.si_code = CLD_KILLED;
				si.si_status = SIGKILL;
			}
			deliver(c, &si);
		}
	}
}

/* Threads started here block every signal: signals go to Node's threads, as before. */
static int start_thread(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0)
		return -1;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

static void reaper_init(void)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return;
	reaper_epfd = fd;
	if (start_thread(reaper, NULL) < 0) {
		close(fd);
		reaper_epfd = -1;
	}
}

/* Without pidfd_open (Linux < 5.3) or the reaper: one thread waits for this child. */
static void *waiter(void *arg)
{
	struct child *c = arg;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int rc;
	do
		rc = waitid(P_PID, (id_t)c->pid, &si, WEXITED);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		si.si_code = CLD_KILLED;
		si.si_status = SIGKILL;
	}
	deliver(c, &si);
	return NULL;
}

/* Hands the child to the reaper; 0, or -1 when nothing could wait for it (it is killed and waited for here). */
static int watch(struct child *c)
{
	pthread_once(&reaper_once, reaper_init);
	int pidfd = reaper_epfd < 0 ? -1 : (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (pidfd >= 0) {
		fcntl(pidfd, F_SETFD, FD_CLOEXEC); /* pidfds are close-on-exec already; made sure */
		c->pidfd = pidfd;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(reaper_epfd, EPOLL_CTL_ADD, pidfd, &ev) == 0)
			return 0;
		close(pidfd);
	}
	c->pidfd = -1;
	if (start_thread(waiter, c) == 0)
		return 0;
	kill(c->pid, SIGKILL);
	while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
		;
	return -1;
}

static void call_js(napi_env env, napi_value cb, void *context, void *data)
{
	(void)context;
	struct exit_status *s = data;
	if (env != NULL && cb != NULL) {
		napi_value argv[2], undef;
		if (napi_get_undefined(env, &undef) == napi_ok &&
		    (s->sig == 0 ? napi_create_int32(env, s->code, &argv[0]) : napi_get_null(env, &argv[0])) == napi_ok &&
		    (s->sig != 0 ? napi_create_int32(env, s->sig, &argv[1]) : napi_get_null(env, &argv[1])) == napi_ok)
			napi_call_function(env, undef, cb, 2, argv, NULL);
	}
	free(s);
}

/* get_string, and no longer than MAX_STRING; NULL after throwing. */
static char *bounded_string(napi_env env, napi_value v, const char *what)
{
	char *str = get_string(env, v, what);
	if (str != NULL && strlen(str) > MAX_STRING) {
		free(str);
		char msg[96];
		snprintf(msg, sizeof msg, "%s must be at most %d bytes", what, MAX_STRING);
		throw_arg(env, msg);
		return NULL;
	}
	return str;
}

/* A NULL-terminated copy of an array of `min` to MAX_STRINGS strings; NULL after throwing. */
static char **strings_of(napi_env env, napi_value arr, uint32_t min, const char *what)
{
	bool is = false;
	uint32_t n = 0;
	if (napi_is_array(env, arr, &is) != napi_ok || !is || napi_get_array_length(env, arr, &n) != napi_ok || n < min ||
	    n > MAX_STRINGS) {
		char msg[96];
		snprintf(msg, sizeof msg, "%s must be an array of %u to %d strings", what, min, MAX_STRINGS);
		throw_arg(env, msg);
		return NULL;
	}
	char **out = calloc((size_t)n + 1, sizeof *out);
	if (out == NULL) {
		throw_errno(env, ENOMEM, "calloc", NULL);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		napi_value v;
		if (napi_get_element(env, arr, i, &v) != napi_ok || (out[i] = bounded_string(env, v, what)) == NULL) {
			for (uint32_t j = 0; j < i; j++)
				free(out[j]);
			free(out);
			return NULL;
		}
	}
	return out;
}

static void free_strings(char **s)
{
	if (s == NULL)
		return;
	for (char **p = s; *p != NULL; p++)
		free(*p);
	free(s);
}

/*
 * spawn(path, argv, env, fds, setsid, onExit?): pid. fds[i] is the child's fd i (-1: /dev/null);
 * it has no other. onExit(code, signal) is called once, on the main thread, when it has
 * exited (code null when killed, signal null when it exited). Throws when the program could
 * not be run (ENOENT, EACCES, ...): nothing is left behind then.
 */
napi_value js_spawn(napi_env env, napi_callback_info info)
{
	size_t argc = 6;
	napi_value argv[6], result = NULL;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5)
		return throw_arg(env, "spawn(path, argv, env, fds, setsid, onExit?)");
	napi_valuetype cbt = napi_undefined;
	if (argc > 5 && (napi_typeof(env, argv[5], &cbt) != napi_ok || (cbt != napi_function && cbt != napi_undefined)))
		return throw_arg(env, "onExit must be a function");
	bool setsid = false;
	if (napi_get_value_bool(env, argv[4], &setsid) != napi_ok)
		return throw_arg(env, "setsid must be a boolean");
	bool is = false;
	uint32_t nfds = 0;
	if (napi_is_array(env, argv[3], &is) != napi_ok || !is || napi_get_array_length(env, argv[3], &nfds) != napi_ok ||
	    nfds > MAX_CHILD_FDS)
		return throw_arg(env, "fds must be an array of at most 256 fds (-1: /dev/null)");
	int src[MAX_CHILD_FDS];
	for (uint32_t i = 0; i < nfds; i++) {
		napi_value v;
		int32_t fd;
		if (napi_get_element(env, argv[3], i, &v) != napi_ok || napi_get_value_int32(env, v, &fd) != napi_ok || fd < -1)
			return throw_arg(env, "fds must be an array of at most 256 fds (-1: /dev/null)");
		src[i] = fd;
	}
	char *path = bounded_string(env, argv[0], "path");
	if (path == NULL)
		return NULL;
	char **args = strings_of(env, argv[1], 1, "argv");
	char **envp = args == NULL ? NULL : strings_of(env, argv[2], 0, "env");
	if (envp == NULL) {
		free(path);
		free_strings(args);
		return NULL;
	}
	/*
	 * Each source fd is first copied above every target number (close-on-exec), so that the
	 * dup2 onto fd i can never overwrite a source still to be placed.
	 */
	int high[MAX_CHILD_FDS];
	uint32_t made = 0;
	int err = 0;
	const char *what = "fcntl";
	for (; made < nfds; made++) {
		high[made] = src[made] < 0 ? -1 : fcntl(src[made], F_DUPFD_CLOEXEC, (int)(nfds > 3 ? nfds : 3));
		if (src[made] >= 0 && high[made] < 0) {
			err = errno;
			break;
		}
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok = false, attr_ok = false;
	pid_t pid = -1;
	const char *subject = NULL; /* the path an error names: the program's, once past the fds */
	if (err == 0) {
		what = "posix_spawn";
		subject = path;
	}
	if (err == 0 && (err = posix_spawn_file_actions_init(&fa)) == 0)
		fa_ok = true;
	if (err == 0 && (err = posix_spawnattr_init(&attr)) == 0)
		attr_ok = true;
	for (uint32_t i = 0; err == 0 && i < nfds; i++)
		err = high[i] < 0 ? posix_spawn_file_actions_addopen(&fa, (int)i, "/dev/null", O_RDWR, 0)
				  : posix_spawn_file_actions_adddup2(&fa, high[i], (int)i);
	if (err == 0)
		err = posix_spawn_file_actions_addclosefrom_np(&fa, (int)nfds);
	if (err == 0) {
		sigset_t none, all;
		sigemptyset(&none);
		sigfillset(&all);
		short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (setsid ? POSIX_SPAWN_SETSID : 0);
		err = posix_spawnattr_setsigmask(&attr, &none);
		if (err == 0)
			err = posix_spawnattr_setsigdefault(&attr, &all);
		if (err == 0)
			err = posix_spawnattr_setflags(&attr, flags);
	}
	if (err == 0)
		err = posix_spawn(&pid, path, &fa, &attr, args, envp);
	for (uint32_t i = 0; i < made; i++)
		if (high[i] >= 0)
			close(high[i]);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	free_strings(args);
	free_strings(envp);
	if (err != 0) {
		throw_errno(env, err, what, subject);
		free(path);
		return NULL;
	}
	free(path);
	struct child *c = calloc(1, sizeof *c);
	if (c == NULL) { /* out of memory: the child must not run unwatched */
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		napi_throw_error(env, "ENOMEM", "spawn: out of memory");
		return NULL;
	}
	c->pid = pid;
	c->holders = 1;
	napi_value name;
	if (cbt == napi_function && napi_create_string_utf8(env, "svirt spawn exit", NAPI_AUTO_LENGTH, &name) == napi_ok &&
	    napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, c, tsfn_finalized, NULL, call_js, &c->tsfn) == napi_ok) {
		c->holders = 2;
		napi_unref_threadsafe_function(env, c->tsfn); /* a running child does not keep Node alive */
	} else {
		c->tsfn = NULL; /* no callback (or none could be made: the status is dropped, the child still reaped) */
	}
	if (watch(c) < 0) { /* the child was killed and waited for; its status is not reported */
		pthread_mutex_lock(&lock);
		if (c->tsfn != NULL && !c->tsfn_gone)
			napi_release_threadsafe_function(c->tsfn, napi_tsfn_abort);
		let_go(c);
		pthread_mutex_unlock(&lock);
		napi_throw_error(env, "EAGAIN", "spawn: cannot start a thread to wait for the child (it was killed)");
		return NULL;
	}
	if (napi_create_int32(env, pid, &result) != napi_ok)
		return NULL;
	return result;
}

