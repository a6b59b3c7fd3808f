/*
 * access.c: what the kernel says about a socket's peer, and Linux audit records.
 *
 * peerSec(fd): the peer's security context (SO_PEERSEC), or undefined where no LSM gives one.
 * peerGroups(fd): the peer's supplementary groups at connect (SO_PEERGROUPS, Linux 4.13).
 * auditEnabled(set): the kernel's audit_enabled (AUDIT_GET); with set = 0 or 1, sets it first
 *   (AUDIT_SET, needs CAP_AUDIT_CONTROL). For the enforcement lab's test, which has no auditd.
 * auditSend(type, text): sends one user-space audit record (libvirt's VIRT_CONTROL 2500,
 *   VIRT_RESOURCE 2501, VIRT_MACHINE_ID 2502: libaudit.h's numbers; the kernel's audit.h
 *   reserves 2100-2999 for such user messages) through NETLINK_AUDIT and waits up to 200 ms
 *   for the kernel's ack. Returns 0, or the errno name the kernel (or socket()) answered:
 *   EPERM without CAP_AUDIT_WRITE, ECONNREFUSED in a non-initial namespace, EPROTONOSUPPORT
 *   without audit. Never throws for those: audit is best effort.
 */
#define _GNU_SOURCE
#include "access.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "napi-util.h"

#define MAX_TEXT 8192
#define MAX_GROUPS 1024

static napi_value errno_value(napi_env env, int err)
{
	napi_value v;
	const char *name = strerrorname_np(err);
	if (name == NULL)
		name = "EIO";
	if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v) != napi_ok)
		return NULL;
	return v;
}

static napi_value js_peer_sec(napi_env env, napi_callback_info info)
{
	napi_value argv[1], result;
	int fd;
	if (get_args(env, info, 1, 1, argv) < 0 || get_fd(env, argv[0], &fd) < 0)
		return NULL;
	char buf[4096];
	socklen_t len = sizeof buf - 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buf, &len) < 0 || len == 0) {
		napi_get_undefined(env, &result);
		return result;
	}
	if (len > sizeof buf - 1)
		len = sizeof buf - 1;
	buf[len] = '\0';
	size_t n = strnlen(buf, len); /* the context may or may not carry its NUL */
	napi_create_string_utf8(env, buf, n, &result);
	return result;
}

static napi_value js_peer_groups(napi_env env, napi_callback_info info)
{
	napi_value argv[1], result, v;
	int fd;
	if (get_args(env, info, 1, 1, argv) < 0 || get_fd(env, argv[0], &fd) < 0)
		return NULL;
	gid_t groups[MAX_GROUPS];
	socklen_t len = sizeof groups;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		napi_get_undefined(env, &result);
		return result;
	}
	uint32_t n = len / sizeof(gid_t);
	napi_create_array_with_length(env, n, &result);
	for (uint32_t i = 0; i < n; i++) {
		napi_create_double(env, (double)groups[i], &v);
		napi_set_element(env, result, i, v);
	}
	return result;
}

static napi_value js_audit_send(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result;
	int32_t type = 0;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
	    napi_get_value_int32(env, argv[0], &type) != napi_ok || type < 1100 || type > 2999) {
		napi_throw_type_error(env, NULL, "auditSend(type 1100..2999, text)");
		return NULL;
	}
	size_t tlen = 0;
	if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &tlen) != napi_ok || tlen > MAX_TEXT) {
		napi_throw_type_error(env, NULL, "auditSend: text must be a string of at most 8192 bytes");
		return NULL;
	}
	size_t total = NLMSG_SPACE(tlen + 1);
	struct nlmsghdr *h = calloc(1, total);
	if (h == NULL)
		return errno_value(env, ENOMEM);
	napi_get_value_string_utf8(env, argv[1], NLMSG_DATA(h), tlen + 1, &tlen);
	h->nlmsg_len = NLMSG_LENGTH(tlen + 1);
	h->nlmsg_type = (uint16_t)type;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = 1;
	int err = 0;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
	if (fd < 0) {
		err = errno;
	} else {
		struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
		if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
			err = errno;
		} else {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (poll(&p, 1, 200) == 1) {
				char buf[512];
				ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
				struct nlmsghdr *a = (struct nlmsghdr *)buf;
				if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && a->nlmsg_type == NLMSG_ERROR) {
					struct nlmsgerr *e = NLMSG_DATA(a);
					err = e->error < 0 ? -e->error : 0;
				}
			} else {
				err = ETIMEDOUT;
			}
		}
		close(fd);
	}
	free(h);
	if (err != 0)
		return errno_value(env, err);
	napi_create_int32(env, 0, &result);
	return result;
}

/* One request to the kernel's audit socket; *status gets AUDIT_GET's reply. Returns 0 or an errno. */
static int audit_request(uint16_t type, const void *data, size_t len, struct audit_status *status)
{
	char buf[NLMSG_SPACE(sizeof(struct audit_status)) + 64];
	memset(buf, 0, sizeof buf);
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	h->nlmsg_len = NLMSG_LENGTH(len);
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = 2;
	memcpy(NLMSG_DATA(h), data, len);
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
	if (fd < 0)
		return errno;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int err = 0;
	if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
		err = errno;
		goto out;
	}
	for (int i = 0; i < 4; i++) { /* the reply (AUDIT_GET) and the ack, in either order */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 200) != 1)
			break;
		char rbuf[1024];
		ssize_t n = recv(fd, rbuf, sizeof rbuf, MSG_DONTWAIT);
		if (n < (ssize_t)NLMSG_HDRLEN)
			break;
		struct nlmsghdr *a = (struct nlmsghdr *)rbuf;
		if (a->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *e = NLMSG_DATA(a);
			if (e->error < 0) {
				err = -e->error;
				break;
			}
			if (type != AUDIT_GET)
				break;
		} else if (a->nlmsg_type == AUDIT_GET && status != NULL && a->nlmsg_len >= NLMSG_LENGTH(sizeof(uint32_t) * 2)) {
			memset(status, 0, sizeof *status);
			size_t got = a->nlmsg_len - NLMSG_HDRLEN;
			memcpy(status, NLMSG_DATA(a), got < sizeof *status ? got : sizeof *status);
			break;
		}
	}
out:
	close(fd);
	return err;
}

static napi_value js_audit_enabled(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result;
	int32_t set = -1;
	napi_valuetype t = napi_undefined;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
		return NULL;
	if (argc >= 1 && napi_typeof(env, argv[0], &t) == napi_ok && t == napi_number)
		napi_get_value_int32(env, argv[0], &set);
	if (set == 0 || set == 1) {
		struct audit_status s = { .mask = AUDIT_STATUS_ENABLED, .enabled = (uint32_t)set };
		int err = audit_request(AUDIT_SET, &s, sizeof s, NULL);
		if (err != 0)
			return errno_value(env, err);
	}
	struct audit_status s = { 0 };
	s.enabled = 0xffffffffu;
	int err = audit_request(AUDIT_GET, &s, 0, &s);
	if (err != 0)
		return errno_value(env, err);
	if (s.enabled == 0xffffffffu)
		return errno_value(env, ETIMEDOUT);
	napi_create_int32(env, (int32_t)s.enabled, &result);
	return result;
}

napi_status access_register(napi_env env, napi_value exports)
{
	static const struct napi_fn fns[] = { { "auditSend", js_audit_send }, { "peerSec", js_peer_sec },
					       { "peerGroups", js_peer_groups }, { "auditEnabled", js_audit_enabled } };
	return register_functions(env, exports, fns, sizeof fns / sizeof fns[0]);
}
