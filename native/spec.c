/* Parses and validates the confinement spec; fails closed on anything unexpected. */
#include "spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "json.h"
#include "landlock-abi.h"

#define MAX_VALUES 32768
#define ID_MAX 4294967294LL /* (uid_t)-1 means "unchanged" to the kernel: never a target */

static struct json_value pool[MAX_VALUES];
static struct spec_path_rule path_rules[SPEC_MAX_PATH_RULES];
static struct spec_net_rule net_rules[SPEC_MAX_NET_RULES];

struct ctx {
	struct json_doc doc;
	char *err;
	size_t errlen;
};

struct name_bit {
	const char *name;
	uint64_t bit;
};

static const struct name_bit fs_names[] = {
	{ "execute", LL_FS_EXECUTE },       { "write_file", LL_FS_WRITE_FILE },
	{ "read_file", LL_FS_READ_FILE },   { "read_dir", LL_FS_READ_DIR },
	{ "remove_dir", LL_FS_REMOVE_DIR }, { "remove_file", LL_FS_REMOVE_FILE },
	{ "make_char", LL_FS_MAKE_CHAR },   { "make_dir", LL_FS_MAKE_DIR },
	{ "make_reg", LL_FS_MAKE_REG },     { "make_sock", LL_FS_MAKE_SOCK },
	{ "make_fifo", LL_FS_MAKE_FIFO },   { "make_block", LL_FS_MAKE_BLOCK },
	{ "make_sym", LL_FS_MAKE_SYM },     { "refer", LL_FS_REFER },
	{ "truncate", LL_FS_TRUNCATE },     { "ioctl_dev", LL_FS_IOCTL_DEV },
	{ NULL, 0 },
};

static const struct name_bit net_names[] = {
	{ "bind_tcp", LL_NET_BIND_TCP },
	{ "connect_tcp", LL_NET_CONNECT_TCP },
	{ NULL, 0 },
};

static const struct name_bit scope_names[] = {
	{ "abstract_unix_socket", LL_SCOPE_ABSTRACT_UNIX_SOCKET },
	{ "signal", LL_SCOPE_SIGNAL },
	{ NULL, 0 },
};

static const struct name_bit rlimit_names[] = {
	{ "as", RLIMIT_AS },         { "core", RLIMIT_CORE },
	{ "nofile", RLIMIT_NOFILE }, { "nproc", RLIMIT_NPROC },
	{ "memlock", RLIMIT_MEMLOCK }, { "fsize", RLIMIT_FSIZE },
	{ NULL, 0 },
};

