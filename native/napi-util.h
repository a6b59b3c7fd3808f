/* The addon's argument and error helpers (svirt-native.c), shared with spawn.c. */
#ifndef SVIRT_NAPI_UTIL_H
#define SVIRT_NAPI_UTIL_H
#define NAPI_VERSION 8
#include <node_api.h>

/* Throws the addon's system error (code, errno, syscall, path when not NULL); returns NULL. */
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path);
/* Throws a TypeError ERR_INVALID_ARG_TYPE; returns NULL. */
napi_value throw_arg(napi_env env, const char *msg);
/* A malloc'd UTF-8 copy of a JS string without NUL bytes; NULL after throwing. */
char *get_string(napi_env env, napi_value v, const char *what);
#endif
