/*
 * svirt_native.node: the syscalls Node lacks (N-API 8, node_api.h only).
 *
 * Failures throw an Error with .code (errno name, e.g. 'ENOENT'), .errno (positive errno
 * number), .syscall and, for path calls, .path. The JavaScript side (src/host/native.ts)
 * gives every function its type; docs/native.md lists them.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <termios.h>
#include <uchar.h>
#include <unistd.h>

#include "landlock-abi.h"
#include "open-as.h"
#include "open-path.h"
#include "access.h"
#include "fd-watch.h"
#include "devfilter.h"
#include "napi-util.h"
#include "spawn.h"
#include "map-file.h"
#include "proc-stat.h"

#define MAX_FDS 253 /* SCM_MAX_FD */
#define MAX_RECV_DATA (1 << 20)
#define XATTR_RETRIES 8

napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path)
{
	const char *name = strerrorname_np(err);
	char codebuf[16], msg[4200];
	if (name == NULL) {
		snprintf(codebuf, sizeof codebuf, "E%d", err);
		name = codebuf;
	}
	if (path != NULL)
		snprintf(msg, sizeof msg, "%s: %s, %s '%s'", name, strerror(err), syscall, path);
	else
		snprintf(msg, sizeof msg, "%s: %s, %s", name, strerror(err), syscall);
	napi_value code, message, error, v;
	if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
	    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
	    napi_create_error(env, code, message, &error) != napi_ok) {
		napi_throw_error(env, name, msg);
		return NULL;
	}
	if (napi_create_int32(env, err, &v) == napi_ok)
		napi_set_named_property(env, error, "errno", v);
	if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v) == napi_ok)
		napi_set_named_property(env, error, "syscall", v);
	if (path != NULL && napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v) == napi_ok)
		napi_set_named_property(env, error, "path", v);
	napi_throw(env, error);
	return NULL;
}

napi_value throw_arg(napi_env env, const char *msg)
{
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
	return NULL;
}

napi_value fd_result(napi_env env, int fd)
{
	napi_value result;
	if (napi_create_int32(env, fd, &result) != napi_ok) {
		close(fd);
		napi_throw_error(env, "ERR_NAPI", "cannot build the result");
		return NULL;
	}
	return result;
}

napi_status register_functions(napi_env env, napi_value exports, const struct napi_fn *fns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		napi_value f;
		napi_status s = napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		if (s == napi_ok)
			s = napi_set_named_property(env, exports, fns[i].name, f);
		if (s != napi_ok)
			return s;
	}
	return napi_ok;
}

/* Fills argv[0..max) (missing ones are undefined) and checks at least `need` were given. */
int get_args(napi_env env, napi_callback_info info, size_t need, size_t max, napi_value *argv)
{
	size_t argc = max;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
		return -1;
	if (argc < need) {
		throw_arg(env, "missing arguments");
		return -1;
	}
	return 0;
}

/* A malloc'd UTF-8 copy of a JS string without NUL bytes; NULL after throwing. */
char *get_string(napi_env env, napi_value v, const char *what)
{
	napi_valuetype t;
	size_t len;
	char msg[96];
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
	    napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
		snprintf(msg, sizeof msg, "%s must be a string", what);
		throw_arg(env, msg);
		return NULL;
	}
	char *s = malloc(len + 1);
	if (s == NULL) {
		throw_errno(env, ENOMEM, "malloc", NULL);
		return NULL;
	}
	napi_get_value_string_utf8(env, v, s, len + 1, &len);
	if (strlen(s) != len) {
		free(s);
		snprintf(msg, sizeof msg, "%s must not contain NUL bytes", what);
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return NULL;
	}
	return s;
}

/* An integer in [lo, hi]; -1 after throwing. */
static int get_int(napi_env env, napi_value v, const char *what, int64_t lo, int64_t hi, int64_t *out)
{
	napi_valuetype t;
	double d;
	char msg[96];
	/* range first (also rejects NaN), so that the cast below is defined */
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
	    napi_get_value_double(env, v, &d) != napi_ok || !(d >= (double)lo && d <= (double)hi) ||
	    d != (double)(int64_t)d) {
		snprintf(msg, sizeof msg, "%s must be an integer in [%lld, %lld]", what, (long long)lo,
			 (long long)hi);
		throw_arg(env, msg);
		return -1;
	}
	*out = (int64_t)d;
	return 0;
}

int get_fd(napi_env env, napi_value v, int *fd)
{
	int64_t n;
	if (get_int(env, v, "fd", 0, INT_MAX, &n) < 0)
		return -1;
	*fd = (int)n;
	return 0;
}

/* The bytes of a Buffer/Uint8Array, or of a string (UTF-8, copied into *owned). */
static int get_bytes(napi_env env, napi_value v, const void **data, size_t *len, char **owned)
{
	bool is;
	*owned = NULL;
	if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
		napi_typedarray_type type;
		size_t n;
		void *p;
		if (napi_get_typedarray_info(env, v, &type, &n, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
			throw_arg(env, "value must be a Buffer, a Uint8Array or a string");
			return -1;
		}
		*data = p;
		*len = n;
		return 0;
	}
	napi_valuetype t;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
		throw_arg(env, "value must be a Buffer, a Uint8Array or a string");
		return -1;
	}
	size_t n;
	napi_get_value_string_utf8(env, v, NULL, 0, &n);
	if ((*owned = malloc(n + 1)) == NULL) {
		throw_errno(env, ENOMEM, "malloc", NULL);
		return -1;
	}
	napi_get_value_string_utf8(env, v, *owned, n + 1, &n);
	*data = *owned;
	*len = n;
	return 0;
}

