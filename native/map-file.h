/* map-file.c: a file read by mapping it, for the CLI's bundles and code caches (docs/startup.md). */
#ifndef SVIRT_MAP_FILE_H
#define SVIRT_MAP_FILE_H
#define NAPI_VERSION 8
#include <node_api.h>

/* Adds mapFile to the addon's exports. */
napi_status map_file_register(napi_env env, napi_value exports);
#endif
