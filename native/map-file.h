/* map-file.c: a file read by mapping it, for the CLI's bundles and code caches (docs/startup.md). */
#ifndef SVIRT_MAP_FILE_H
#define SVIRT_MAP_FILE_H
#define NAPI_VERSION 8
#include <node_api.h>

/* mapFile(path, latin1), one of the addon's functions (svirt-native.c's table). */
napi_value js_map_file(napi_env env, napi_callback_info info);
#endif