/* The target of an xattr call: a path (l*xattr, no symlink following) or an fd (f*xattr). */
struct target {
	char *path;
	int fd;
};

static int get_target(napi_env env, napi_value v, int use_fd, struct target *t)
{
	t->path = NULL;
	t->fd = -1;
	if (use_fd)
		return get_fd(env, v, &t->fd);
	t->path = get_string(env, v, "path");
	return t->path == NULL ? -1 : 0;
}

/* An O_PATH fd (how svirt holds files it labels, sockets included) takes no f*xattr call on
 * older kernels: its /proc/self/fd magic link names exactly that file, so the following
 * variants act on it. */
static int opath_name(int fd, char *buf, size_t size)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || !(fl & O_PATH))
		return 0;
	snprintf(buf, size, "/proc/self/fd/%d", fd);
	return 1;
}

static ssize_t x_get(const struct target *t, const char *name, void *buf, size_t size)
{
	char p[64];
	if (t->path)
		return lgetxattr(t->path, name, buf, size);
	return opath_name(t->fd, p, sizeof p) ? getxattr(p, name, buf, size) : fgetxattr(t->fd, name, buf, size);
}

static ssize_t x_list(const struct target *t, char *buf, size_t size)
{
	char p[64];
	if (t->path)
		return llistxattr(t->path, buf, size);
	return opath_name(t->fd, p, sizeof p) ? listxattr(p, buf, size) : flistxattr(t->fd, buf, size);
}

static int x_set(const struct target *t, const char *name, const void *v, size_t len, int flags)
{
	char p[64];
	if (t->path)
		return lsetxattr(t->path, name, v, len, flags);
	return opath_name(t->fd, p, sizeof p) ? setxattr(p, name, v, len, flags) : fsetxattr(t->fd, name, v, len, flags);
}

static int x_remove(const struct target *t, const char *name)
{
	char p[64];
	if (t->path)
		return lremovexattr(t->path, name);
	return opath_name(t->fd, p, sizeof p) ? removexattr(p, name) : fremovexattr(t->fd, name);
}

/* Reads a value or a name list: size query, then fetch; retried when it grew in between.
 * Returns the length with *out malloc'd, or -1 with errno set. */
static ssize_t x_fetch(const struct target *t, const char *name, char **out)
{
	for (int tries = 0; tries < XATTR_RETRIES; tries++) {
		ssize_t size = name ? x_get(t, name, NULL, 0) : x_list(t, NULL, 0);
		if (size < 0)
			return -1;
		char *buf = malloc((size_t)size + 1);
		if (buf == NULL) {
			errno = ENOMEM;
			return -1;
		}
		/* With size 0 the kernel only reports the length: treat a larger answer as ERANGE. */
		ssize_t n = name ? x_get(t, name, buf, (size_t)size) : x_list(t, buf, (size_t)size);
		if (n >= 0 && n <= size) {
			*out = buf;
			return n;
		}
		free(buf);
		if (n >= 0)
			errno = ERANGE;
		if (errno != ERANGE)
			return -1;
	}
	errno = ERANGE;
	return -1;
}

static napi_value do_getxattr(napi_env env, napi_callback_info info, int use_fd)
{
	napi_value argv[2], result = NULL;
	struct target t;
	char *name, *buf;
	if (get_args(env, info, 2, 2, argv) < 0 || get_target(env, argv[0], use_fd, &t) < 0)
		return NULL;
	if ((name = get_string(env, argv[1], "name")) != NULL) {
		ssize_t n = x_fetch(&t, name, &buf);
		if (n >= 0) {
			if (napi_create_buffer_copy(env, (size_t)n, buf, NULL, &result) != napi_ok)
				napi_throw_error(env, "ERR_NAPI", "cannot create a Buffer");
			free(buf);
		} else if (errno == ENODATA) {
			napi_get_undefined(env, &result);
		} else {
			throw_errno(env, errno, use_fd ? "fgetxattr" : "lgetxattr", t.path);
		}
	}
	free(name);
	free(t.path);
	return result;
}

static napi_value do_setxattr(napi_env env, napi_callback_info info, int use_fd)
{
	napi_value argv[4], result = NULL;
	struct target t;
	const void *data;
	size_t len;
	char *owned = NULL, *name = NULL;
	int64_t flags = 0;
	napi_valuetype ft = napi_undefined;
	if (get_args(env, info, 3, 4, argv) < 0 || get_target(env, argv[0], use_fd, &t) < 0)
		return NULL;
	if ((name = get_string(env, argv[1], "name")) != NULL &&
	    get_bytes(env, argv[2], &data, &len, &owned) == 0 &&
	    (napi_typeof(env, argv[3], &ft) != napi_ok || ft == napi_undefined ||
	     get_int(env, argv[3], "flags", 0, XATTR_CREATE | XATTR_REPLACE, &flags) == 0)) {
		int r = x_set(&t, name, data, len, (int)flags);
		if (r < 0)
			throw_errno(env, errno, use_fd ? "fsetxattr" : "lsetxattr", t.path);
		else
			napi_get_undefined(env, &result);
	}
	free(owned);
	free(name);
	free(t.path);
	return result;
}

