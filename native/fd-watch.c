/*
 * fd-watch.c: a stream socket read and written on Node's event loop, without node:net
 * (docs/startup.md, "Children, and the exit").
 *
 * A fresh `svirt start` talks to two sockets: the monitor's status lines and QEMU's QMP. Through
 * node:net that cost ~6 ms of CPU in a fresh process: the module and the stream modules under it load
 * and compile, and a Socket's first read and write run cold code. Here a libuv poll handle
 * watches the fd on Node's own loop; the bytes are read and written in C.
 *
 *   watchFd(fd, cb) -> handle        cb(chunk: Buffer, 0) for data, cb(null, 0) at EOF,
 *                                     cb(null, "ECONNRESET: ...") on an error; after either,
 *                                     nothing more
 *   watchWrite(handle, bytes)         sends what the socket takes now, queues the rest (bounded)
 *   watchClose(handle)                stops watching; the fd stays the caller's to close
 *   watchReadable(fd, cb) -> handle   cb(null, 0) once, when the fd becomes readable (nothing is
 *                                     read: a pidfd, readable when its process has exited)
 *
 * The socket is read and written with MSG_DONTWAIT, so it never blocks whatever its O_NONBLOCK,
 * and written with MSG_NOSIGNAL: a peer gone is EPIPE, not a signal. watchFd also reads the
 * read end of a pipe (a host program's output, src/host/run-program.ts): with read(), after
 * setting O_NONBLOCK on that fd; watchWrite is for sockets only. An active watch keeps Node
 * running, as an open net.Socket does.
 */
#define _GNU_SOURCE
#include "fd-watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "napi-util.h"

/* One read's most; a wake reads at most READS_PER_WAKE of them, then lets the loop go on. */
#define READ_CHUNK (64 * 1024)
#define READS_PER_WAKE 16
/* What a watch queues for a peer that does not read: QMP commands are a few hundred bytes. */
#define MAX_QUEUED (16 * 1024 * 1024)

struct watch {
	uv_poll_t poll;
	napi_env env;
	napi_ref cb;
	napi_async_context async;
	int fd;
	int armed;    /* the events libuv watches for now */
	bool ended;   /* EOF or an error was reported: no more callbacks */
	bool closed;  /* watchClose ran: uv_close is under way or done */
	bool freed_js; /* the JS handle was collected */
	bool uv_done; /* uv_close's callback ran */
	bool notify_only; /* watchReadable: readable is the one event, reported as EOF */
	bool socket;  /* a socket (recv); else a pipe (read, the fd made non-blocking) */
	char *out;    /* queued bytes, out[out_off .. out_len) */
	size_t out_len, out_off;
};

static void maybe_free(struct watch *w)
{
	if (!w->uv_done || !w->freed_js)
		return;
	free(w->out);
	free(w);
}

static void finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct watch *w = data;
	w->freed_js = true;
	maybe_free(w);
}

static void on_closed(uv_handle_t *h)
{
	struct watch *w = h->data;
	napi_delete_reference(w->env, w->cb);
	napi_async_destroy(w->env, w->async);
	w->uv_done = true;
	maybe_free(w);
}

/* Calls cb(chunk, 0), cb(null, 0) or cb(null, "ENAME: text") as Node calls a socket's listeners: microtasks and ticks run after it. */
static void call_js(struct watch *w, const char *data, size_t len, int err)
{
	napi_env env = w->env;
	napi_handle_scope scope;
	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	napi_value cb, recv, argv[2];
	char msg[128] = "";
	if (err != 0) { /* made for an error only: every read comes through here */
		const char *name = strerrorname_np(err);
		snprintf(msg, sizeof msg, "%s: %s", name != NULL ? name : "EIO", strerror(err));
	}
	bool ok = napi_get_reference_value(env, w->cb, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
		  (err == 0 ? napi_create_int32(env, 0, &argv[1])
			    : napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &argv[1])) == napi_ok &&
		  (data != NULL ? napi_create_buffer_copy(env, len, data, NULL, &argv[0])
				: napi_get_null(env, &argv[0])) == napi_ok;
	if (ok && napi_make_callback(env, w->async, recv, cb, 2, argv, NULL) == napi_pending_exception) {
		/* The listener threw: the process's uncaughtException, as for any event listener. */
		napi_value e;
		if (napi_get_and_clear_last_exception(env, &e) == napi_ok)
			napi_fatal_exception(env, e);
	}
	napi_close_handle_scope(env, scope);
}

