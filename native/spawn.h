/* spawn.c: starting a program by posix_spawn (no fork of Node), its exit reaped by a thread of the addon. */
#ifndef SVIRT_SPAWN_H
#define SVIRT_SPAWN_H
#define NAPI_VERSION 8
#include <node_api.h>

/* Adds spawn to the addon's exports. */
napi_status spawn_register(napi_env env, napi_value exports);
#endif