static napi_value do_removexattr(napi_env env, napi_callback_info info, int use_fd)
{
	napi_value argv[2], result = NULL;
	struct target t;
	if (get_args(env, info, 2, 2, argv) < 0 || get_target(env, argv[0], use_fd, &t) < 0)
		return NULL;
	char *name = get_string(env, argv[1], "name");
	if (name != NULL) {
		int r = x_remove(&t, name);
		if (r < 0 && errno != ENODATA) /* already absent is what the caller wanted */
			throw_errno(env, errno, use_fd ? "fremovexattr" : "lremovexattr", t.path);
		else
			napi_get_undefined(env, &result);
	}
	free(name);
	free(t.path);
	return result;
}

static napi_value do_listxattr(napi_env env, napi_callback_info info, int use_fd)
{
	napi_value argv[1], result = NULL, s;
	struct target t;
	char *buf;
	if (get_args(env, info, 1, 1, argv) < 0 || get_target(env, argv[0], use_fd, &t) < 0)
		return NULL;
	ssize_t n = x_fetch(&t, NULL, &buf);
	if (n < 0) {
		throw_errno(env, errno, use_fd ? "flistxattr" : "llistxattr", t.path);
	} else if (napi_create_array(env, &result) == napi_ok) {
		uint32_t i = 0;
		for (ssize_t off = 0; off < n;) { /* NUL-separated names */
			size_t l = strnlen(buf + off, (size_t)(n - off));
			if (l > 0 && napi_create_string_utf8(env, buf + off, l, &s) == napi_ok)
				napi_set_element(env, result, i++, s);
			off += (ssize_t)l + 1;
		}
		free(buf);
	} else {
		free(buf);
		napi_throw_error(env, "ERR_NAPI", "cannot create an array");
	}
	free(t.path);
	return result;
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) { return do_getxattr(env, info, 0); }
static napi_value js_fgetxattr(napi_env env, napi_callback_info info) { return do_getxattr(env, info, 1); }
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) { return do_setxattr(env, info, 0); }
static napi_value js_fsetxattr(napi_env env, napi_callback_info info) { return do_setxattr(env, info, 1); }
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) { return do_removexattr(env, info, 0); }
static napi_value js_fremovexattr(napi_env env, napi_callback_info info) { return do_removexattr(env, info, 1); }
static napi_value js_llistxattr(napi_env env, napi_callback_info info) { return do_listxattr(env, info, 0); }
static napi_value js_flistxattr(napi_env env, napi_callback_info info) { return do_listxattr(env, info, 1); }

union fd_cmsg {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
};

/*
 * sendFds(socketFd, data, fds[, now]): bytes sent. With `now` true it never blocks: it sends
 * what the socket takes at once (MSG_DONTWAIT), which may be less than data, and 0 when it
 * takes nothing.
 */
static napi_value js_send_fds(napi_env env, napi_callback_info info)
{
	napi_value argv[4], result;
	int sock, fds[MAX_FDS];
	uint32_t nfds;
	bool is_array, now = false;
	napi_valuetype now_type;
	const void *data;
	size_t len;
	char *owned;
	if (get_args(env, info, 3, 4, argv) < 0 || get_fd(env, argv[0], &sock) < 0)
		return NULL;
	if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array)
		return throw_arg(env, "fds must be an array");
	NAPI(napi_typeof(env, argv[3], &now_type));
	if (now_type != napi_undefined && (now_type != napi_boolean || napi_get_value_bool(env, argv[3], &now) != napi_ok))
		return throw_arg(env, "now must be a boolean");
	NAPI(napi_get_array_length(env, argv[2], &nfds));
	if (nfds > MAX_FDS)
		return throw_errno(env, EINVAL, "sendmsg", NULL);
	for (uint32_t i = 0; i < nfds; i++) {
		napi_value e;
		NAPI(napi_get_element(env, argv[2], i, &e));
		if (get_fd(env, e, &fds[i]) < 0)
			return NULL;
	}
	if (get_bytes(env, argv[1], &data, &len, &owned) < 0)
		return NULL;
	if (len == 0 && nfds > 0) { /* fds ride on data: a stream socket would drop them */
		free(owned);
		return throw_errno(env, EINVAL, "sendmsg", NULL);
	}
	union fd_cmsg cbuf;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > 0) {
		memset(&cbuf, 0, sizeof cbuf);
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL | (now ? MSG_DONTWAIT : 0))) < 0 && errno == EINTR) {
	}
	int err = errno;
	free(owned);
	if (n < 0 && now && (err == EAGAIN || err == EWOULDBLOCK))
		n = 0;
	else if (n < 0)
		return throw_errno(env, err, "sendmsg", NULL);
	NAPI(napi_create_int64(env, n, &result));
	return result;
}

