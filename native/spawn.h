/* spawn.c: starting a program by posix_spawn (no fork of Node), its exit reaped by a thread of the addon. */
#ifndef SVIRT_SPAWN_H
#define SVIRT_SPAWN_H
#define NAPI_VERSION 8
#include <node_api.h>

/* spawn(path, argv, env, fds, setsid, onExit?), one of the addon's functions (svirt-native.c's table). */
napi_value js_spawn(napi_env env, napi_callback_info info);
#endif