static int poll_events(struct watch *w)
{
	return (w->ended ? 0 : UV_READABLE) | (w->out_len > w->out_off ? UV_WRITABLE : 0);
}

static void on_poll(uv_poll_t *p, int status, int events);

/* Asks libuv for what the watch still needs, or nothing; only a change costs a system call. */
static void rearm(struct watch *w)
{
	int ev = poll_events(w);
	if (ev == w->armed)
		return;
	if (ev == 0 || uv_poll_start(&w->poll, ev, on_poll) < 0) {
		uv_poll_stop(&w->poll);
		ev = 0;
	}
	w->armed = ev;
}

static void end_with(struct watch *w, int err)
{
	if (w->ended)
		return;
	w->ended = true;
	free(w->out);
	w->out = NULL;
	w->out_len = w->out_off = 0;
	uv_poll_stop(&w->poll);
	w->armed = 0;
	call_js(w, NULL, 0, err);
}

/* Sends data[*sent .. len) while the socket takes it, advancing *sent; 0 (all sent, or the
 * socket is full), or an errno. Never blocks, never raises SIGPIPE. */
static int send_some(int fd, const char *data, size_t len, size_t *sent)
{
	while (*sent < len) {
		ssize_t n = send(fd, data + *sent, len - *sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno;
		}
		*sent += (size_t)n;
	}
	return 0;
}

/* Sends queued bytes while the socket takes them; 0, or an errno. */
static int flush(struct watch *w)
{
	int err = send_some(w->fd, w->out, w->out_len, &w->out_off);
	if (err != 0 || w->out_off < w->out_len)
		return err;
	free(w->out);
	w->out = NULL;
	w->out_len = w->out_off = 0;
	return 0;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct watch *w = p->data;
	if (w->closed || w->ended)
		return;
	if (status < 0) {
		end_with(w, -status);
		return;
	}
	if (events & UV_WRITABLE) {
		int err = flush(w);
		if (err != 0) {
			end_with(w, err);
			return;
		}
	}
	if ((events & UV_READABLE) && w->notify_only) {
		end_with(w, 0);
		return;
	}
	if (events & UV_READABLE) {
		char buf[READ_CHUNK]; /* on the stack: each loop's thread (a worker's too) reads into its own */
		for (int i = 0; i < READS_PER_WAKE; i++) {
			ssize_t n = w->socket ? recv(w->fd, buf, sizeof buf, MSG_DONTWAIT) : read(w->fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				end_with(w, n == 0 ? 0 : errno);
				return;
			}
			call_js(w, buf, (size_t)n, 0);
			if (w->closed || w->ended) /* the listener closed it */
				return;
		}
	}
	rearm(w);
}

static struct watch *get_watch(napi_env env, napi_value v)
{
	void *data = NULL;
	napi_valuetype t;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok ||
	    data == NULL) {
		throw_arg(env, "handle must be a watchFd handle");
		return NULL;
	}
	return data;
}

static napi_value start_watch(napi_env env, napi_callback_info info, bool notify_only);

static napi_value js_watch_fd(napi_env env, napi_callback_info info)
{
	return start_watch(env, info, false);
}

static napi_value js_watch_readable(napi_env env, napi_callback_info info)
{
	return start_watch(env, info, true);
}