/* recvFds(socketFd, maxData, maxFds): { data, fds }; received fds are close-on-exec. */
static napi_value js_recv_fds(napi_env env, napi_callback_info info)
{
	napi_value argv[3], result = NULL, data, fds, v;
	int sock;
	int64_t max_data, max_fds;
	if (get_args(env, info, 3, 3, argv) < 0 || get_fd(env, argv[0], &sock) < 0 ||
	    get_int(env, argv[1], "maxData", 1, MAX_RECV_DATA, &max_data) < 0 ||
	    get_int(env, argv[2], "maxFds", 0, MAX_FDS, &max_fds) < 0)
		return NULL;
	char *buf = malloc((size_t)max_data);
	if (buf == NULL)
		return throw_errno(env, ENOMEM, "malloc", NULL);
	union fd_cmsg cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = (size_t)max_data };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (max_fds > 0) {
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)max_fds);
	}
	ssize_t n;
	while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
	}
	if (n < 0) {
		int err = errno;
		free(buf);
		return throw_errno(env, err, "recvmsg", NULL);
	}
	int got[MAX_FDS], ngot = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (ngot < MAX_FDS)
				got[ngot++] = fd;
			else
				close(fd);
		}
	}
	/* Some fds were dropped, or more came than asked for (the control buffer is rounded
	 * up): do not hand out part of a message. */
	if ((msg.msg_flags & MSG_CTRUNC) || ngot > max_fds) {
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		free(buf);
		return throw_errno(env, EMSGSIZE, "recvmsg", NULL);
	}
	if (napi_create_buffer_copy(env, (size_t)n, buf, NULL, &data) == napi_ok &&
	    napi_create_array_with_length(env, (size_t)ngot, &fds) == napi_ok &&
	    napi_create_object(env, &result) == napi_ok) {
		for (int i = 0; i < ngot; i++)
			if (napi_create_int32(env, got[i], &v) == napi_ok)
				napi_set_element(env, fds, (uint32_t)i, v);
		napi_set_named_property(env, result, "data", data);
		napi_set_named_property(env, result, "fds", fds);
	} else {
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		napi_throw_error(env, "ERR_NAPI", "cannot build the result");
		result = NULL;
	}
	free(buf);
	return result;
}

/* socketpair(): [fd, fd], AF_UNIX stream, close-on-exec. */
static napi_value js_socketpair(napi_env env, napi_callback_info info)
{
	(void)info;
	int sv[2];
	napi_value result, a, b;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return throw_errno(env, errno, "socketpair", NULL);
	if (napi_create_array_with_length(env, 2, &result) != napi_ok ||
	    napi_create_int32(env, sv[0], &a) != napi_ok || napi_create_int32(env, sv[1], &b) != napi_ok ||
	    napi_set_element(env, result, 0, a) != napi_ok || napi_set_element(env, result, 1, b) != napi_ok) {
		close(sv[0]);
		close(sv[1]);
		napi_throw_error(env, "ERR_NAPI", "cannot build the result");
		return NULL;
	}
	return result;
}

/* pipe(): [readFd, writeFd], close-on-exec, both blocking (watchFd makes the end it reads non-blocking). */
static napi_value js_pipe(napi_env env, napi_callback_info info)
{
	(void)info;
	int p[2];
	napi_value result, a, b;
	if (pipe2(p, O_CLOEXEC) < 0)
		return throw_errno(env, errno, "pipe2", NULL);
	if (napi_create_array_with_length(env, 2, &result) != napi_ok || napi_create_int32(env, p[0], &a) != napi_ok ||
	    napi_create_int32(env, p[1], &b) != napi_ok || napi_set_element(env, result, 0, a) != napi_ok ||
	    napi_set_element(env, result, 1, b) != napi_ok) {
		close(p[0]);
		close(p[1]);
		napi_throw_error(env, "ERR_NAPI", "cannot build the result");
		return NULL;
	}
	return result;
}

/* peerCred(socketFd): { pid, uid, gid } of the peer, as of connect()/socketpair(). */
static napi_value js_peer_cred(napi_env env, napi_callback_info info)
{
	napi_value argv[1], result, v;
	int sock;
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (get_args(env, info, 1, 1, argv) < 0 || get_fd(env, argv[0], &sock) < 0)
		return NULL;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return throw_errno(env, errno, "getsockopt", NULL);
	NAPI(napi_create_object(env, &result));
	NAPI(napi_create_int64(env, cred.pid, &v));
	NAPI(napi_set_named_property(env, result, "pid", v));
	NAPI(napi_create_int64(env, cred.uid, &v));
	NAPI(napi_set_named_property(env, result, "uid", v));
	NAPI(napi_create_int64(env, cred.gid, &v));
	NAPI(napi_set_named_property(env, result, "gid", v));
	return result;
}

/* dupOnto(fd, target): makes `target` (0, 1 or 2) refer to what `fd` does, without close-on-exec
 * (dup3). The warm worker lends a client's stdin, stdout and stderr to the verb it runs for it. */
