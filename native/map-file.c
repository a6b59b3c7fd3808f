/*
 * mapFile(path, latin1): a regular file, mapped read-only (MAP_PRIVATE) instead of read, as an
 * external latin1 string (latin1 true) or an ArrayBuffer over the mapping; unmapped when V8
 * lets go of it. For the CLI's bundle and its V8 code cache (bin/svirt.js): a read copies the
 * file into fresh pages (one page fault each, 10-25 us on the machines issue 17 is measured
 * on), and the string another copy into V8's heap, where a mapping of the page cache is
 * faulted in 16 pages at a time and a string over it is never copied.
 *
 * The mapping sees the file as it is: a file truncated while mapped would fault (SIGBUS) on
 * the lost pages. scripts/bundle.mjs therefore replaces the bundles and caches by rename,
 * never in place. Files past MAP_MAX are refused (EFBIG).
 */
#define _GNU_SOURCE
#include "map-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "napi-util.h"

#define MAP_MAX (256L << 20)

/* Node's external latin1 strings (experimental in Node 20, from 20.4): weak, so an addon built
 * here still loads on a Node without them, and the string is then a copy. */
extern napi_status node_api_create_external_string_latin1(napi_env env, char *str, size_t length,
							   napi_finalize finalize_callback, void *finalize_hint,
							   napi_value *result, bool *copied) __attribute__((weak));

struct mapping {
	void *addr;
	size_t len;
};

static void unmap(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)data;
	struct mapping *m = hint;
	munmap(m->addr, m->len);
	free(m);
}

static napi_value empty(napi_env env, bool latin1)
{
	napi_value v;
	napi_status s = latin1 ? napi_create_string_latin1(env, "", 0, &v) : napi_create_arraybuffer(env, 0, NULL, &v);
	return s == napi_ok ? v : NULL;
}

napi_value js_map_file(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result = NULL;
	bool latin1 = false;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
	    napi_get_value_bool(env, argv[1], &latin1) != napi_ok)
		return throw_arg(env, "mapFile(path, latin1: boolean)");
	char *path = get_string(env, argv[0], "path");
	if (path == NULL)
		return NULL;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	int err = fd < 0 ? errno : fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : st.st_size > MAP_MAX ? EFBIG : 0;
	void *addr = MAP_FAILED;
	if (err == 0 && st.st_size > 0) {
		addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		err = addr == MAP_FAILED ? errno : 0;
	}
	if (fd >= 0)
		close(fd);
	if (err != 0) {
		napi_value e = throw_errno(env, err, "mmap", path);
		free(path);
		return e;
	}
	free(path);
	if (st.st_size == 0)
		return empty(env, latin1);
	struct mapping *m = malloc(sizeof *m);
	if (m == NULL) {
		munmap(addr, (size_t)st.st_size);
		return throw_errno(env, ENOMEM, "malloc", NULL);
	}
	m->addr = addr;
	m->len = (size_t)st.st_size;
	napi_status s;
	if (latin1 && node_api_create_external_string_latin1 != NULL) {
		bool copied = false; /* when V8 copied it, the finalizer has run already */
		s = node_api_create_external_string_latin1(env, addr, m->len, unmap, m, &result, &copied);
	} else if (latin1) {
		s = napi_create_string_latin1(env, addr, m->len, &result);
		unmap(env, NULL, m);
	} else {
		s = napi_create_external_arraybuffer(env, addr, m->len, unmap, m, &result);
	}
	if (s != napi_ok) {
		napi_throw_error(env, "ERR_NAPI", "cannot build the result");
		return NULL;
	}
	return result;
}