static napi_value start_watch(napi_env env, napi_callback_info info, bool notify_only)
{
	napi_value argv[2], result, name;
	napi_valuetype t;
	int fd;
	if (get_args(env, info, 2, 2, argv) < 0 || get_fd(env, argv[0], &fd) < 0)
		return NULL;
	if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
		return throw_arg(env, "watchFd(fd, callback): callback must be a function");
	uv_loop_t *loop;
	if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
		napi_throw_error(env, "ERR_NAPI", "no event loop");
		return NULL;
	}
	struct watch *w = calloc(1, sizeof *w);
	if (w == NULL)
		return throw_errno(env, ENOMEM, "malloc", NULL);
	w->env = env;
	w->fd = fd;
	w->notify_only = notify_only;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		free(w);
		return throw_errno(env, e, "fstat", NULL);
	}
	w->socket = S_ISSOCK(st.st_mode);
	if (!w->socket && !notify_only && S_ISFIFO(st.st_mode)) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			int e = errno;
			free(w);
			return throw_errno(env, e, "fcntl", NULL);
		}
	} else if (!w->socket && !notify_only) {
		free(w);
		return throw_arg(env, "watchFd: the fd must be a socket or a pipe");
	}
	int r = uv_poll_init_socket(loop, &w->poll, w->fd);
	if (r < 0) {
		free(w);
		return throw_errno(env, -r, "uv_poll_init", NULL);
	}
	w->poll.data = w;
	if (napi_create_reference(env, argv[1], 1, &w->cb) != napi_ok ||
	    napi_create_string_utf8(env, "svirt:fdWatch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_async_init(env, NULL, name, &w->async) != napi_ok ||
	    napi_create_external(env, w, finalize, NULL, &result) != napi_ok) {
		/* Nothing above touched the fd: a handle not started is closed and freed. */
		w->freed_js = true;
		w->closed = true;
		uv_close((uv_handle_t *)&w->poll, on_closed);
		napi_throw_error(env, "ERR_NAPI", "cannot set up the watch");
		return NULL;
	}
	r = uv_poll_start(&w->poll, UV_READABLE, on_poll);
	w->armed = UV_READABLE;
	if (r < 0) {
		w->closed = true;
		uv_close((uv_handle_t *)&w->poll, on_closed);
		return throw_errno(env, -r, "uv_poll_start", NULL);
	}
	return result;
}

static napi_value js_watch_write(napi_env env, napi_callback_info info)
{
	napi_value argv[2], undef;
	void *data;
	size_t len;
	bool is;
	if (get_args(env, info, 2, 2, argv) < 0)
		return NULL;
	struct watch *w = get_watch(env, argv[0]);
	if (w == NULL)
		return NULL;
	if (napi_is_buffer(env, argv[1], &is) != napi_ok || !is || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok)
		return throw_arg(env, "watchWrite: bytes must be a Buffer");
	if (w->closed || w->ended)
		return throw_errno(env, w->closed ? EBADF : EPIPE, "send", NULL);
	size_t sent = 0;
	if (w->out_len == w->out_off) { /* nothing queued ahead: straight to the socket */
		int err = send_some(w->fd, data, len, &sent);
		if (err != 0)
			return throw_errno(env, err, "send", NULL);
	}
	if (sent < len) {
		size_t pending = w->out_len - w->out_off, more = len - sent;
		if (pending + more > MAX_QUEUED)
			return throw_errno(env, ENOBUFS, "send", NULL);
		char *q = malloc(pending + more);
		if (q == NULL)
			return throw_errno(env, ENOMEM, "malloc", NULL);
		if (pending > 0)
			memcpy(q, w->out + w->out_off, pending);
		memcpy(q + pending, (char *)data + sent, more);
		free(w->out);
		w->out = q;
		w->out_off = 0;
		w->out_len = pending + more;
		rearm(w);
	}
	NAPI(napi_get_undefined(env, &undef));
	return undef;
}

static napi_value js_watch_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1], undef;
	if (get_args(env, info, 1, 1, argv) < 0)
		return NULL;
	struct watch *w = get_watch(env, argv[0]);
	if (w == NULL)
		return NULL;
	if (!w->closed) {
		w->closed = true;
		uv_poll_stop(&w->poll); /* off the epoll set now: the caller may close the fd next */
		w->armed = 0;
		uv_close((uv_handle_t *)&w->poll, on_closed);
	}
	NAPI(napi_get_undefined(env, &undef));
	return undef;
}

napi_status fd_watch_register(napi_env env, napi_value exports)
{
	static const struct napi_fn fns[] = {
		{ "watchFd", js_watch_fd },
		{ "watchWrite", js_watch_write },
		{ "watchClose", js_watch_close },
		{ "watchReadable", js_watch_readable },
	};
	return register_functions(env, exports, fns, sizeof fns / sizeof fns[0]);
}