static napi_value js_dup_onto(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int fd;
	int64_t target;
	if (get_args(env, info, 2, 2, argv) < 0 || get_fd(env, argv[0], &fd) < 0 ||
	    get_int(env, argv[1], "target", 0, 2, &target) < 0)
		return NULL;
	if (fd == (int)target)
		return NULL;
	int r;
	while ((r = dup3(fd, (int)target, 0)) < 0 && errno == EINTR) {
	}
	if (r < 0)
		return throw_errno(env, errno, "dup3", NULL);
	return NULL;
}

/* dupAside(fd): a close-on-exec copy of `fd` numbered 10 or above (F_DUPFD_CLOEXEC). */
static napi_value js_dup_aside(napi_env env, napi_callback_info info)
{
	napi_value argv[1], result;
	int fd;
	if (get_args(env, info, 1, 1, argv) < 0 || get_fd(env, argv[0], &fd) < 0)
		return NULL;
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	if (copy < 0)
		return throw_errno(env, errno, "fcntl", NULL);
	NAPI(napi_create_int32(env, copy, &result));
	return result;
}

/* pollIn(fd, timeoutMs): true when `fd` has something to read (or its peer hung up) within
 * timeoutMs (-1: no limit), false when the time ran out. Blocks the calling thread: for the CLI's
 * client end of the warm worker, which has nothing else to do meanwhile. */
static napi_value js_poll_in(napi_env env, napi_callback_info info)
{
	napi_value argv[2], result;
	int fd;
	int64_t ms;
	if (get_args(env, info, 2, 2, argv) < 0 || get_fd(env, argv[0], &fd) < 0 ||
	    get_int(env, argv[1], "timeoutMs", -1, 600000, &ms) < 0)
		return NULL;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;
	while ((r = poll(&p, 1, (int)ms)) < 0 && errno == EINTR) {
	}
	if (r < 0)
		return throw_errno(env, errno, "poll", NULL);
	NAPI(napi_get_boolean(env, r > 0, &result));
	return result;
}

/* pidfdOpen(pid): a pidfd (close-on-exec) of the process `pid` is now; ESRCH when there is
 * none. What it names cannot change: check the process's identity once it is open, then
 * signal and wait through it (proc.ts's holdProcess), never by pid again. */
static napi_value js_pidfd_open(napi_env env, napi_callback_info info)
{
	napi_value argv[1], result;
	int64_t pid;
	if (get_args(env, info, 1, 1, argv) < 0 || get_int(env, argv[0], "pid", 1, INT32_MAX, &pid) < 0)
		return NULL;
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0)
		return throw_errno(env, errno, "pidfd_open", NULL);
	NAPI(napi_create_int32(env, fd, &result));
	return result;
}

/* pidfdSignal(fd, signo): pidfd_send_signal; false when the process has exited (ESRCH). */
static napi_value js_pidfd_signal(napi_env env, napi_callback_info info)
{
	napi_value argv[2], result;
	int fd;
	int64_t signo;
	if (get_args(env, info, 2, 2, argv) < 0 || get_fd(env, argv[0], &fd) < 0 ||
	    get_int(env, argv[1], "signo", 1, 64, &signo) < 0)
		return NULL;
	long r = syscall(SYS_pidfd_send_signal, fd, (int)signo, NULL, 0);
	if (r < 0 && errno != ESRCH)
		return throw_errno(env, errno, "pidfd_send_signal", NULL);
	NAPI(napi_get_boolean(env, r == 0, &result));
	return result;
}

/* landlockAbi(): the running kernel's Landlock ABI version. */
static napi_value js_landlock_abi(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value result;
	int abi = ll_abi();
	if (abi < 0)
		return throw_errno(env, errno, "landlock_create_ruleset", NULL);
	NAPI(napi_create_int32(env, abi, &result));
	return result;
}

/* fnv1a32(text, basis): FNV-1a over the string's UTF-16 code units, bit for bit what
 * src/host/fingerprint.ts computes (a test holds them equal). In JS a start's Landlock label
 * (two lanes over a ruleset of several kB) is a hot loop in a fresh process: ~2 ms
 * interpreted, then compiled on the stack (issue 17). */
static napi_value js_fnv1a32(napi_env env, napi_callback_info info)
{
	napi_value argv[2], result;
	napi_valuetype t;
	size_t len;
	uint32_t h;
	if (get_args(env, info, 2, 2, argv) < 0)
		return NULL;
	if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_string ||
	    napi_get_value_string_utf16(env, argv[0], NULL, 0, &len) != napi_ok)
		return throw_arg(env, "text must be a string");
	if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_number ||
	    napi_get_value_uint32(env, argv[1], &h) != napi_ok)
		return throw_arg(env, "basis must be a number");
	char16_t *units = malloc((len + 1) * sizeof *units);
	if (units == NULL)
		return throw_errno(env, ENOMEM, "malloc", NULL);
	if (napi_get_value_string_utf16(env, argv[0], units, len + 1, &len) != napi_ok) {
		free(units);
		return throw_arg(env, "text must be a string");
	}
	for (size_t i = 0; i < len; i++)
		h = (h ^ units[i]) * 0x01000193u;
	free(units);
	NAPI(napi_create_uint32(env, h, &result));
	return result;
}

/* procStartTime(pid): field 22 of /proc/PID/stat, -1 when the process is gone or a zombie
 * (proc-stat.c). In C because reconcile reads one per running guest on every command: ~13 us
 * a read here against ~30 in a fresh Node's readFileSync and parse (issue 17). */
