/* The addon's argument, result and error helpers (svirt-native.c), shared with its other files. */
#ifndef SVIRT_NAPI_UTIL_H
#define SVIRT_NAPI_UTIL_H
#define NAPI_VERSION 8
#include <node_api.h>

/* In a function returning napi_value: throws on a failed napi_* call (rare: out of memory,
 * wrong types caught earlier) and returns NULL. */
#define NAPI(call)                                                                  \
	do {                                                                        \
		if ((call) != napi_ok) {                                            \
			napi_throw_error(env, "ERR_NAPI", "N-API call failed: " #call); \
			return NULL;                                                \
		}                                                                   \
	} while (0)

/* Throws the addon's system error (code, errno, syscall, path when not NULL); returns NULL. */
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path);
/* Throws a TypeError ERR_INVALID_ARG_TYPE; returns NULL. */
napi_value throw_arg(napi_env env, const char *msg);
/* Fills argv[0..max) (missing ones are undefined) and checks at least `need` were given; -1 after throwing. */
int get_args(napi_env env, napi_callback_info info, size_t need, size_t max, napi_value *argv);
/* An fd argument: an integer in [0, INT_MAX]; -1 after throwing. */
int get_fd(napi_env env, napi_value v, int *fd);
/* A malloc'd UTF-8 copy of a JS string without NUL bytes; NULL after throwing. */
char *get_string(napi_env env, napi_value v, const char *what);
/* fd as a JS number; if that cannot be made, fd is closed and an error thrown (NULL). */
napi_value fd_result(napi_env env, int fd);

struct napi_fn {
	const char *name;
	napi_callback fn;
};
/* Adds each function to exports under its name. */
napi_status register_functions(napi_env env, napi_value exports, const struct napi_fn *fns, size_t n);
#endif