static int bad(struct ctx *c, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(struct ctx *c, const char *where, const char *fmt, ...)
{
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s: %s", where, what);
	return -1;
}

static struct json_value *val(struct ctx *c, int idx)
{
	return &c->doc.pool[idx];
}

static const char *type_name(enum json_type t)
{
	static const char *const names[] = { "null", "boolean", "integer", "string", "array", "object" };
	return names[t];
}

static int want(struct ctx *c, const char *where, int idx, enum json_type t)
{
	if (val(c, idx)->type != t)
		return bad(c, where, "expected %s, got %s", type_name(t), type_name(val(c, idx)->type));
	return 0;
}

/* Checks that obj is an object whose keys are all in known[] and that holds every key in
 * required[] (both NULL-terminated). */
static int check_keys(struct ctx *c, const char *where, int obj, const char *const *known,
		      const char *const *required)
{
	if (want(c, where, obj, JSON_OBJECT) < 0)
		return -1;
	for (int m = val(c, obj)->first; m >= 0; m = val(c, m)->next) {
		const char *const *k = known;
		while (*k != NULL && strcmp(*k, val(c, m)->key) != 0)
			k++;
		if (*k == NULL)
			return bad(c, where, "unknown key \"%.60s\"", val(c, m)->key);
	}
	for (const char *const *r = required; *r != NULL; r++) {
		int found = 0;
		for (int m = val(c, obj)->first; m >= 0; m = val(c, m)->next)
			found |= strcmp(*r, val(c, m)->key) == 0;
		if (!found)
			return bad(c, where, "missing key \"%s\"", *r);
	}
	return 0;
}

static int member(struct ctx *c, int obj, const char *key)
{
	return json_member(&c->doc, obj, key);
}

static int get_bool(struct ctx *c, const char *where, int idx, int *out)
{
	if (want(c, where, idx, JSON_BOOL) < 0)
		return -1;
	*out = val(c, idx)->boolean;
	return 0;
}

static int get_int(struct ctx *c, const char *where, int idx, int64_t lo, int64_t hi, int64_t *out)
{
	if (want(c, where, idx, JSON_INT) < 0)
		return -1;
	int64_t n = val(c, idx)->num;
	if (n < lo || n > hi)
		return bad(c, where, "%lld is out of range [%lld, %lld]", (long long)n, (long long)lo,
			   (long long)hi);
	*out = n;
	return 0;
}

/* A non-empty string without control characters, at most max bytes. */
static int get_string(struct ctx *c, const char *where, int idx, size_t max, const char **out)
{
	if (want(c, where, idx, JSON_STRING) < 0)
		return -1;
	const struct json_value *v = val(c, idx);
	if (v->len == 0 || v->len > max)
		return bad(c, where, "length %zu is not in [1, %zu]", v->len, max);
	for (size_t i = 0; i < v->len; i++) {
		unsigned char ch = (unsigned char)v->str[i];
		if (ch < 0x20 || ch == 0x7f)
			return bad(c, where, "control character in string");
	}
	*out = v->str;
	return 0;
}

static int get_names(struct ctx *c, const char *where, int idx, const struct name_bit *table,
		     uint64_t *out)
{
	char at[160];
	*out = 0;
	if (want(c, where, idx, JSON_ARRAY) < 0)
		return -1;
	int i = 0;
	for (int e = val(c, idx)->first; e >= 0; e = val(c, e)->next, i++) {
		const char *name;
		snprintf(at, sizeof at, "%s[%d]", where, i);
		if (get_string(c, at, e, 64, &name) < 0)
			return -1;
		const struct name_bit *nb = table;
		while (nb->name != NULL && strcmp(nb->name, name) != 0)
			nb++;
		if (nb->name == NULL)
			return bad(c, at, "unknown name \"%s\"", name);
		*out |= nb->bit;
	}
	return 0;
}

/* An absolute path with no empty, "." or ".." component and no trailing slash. */
static int check_clean_path(struct ctx *c, const char *where, const char *p)
{
	if (p[0] != '/' || strcmp(p, "/") == 0)
		return bad(c, where, "\"%s\" is not an absolute path below /", p);
	for (const char *s = p; *s != '\0';) {
		const char *comp = s + 1;
		const char *end = strchr(comp, '/');
		size_t n = end ? (size_t)(end - comp) : strlen(comp);
		if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
			return bad(c, where, "\"%s\" is not a normalized path", p);
		s = comp + n;
	}
	return 0;
}

static int parse_rlimits(struct ctx *c, int arr, struct svirt_spec *s)
{
	static const char *const keys[] = { "resource", "soft", "hard", NULL };
	char at[64];
	if (want(c, "rlimits", arr, JSON_ARRAY) < 0)
		return -1;
	if (val(c, arr)->count > SPEC_MAX_RLIMITS)
		return bad(c, "rlimits", "more than %d entries", SPEC_MAX_RLIMITS);
	for (int e = val(c, arr)->first; e >= 0; e = val(c, e)->next) {
		struct spec_rlimit *r = &s->rlimits[s->nrlimits];
		const char *name;
		int64_t soft, hard;
		snprintf(at, sizeof at, "rlimits[%d]", s->nrlimits);
		if (check_keys(c, at, e, keys, keys) < 0 ||
		    get_string(c, at, member(c, e, "resource"), 16, &name) < 0 ||
		    get_int(c, at, member(c, e, "soft"), -1, INT64_MAX, &soft) < 0 ||
		    get_int(c, at, member(c, e, "hard"), -1, INT64_MAX, &hard) < 0)
			return -1;
		const struct name_bit *nb = rlimit_names;
		while (nb->name != NULL && strcmp(nb->name, name) != 0)
			nb++;
		if (nb->name == NULL)
			return bad(c, at, "unknown resource \"%s\"", name);
		for (int i = 0; i < s->nrlimits; i++)
			if (s->rlimits[i].resource == (int)nb->bit)
				return bad(c, at, "resource \"%s\" given twice", name);
		r->resource = (int)nb->bit;
		r->name = nb->name;
		r->soft = soft < 0 ? RLIM_INFINITY : (uint64_t)soft;
		r->hard = hard < 0 ? RLIM_INFINITY : (uint64_t)hard;
		s->nrlimits++;
	}
	return 0;
}

static int parse_mount_view(struct ctx *c, int obj, struct svirt_spec *s)
{
	static const char *const keys[] = { "hide", "keep", "userns", NULL };
	if (check_keys(c, "mountView", obj, keys, keys) < 0 ||
	    get_string(c, "mountView.hide", member(c, obj, "hide"), 4096, &s->hide) < 0 ||
	    get_string(c, "mountView.keep", member(c, obj, "keep"), 4096, &s->keep) < 0 ||
	    get_bool(c, "mountView.userns", member(c, obj, "userns"), &s->userns) < 0 ||
	    check_clean_path(c, "mountView.hide", s->hide) < 0 ||
	    check_clean_path(c, "mountView.keep", s->keep) < 0)
		return -1;
	size_t n = strlen(s->hide);
	if (strncmp(s->keep, s->hide, n) != 0 || s->keep[n] != '/')
		return bad(c, "mountView.keep", "\"%s\" is not beneath \"%s\"", s->keep, s->hide);
	s->has_mount_view = 1;
	return 0;
}

static int parse_path_rules(struct ctx *c, int arr, struct spec_landlock *ll)
{
	static const char *const keys[] = { "path", "access", "optional", NULL };
	static const char *const required[] = { "path", "access", NULL };
	char at[64], sub[96];
	if (want(c, "landlock.pathRules", arr, JSON_ARRAY) < 0)
		return -1;
	if (val(c, arr)->count > SPEC_MAX_PATH_RULES)
		return bad(c, "landlock.pathRules", "more than %d rules", SPEC_MAX_PATH_RULES);
	ll->paths = path_rules;
	for (int e = val(c, arr)->first; e >= 0; e = val(c, e)->next) {
		struct spec_path_rule *r = &path_rules[ll->npath];
		snprintf(at, sizeof at, "landlock.pathRules[%d]", ll->npath);
		snprintf(sub, sizeof sub, "%s.access", at);
		if (check_keys(c, at, e, keys, required) < 0 ||
		    get_string(c, at, member(c, e, "path"), 4096, &r->path) < 0 ||
		    get_names(c, sub, member(c, e, "access"), fs_names, &r->access) < 0)
			return -1;
		if (r->path[0] != '/')
			return bad(c, at, "\"%s\" is not an absolute path", r->path);
		int opt = member(c, e, "optional");
		r->optional = 0;
		if (opt >= 0 && get_bool(c, at, opt, &r->optional) < 0)
			return -1;
		ll->npath++;
	}
	return 0;
}

static int parse_net_rules(struct ctx *c, int arr, struct spec_landlock *ll)
{
	static const char *const keys[] = { "port", "access", NULL };
	char at[64], sub[96];
	if (want(c, "landlock.netRules", arr, JSON_ARRAY) < 0)
		return -1;
	if (val(c, arr)->count > SPEC_MAX_NET_RULES)
		return bad(c, "landlock.netRules", "more than %d rules", SPEC_MAX_NET_RULES);
	ll->nets = net_rules;
	for (int e = val(c, arr)->first; e >= 0; e = val(c, e)->next) {
		struct spec_net_rule *r = &net_rules[ll->nnet];
		int64_t port;
		snprintf(at, sizeof at, "landlock.netRules[%d]", ll->nnet);
		snprintf(sub, sizeof sub, "%s.access", at);
		if (check_keys(c, at, e, keys, keys) < 0 ||
		    get_int(c, at, member(c, e, "port"), 0, 65535, &port) < 0 ||
		    get_names(c, sub, member(c, e, "access"), net_names, &r->access) < 0)
			return -1;
		r->port = (uint64_t)port;
		ll->nnet++;
	}
	return 0;
}

static int parse_landlock(struct ctx *c, int obj, struct svirt_spec *s)
{
	static const char *const keys[] = { "handledFs", "handledNet", "scoped", "pathRules",
					    "netRules", "bestEffort", "logNewExec", "minAbi", NULL };
	static const char *const required[] = { "handledFs", "handledNet", "scoped", "pathRules",
						"netRules", "bestEffort", "logNewExec", NULL };
	struct spec_landlock *ll = &s->landlock;
	if (check_keys(c, "landlock", obj, keys, required) < 0 ||
	    get_names(c, "landlock.handledFs", member(c, obj, "handledFs"), fs_names, &ll->handled_fs) < 0 ||
	    get_names(c, "landlock.handledNet", member(c, obj, "handledNet"), net_names, &ll->handled_net) < 0 ||
	    get_names(c, "landlock.scoped", member(c, obj, "scoped"), scope_names, &ll->scoped) < 0 ||
	    get_bool(c, "landlock.bestEffort", member(c, obj, "bestEffort"), &ll->best_effort) < 0 ||
	    get_bool(c, "landlock.logNewExec", member(c, obj, "logNewExec"), &ll->log_new_exec) < 0 ||
	    parse_path_rules(c, member(c, obj, "pathRules"), ll) < 0 ||
	    parse_net_rules(c, member(c, obj, "netRules"), ll) < 0)
		return -1;
	int min_abi = member(c, obj, "minAbi");
	int64_t n = 0;
	if (min_abi >= 0 && get_int(c, "landlock.minAbi", min_abi, 0, 1000, &n) < 0)
		return -1;
	ll->min_abi = (int)n;
	s->has_landlock = 1;
	return 0;
}

static int parse_ids(struct ctx *c, int root, struct svirt_spec *s)
{
	int uid = member(c, root, "uid"), gid = member(c, root, "gid"), groups = member(c, root, "groups");
	int64_t n;
	if ((uid >= 0) != (gid >= 0))
		return bad(c, uid >= 0 ? "uid" : "gid", "uid and gid must be given together");
	if (uid >= 0) {
		if (get_int(c, "uid", uid, 0, ID_MAX, &n) < 0)
			return -1;
		s->uid = (uid_t)n;
		if (get_int(c, "gid", gid, 0, ID_MAX, &n) < 0)
			return -1;
		s->gid = (gid_t)n;
		s->has_ids = 1;
	}
	if (groups < 0)
		return 0;
	if (want(c, "groups", groups, JSON_ARRAY) < 0)
		return -1;
	if (val(c, groups)->count > SPEC_MAX_GROUPS)
		return bad(c, "groups", "more than %d groups", SPEC_MAX_GROUPS);
	for (int e = val(c, groups)->first; e >= 0; e = val(c, e)->next) {
		if (get_int(c, "groups[]", e, 0, ID_MAX, &n) < 0)
			return -1;
		s->groups[s->ngroups++] = (gid_t)n;
	}
	s->has_groups = 1;
	return 0;
}

static int parse_keep_fds(struct ctx *c, int arr, struct svirt_spec *s)
{
	int64_t fd;
	if (want(c, "keepFds", arr, JSON_ARRAY) < 0)
		return -1;
	if (val(c, arr)->count > SPEC_MAX_KEEP_FDS)
		return bad(c, "keepFds", "more than %d fds", SPEC_MAX_KEEP_FDS);
	for (int e = val(c, arr)->first; e >= 0; e = val(c, e)->next) {
		if (get_int(c, "keepFds[]", e, 0, 1 << 30, &fd) < 0)
			return -1;
		s->keep_fds[s->nkeep++] = (int)fd;
	}
	return 0;
}

/* Directories of cgroups under /sys/fs/cgroup/ (svirt-exec checks the file system type). */
static int parse_cgroups(struct ctx *c, int arr, struct svirt_spec *s)
{
	char at[64];
	if (want(c, "cgroups", arr, JSON_ARRAY) < 0)
		return -1;
	if (val(c, arr)->count > SPEC_MAX_CGROUPS)
		return bad(c, "cgroups", "more than %d entries", SPEC_MAX_CGROUPS);
	for (int e = val(c, arr)->first; e >= 0; e = val(c, e)->next) {
		const char *p;
		snprintf(at, sizeof at, "cgroups[%d]", s->ncgroups);
		if (get_string(c, at, e, 4096, &p) < 0 || check_clean_path(c, at, p) < 0)
			return -1;
		if (strncmp(p, "/sys/fs/cgroup/", 15) != 0)
			return bad(c, at, "\"%s\" is not under /sys/fs/cgroup/", p);
		s->cgroups[s->ncgroups++] = p;
	}
	return 0;
}

int spec_parse(char *buf, size_t len, struct svirt_spec *s, char *err, size_t errlen)
{
	static const char *const keys[] = { "version", "rlimits", "mountView", "uid", "gid",
					    "groups", "userRoot", "noNewPrivs", "selinuxExecLabel",
					    "apparmorProfile", "landlock", "keepFds", "cgroups", NULL };
	static const char *const required[] = { "version", "rlimits", "noNewPrivs", "keepFds", NULL };
	struct ctx c = { .doc = { .pool = pool, .cap = MAX_VALUES }, .err = err, .errlen = errlen };
	int64_t version;
	int m;

	memset(s, 0, sizeof *s);
	int root = json_parse(&c.doc, buf, len);
	if (root < 0)
		return bad(&c, "JSON", "%s", c.doc.error);
	if (check_keys(&c, "top level", root, keys, required) < 0 ||
	    get_int(&c, "version", member(&c, root, "version"), 1, 1, &version) < 0 ||
	    parse_rlimits(&c, member(&c, root, "rlimits"), s) < 0 ||
	    parse_ids(&c, root, s) < 0 ||
	    get_bool(&c, "noNewPrivs", member(&c, root, "noNewPrivs"), &s->no_new_privs) < 0 ||
	    parse_keep_fds(&c, member(&c, root, "keepFds"), s) < 0)
		return -1;
	if ((m = member(&c, root, "mountView")) >= 0 && parse_mount_view(&c, m, s) < 0)
		return -1;
	if ((m = member(&c, root, "userRoot")) >= 0 && get_bool(&c, "userRoot", m, &s->user_root) < 0)
		return -1;
	if ((m = member(&c, root, "selinuxExecLabel")) >= 0 &&
	    get_string(&c, "selinuxExecLabel", m, SPEC_MAX_LABEL, &s->selinux_label) < 0)
		return -1;
	if ((m = member(&c, root, "apparmorProfile")) >= 0 &&
	    get_string(&c, "apparmorProfile", m, SPEC_MAX_LABEL, &s->apparmor_profile) < 0)
		return -1;
	if ((m = member(&c, root, "landlock")) >= 0 && parse_landlock(&c, m, s) < 0)
		return -1;
	if ((m = member(&c, root, "cgroups")) >= 0 && parse_cgroups(&c, m, s) < 0)
		return -1;
	return 0;
}