static napi_value js_proc_start_time(napi_env env, napi_callback_info info)
{
	napi_value argv[1], result;
	napi_valuetype t;
	int64_t pid;
	if (get_args(env, info, 1, 1, argv) < 0)
		return NULL;
	if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_number ||
	    napi_get_value_int64(env, argv[0], &pid) != napi_ok)
		return throw_arg(env, "pid must be a number");
	NAPI(napi_create_int64(env, proc_start_time(pid), &result));
	return result;
}

/* openPath(path): an O_PATH fd of exactly the file the absolute path names when no component
 * is a symlink (openat2 RESOLVE_NO_SYMLINKS), else ELOOP. Sockets, FIFOs and devices open
 * without side effects; reopen through /proc/self/fd/N for I/O. */
static napi_value js_open_path(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (get_args(env, info, 1, 1, argv) < 0)
		return NULL;
	char *path = get_string(env, argv[0], "path");
	if (path == NULL)
		return NULL;
	int fd = open_path_nofollow(path);
	if (fd < 0) {
		int err = errno;
		napi_value e = throw_errno(env, err, "openat2", path);
		free(path);
		return e;
	}
	free(path);
	return fd_result(env, fd);
}

/* The address of socket NAME (argument `v`) inside the directory dirFd holds, spelled through
 * /proc/self/fd/DIRFD so a swap of the directory's path cannot move it. Throws and returns -1
 * when NAME is not one short path component. */
static int unix_at_address(napi_env env, int dir, napi_value v, const char *fn, struct sockaddr_un *sa)
{
	char *name = get_string(env, v, "name");
	if (name == NULL)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	int bad = strchr(name, '/') != NULL || name[0] == '\0' ||
		  snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dir, name) >= (int)sizeof sa->sun_path;
	free(name);
	if (bad) {
		char msg[96];
		snprintf(msg, sizeof msg, "%s: the socket name must be a short single path component", fn);
		throw_arg(env, msg);
		return -1;
	}
	return 0;
}

/* listenUnixAt(dirFd, name, backlog): a listening AF_UNIX stream socket bound to NAME inside
 * the directory dirFd holds (bound through /proc/self/fd/DIRFD, so a swap of the directory's
 * path cannot move it), close-on-exec. */
static napi_value js_listen_unix_at(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	int dir;
	int64_t backlog;
	if (get_args(env, info, 3, 3, argv) < 0 || get_fd(env, argv[0], &dir) < 0 ||
	    get_int(env, argv[2], "backlog", 1, 4096, &backlog) < 0)
		return NULL;
	struct sockaddr_un sa;
	if (unix_at_address(env, dir, argv[1], "listenUnixAt", &sa) < 0)
		return NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return throw_errno(env, errno, "socket", NULL);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, (int)backlog) < 0) {
		int err = errno;
		close(fd);
		return throw_errno(env, err, "bind", NULL);
	}
	return fd_result(env, fd);
}

/* tapCreate(name, vnetHdr): [fd, name, ifindex] of a new tap device (close-on-exec).
 * IFF_TUN_EXCL: an existing device of that name is EBUSY, never attached to; "vnet%d" lets the
 * kernel pick a free name. Owned by root (TUNSETOWNER 0), so no unprivileged process can attach
 * a queue to it should it ever outlive its fd. Not persistent: it goes with the last fd. */
static napi_value js_tap_create(napi_env env, napi_callback_info info)
{
	napi_value argv[2], result, v;
	bool vnet;
	if (get_args(env, info, 2, 2, argv) < 0)
		return NULL;
	if (napi_get_value_bool(env, argv[1], &vnet) != napi_ok)
		return throw_arg(env, "tapCreate: vnetHdr must be a boolean");
	char *name = get_string(env, argv[0], "name");
	if (name == NULL)
		return NULL;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	if (name[0] == '\0' || strlen(name) >= IFNAMSIZ || strchr(name, '/') != NULL) {
		free(name);
		return throw_arg(env, "tapCreate: the name must be 1-15 bytes without '/'");
	}
	memcpy(ifr.ifr_name, name, strlen(name));
	free(name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL | (vnet ? IFF_VNET_HDR : 0);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "open", "/dev/net/tun");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int err = errno;
		close(fd);
		return throw_errno(env, err, "ioctl(TUNSETIFF)", NULL);
	}
	unsigned int index = if_nametoindex(ifr.ifr_name);
	if (ioctl(fd, TUNSETOWNER, 0UL) < 0 || index == 0) {
		int err = errno;
		close(fd);
		return throw_errno(env, err, index == 0 ? "if_nametoindex" : "ioctl(TUNSETOWNER)", NULL);
	}
	ifr.ifr_name[IFNAMSIZ - 1] = '\0';
	if (napi_create_array_with_length(env, 3, &result) != napi_ok || napi_create_int32(env, fd, &v) != napi_ok ||
	    napi_set_element(env, result, 0, v) != napi_ok ||
	    napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v) != napi_ok ||
	    napi_set_element(env, result, 1, v) != napi_ok || napi_create_uint32(env, index, &v) != napi_ok ||
	    napi_set_element(env, result, 2, v) != napi_ok) {
		close(fd);
		napi_throw_error(env, "ERR_NAPI", "cannot build the result");
		return NULL;
	}
	return result;
}

