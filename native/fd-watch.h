/* fd-watch.c: a stream socket read and written on Node's event loop, without node:net. */
#ifndef SVIRT_FD_WATCH_H
#define SVIRT_FD_WATCH_H
#include "napi-util.h"

/* Adds watchFd, watchWrite and watchClose to the addon's exports. */
napi_status fd_watch_register(napi_env env, napi_value exports);
#endif
