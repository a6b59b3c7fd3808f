/* access.c: the kernel's word on a caller (SO_PEERSEC, SO_PEERGROUPS) and Linux audit records (issue 15). */
#ifndef SVIRT_ACCESS_H
#define SVIRT_ACCESS_H
#define NAPI_VERSION 8
#include <node_api.h>

/* Adds auditSend, peerSec and peerGroups to the addon's exports. */
napi_status access_register(napi_env env, napi_value exports);
#endif