/* openPty(): a new pty pair of the host's devpts, for a guest's serial port or console:
 * [masterFd, slaveFd, index] (both close-on-exec, non-blocking, no controlling tty). The
 * slave is reached through the master (TIOCGPTPEER), never by path, and set raw as QEMU's
 * own pty backend sets it (cfmakeraw), so /dev/pts/<index> relays bytes unchanged. */
static napi_value js_open_pty(napi_env env, napi_callback_info info)
{
	napi_value result, v;
	int unlock = 0, index = -1;
	(void)info;
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (master < 0)
		return throw_errno(env, errno, "open", "/dev/ptmx");
	const char *step = "ioctl(TIOCSPTLCK)";
	int slave = -1;
	struct termios tio;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		goto fail;
	step = "ioctl(TIOCGPTN)";
	if (ioctl(master, TIOCGPTN, &index) < 0)
		goto fail;
	step = "ioctl(TIOCGPTPEER)";
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (slave < 0)
		goto fail;
	step = "tcsetattr";
	if (tcgetattr(slave, &tio) < 0)
		goto fail;
	cfmakeraw(&tio);
	if (tcsetattr(slave, TCSANOW, &tio) < 0)
		goto fail;
	if (napi_create_array_with_length(env, 3, &result) != napi_ok || napi_create_int32(env, master, &v) != napi_ok ||
	    napi_set_element(env, result, 0, v) != napi_ok || napi_create_int32(env, slave, &v) != napi_ok ||
	    napi_set_element(env, result, 1, v) != napi_ok || napi_create_int32(env, index, &v) != napi_ok ||
	    napi_set_element(env, result, 2, v) != napi_ok) {
		close(slave);
		close(master);
		napi_throw_error(env, "ERR_NAPI", "cannot build the result");
		return NULL;
	}
	return result;
fail:;
	int err = errno;
	if (slave >= 0)
		close(slave);
	close(master);
	return throw_errno(env, err, step, NULL);
}

/* A socket connected to sa (close-on-exec; nonblock: EAGAIN on a full backlog), or NULL after
 * throwing with `path` in the message when given. */
static napi_value connect_unix(napi_env env, const struct sockaddr_un *sa, bool nonblock, const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return throw_errno(env, errno, "socket", path);
	int r;
	while ((r = connect(fd, (const struct sockaddr *)sa, sizeof *sa)) < 0 && errno == EINTR) {
	}
	if (r < 0) {
		int err = errno;
		close(fd);
		return throw_errno(env, err, "connect", path);
	}
	return fd_result(env, fd);
}

/* connectUnixAt(dirFd, name): a socket connected to the listening socket `name` inside the
 * directory dirFd holds (close-on-exec), e.g. a helper's socket svirt hands QEMU as an fd. */
static napi_value js_connect_unix_at(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	int dir;
	bool nonblock = false;
	if (get_args(env, info, 2, 3, argv) < 0 || get_fd(env, argv[0], &dir) < 0)
		return NULL;
	/* A third argument `true`: a non-blocking socket, so a full backlog fails (EAGAIN) instead of waiting. */
	napi_valuetype t3;
	if (napi_typeof(env, argv[2], &t3) != napi_ok ||
	    (t3 != napi_undefined && napi_get_value_bool(env, argv[2], &nonblock) != napi_ok))
		return throw_arg(env, "nonblock must be a boolean");
	struct sockaddr_un sa;
	if (unix_at_address(env, dir, argv[1], "connectUnixAt", &sa) < 0)
		return NULL;
	return connect_unix(env, &sa, nonblock, NULL);
}

/* connectUnix(path, nonblock): a close-on-exec stream socket connected to `path` (1 to 107
 * bytes), made in the calling thread (an SELinux socket-create label applies); with nonblock, a
 * full backlog fails (EAGAIN) instead of waiting. QMP's connect (src/qemu/qmp-client.ts). */
static napi_value js_connect_unix(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	bool nonblock = false;
	if (get_args(env, info, 2, 2, argv) < 0)
		return NULL;
	if (napi_get_value_bool(env, argv[1], &nonblock) != napi_ok)
		return throw_arg(env, "nonblock must be a boolean");
	char *path = get_string(env, argv[0], "path");
	if (path == NULL)
		return NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof sa.sun_path) {
		free(path);
		return throw_arg(env, "connectUnix: the path must be 1 to 107 bytes");
	}
	memcpy(sa.sun_path, path, len);
	napi_value r = connect_unix(env, &sa, nonblock, path);
	free(path);
	return r;
}

/* openAs(path, flags, amode, uid, gid, groups): the kernel's answer for another user
 * (native/open-as.c): { errno: 0 | name, dev, ino }. amode >= 0 asks access(2) instead. */
static napi_value js_open_as(napi_env env, napi_callback_info info)
{
	napi_value argv[6], result, v;
	int64_t flags, amode, uid, gid;
	if (get_args(env, info, 6, 6, argv) < 0 || get_int(env, argv[1], "flags", 0, INT32_MAX, &flags) < 0 ||
	    get_int(env, argv[2], "amode", -1, 7, &amode) < 0 || get_int(env, argv[3], "uid", 0, UINT32_MAX - 1, &uid) < 0 ||
	    get_int(env, argv[4], "gid", 0, UINT32_MAX - 1, &gid) < 0)
		return NULL;
	bool is_array = false;
	uint32_t n = 0;
	if (napi_is_array(env, argv[5], &is_array) != napi_ok || !is_array ||
	    napi_get_array_length(env, argv[5], &n) != napi_ok || n > OPEN_AS_MAX_GROUPS)
		return throw_arg(env, "groups must be an array of at most 64 gids");
	gid_t groups[OPEN_AS_MAX_GROUPS];
	for (uint32_t i = 0; i < n; i++) {
		int64_t g;
		if (napi_get_element(env, argv[5], i, &v) != napi_ok || get_int(env, v, "group", 0, UINT32_MAX - 1, &g) < 0)
			return NULL;
		groups[i] = (gid_t)g;
	}
	char *path = get_string(env, argv[0], "path");
	if (path == NULL)
		return NULL;
	struct open_as_result r;
	int rc = open_as(path, (int)flags, (int)amode, (uid_t)uid, (gid_t)gid, groups, (int)n, &r);
	if (rc != 0) {
		napi_value e = throw_errno(env, errno, "open_as", path);
		free(path);
		return e;
	}
	free(path);
	const char *name = r.err == 0 ? NULL : strerrorname_np(r.err);
	NAPI(napi_create_object(env, &result));
	if (name != NULL)
		NAPI(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v));
	else
		NAPI(napi_create_int32(env, r.err, &v));
	NAPI(napi_set_named_property(env, result, "errno", v));
	NAPI(napi_create_double(env, (double)r.dev, &v));
	NAPI(napi_set_named_property(env, result, "dev", v));
	NAPI(napi_create_double(env, (double)r.ino, &v));
	NAPI(napi_set_named_property(env, result, "ino", v));
	return result;
}

/* deviceFilter(dir, rules): a cgroup v2 device allow-list attached to dir (devfilter.c). */
static napi_value js_device_filter(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (get_args(env, info, 2, 2, argv) < 0)
		return NULL;
	bool is_array = false;
	uint32_t n = 0;
	if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok ||
	    n > 512)
		return throw_arg(env, "rules must be an array of at most 512 strings");
	char *dir = get_string(env, argv[0], "dir");
	if (dir == NULL)
		return NULL;
	char **rules = calloc(n + 1, sizeof *rules);
	char err[512];
	int rc = -1;
	if (rules == NULL) {
		snprintf(err, sizeof err, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		napi_value v;
		if (napi_get_element(env, argv[1], i, &v) != napi_ok || (rules[i] = get_string(env, v, "rule")) == NULL)
			goto out_thrown;
	}
	rc = devfilter_apply(dir, (int)n, (const char *const *)rules, err, sizeof err);
out:
	if (rules != NULL)
		for (uint32_t i = 0; i < n; i++)
			free(rules[i]);
	free(rules);
	free(dir);
	if (rc < 0) {
		napi_throw_error(env, NULL, err);
		return NULL;
	}
	napi_value undef;
	NAPI(napi_get_undefined(env, &undef));
	return undef;
out_thrown:
	for (uint32_t i = 0; i < n; i++)
		free(rules[i]);
	free(rules);
	free(dir);
	return NULL;
}

NAPI_MODULE_INIT()
{
	static const struct napi_fn fns[] = {
		{ "lgetxattr", js_lgetxattr },       { "lsetxattr", js_lsetxattr },
		{ "lremovexattr", js_lremovexattr }, { "llistxattr", js_llistxattr },
		{ "fgetxattr", js_fgetxattr },       { "fsetxattr", js_fsetxattr },
		{ "fremovexattr", js_fremovexattr }, { "flistxattr", js_flistxattr },
		{ "sendFds", js_send_fds },          { "recvFds", js_recv_fds },
		{ "socketpair", js_socketpair },     { "pipe", js_pipe },
		{ "peerCred", js_peer_cred },
		{ "landlockAbi", js_landlock_abi },  { "openPath", js_open_path },
		{ "listenUnixAt", js_listen_unix_at }, { "tapCreate", js_tap_create },
		{ "connectUnixAt", js_connect_unix_at }, { "openPty", js_open_pty },
		{ "openAs", js_open_as },            { "deviceFilter", js_device_filter },
		{ "spawn", js_spawn },               { "mapFile", js_map_file },
		{ "fnv1a32", js_fnv1a32 },           { "procStartTime", js_proc_start_time },
		{ "dupOnto", js_dup_onto },          { "dupAside", js_dup_aside },
		{ "pollIn", js_poll_in },            { "connectUnix", js_connect_unix },
		{ "pidfdOpen", js_pidfd_open },      { "pidfdSignal", js_pidfd_signal },
	};
	NAPI(register_functions(env, exports, fns, sizeof fns / sizeof fns[0]));
	NAPI(access_register(env, exports));
	NAPI(fd_watch_register(env, exports));
	return exports;
}
