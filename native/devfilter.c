/*
 * A cgroup v2 device allow-list, as a BPF_PROG_TYPE_CGROUP_DEVICE program assembled here by
 * hand (no libbpf, no clang), loaded with bpf(2) and attached to one cgroup. Used by the
 * addon (svirt_native.node: deviceFilter, in svirt's own process: no spawn on a start's path)
 * and by the svirt-devfilter program. Not thread-safe (one static program buffer): the addon
 * calls it from Node's main thread only.
 *
 * The cgroup dir is opened O_DIRECTORY|O_NOFOLLOW and must be on a cgroup2 file system.
 * The program allows an access when one rule matches its type, major, minor and every
 * access bit asked for; everything else is denied. It is attached without flags, so a later
 * call on the same cgroup replaces the program atomically (the kernel swaps the single
 * program of a non-multi attachment): that is how hot-plug extends and shrinks the list.
 * Nothing is attached on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "devfilter.h"

#define MAX_RULES 512
#define MAX_INSNS (8 + MAX_RULES * 8)

struct rule {
	int type;     /* BPF_DEVCG_DEV_* or 0 for any */
	int64_t major; /* -1: any */
	int64_t minor; /* -1: any */
	int access;   /* BPF_DEVCG_ACC_* bits */
};

static struct bpf_insn prog[MAX_INSNS];
static int n;

/* The first failure of this call, for the caller's message; later emits are ignored. */
static char *errbuf;
static size_t errlen;
static int failed;

static void fail(const char *what, int err)
{
	if (!failed)
		snprintf(errbuf, errlen, "%s: %s", what, strerror(err));
	failed = 1;
}

static void emit(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	if (n >= MAX_INSNS) {
		fail("too many instructions", E2BIG);
		return;
	}
	prog[n].code = code;
	prog[n].dst_reg = dst & 0xf;
	prog[n].src_reg = src & 0xf;
	prog[n].off = off;
	prog[n].imm = imm;
	n++;
}

static int64_t number(const char *s, const char *end)
{
	if (end - s == 1 && *s == '*')
		return -1;
	if (end == s || end - s > 10)
		return -2;
	int64_t v = 0;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -2;
		v = v * 10 + (*p - '0');
	}
	return v > 0xffffffffLL ? -2 : v;
}

/* "c 1:3 rwm" */
static int parse_rule(const char *text, struct rule *r)
{
	const char *sp1 = strchr(text, ' ');
	if (sp1 == NULL || sp1 - text != 1)
		return -1;
	switch (text[0]) {
	case 'c': r->type = BPF_DEVCG_DEV_CHAR; break;
	case 'b': r->type = BPF_DEVCG_DEV_BLOCK; break;
	case 'a': r->type = 0; break;
	default: return -1;
	}
	const char *colon = strchr(sp1 + 1, ':');
	const char *sp2 = colon ? strchr(colon + 1, ' ') : NULL;
	if (colon == NULL || sp2 == NULL)
		return -1;
	r->major = number(sp1 + 1, colon);
	r->minor = number(colon + 1, sp2);
	if (r->major < -1 || r->minor < -1)
		return -1;
	r->access = 0;
	const char *a = sp2 + 1;
	if (*a == '\0')
		return -1;
	for (; *a; a++) {
		int bit = *a == 'r' ? BPF_DEVCG_ACC_READ : *a == 'w' ? BPF_DEVCG_ACC_WRITE : *a == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
		if (bit == 0 || (r->access & bit))
			return -1;
		r->access |= bit;
	}
	return 0;
}

/*
 * r2 = type, r3 = access, r4 = major, r5 = minor; then per rule a block that jumps to the
 * next block on any mismatch, or returns 1; after the last block, return 0.
 */
static void assemble(const struct rule *rules, int nrules)
{
	const uint8_t LDXW = BPF_LDX | BPF_MEM | BPF_W, AND = BPF_ALU64 | BPF_AND | BPF_K,
		      RSH = BPF_ALU64 | BPF_RSH | BPF_K, MOVX = BPF_ALU64 | BPF_MOV | BPF_X,
		      MOVK = BPF_ALU64 | BPF_MOV | BPF_K, JNE = BPF_JMP | BPF_JNE | BPF_K, EXIT = BPF_JMP | BPF_EXIT;
	emit(LDXW, 2, 1, 0, 0);
	emit(AND, 2, 0, 0, 0xffff);
	emit(LDXW, 3, 1, 0, 0);
	emit(RSH, 3, 0, 0, 16);
	emit(LDXW, 4, 1, 4, 0);
	emit(LDXW, 5, 1, 8, 0);
	for (int i = 0; i < nrules; i++) {
		const struct rule *r = &rules[i];
		int len = 2 + (r->type ? 1 : 0) + 3 + (r->major >= 0 ? 1 : 0) + (r->minor >= 0 ? 1 : 0);
		int end = n + len; /* the next block's first instruction */
		if (r->type) {
			emit(JNE, 2, 0, 0, r->type);
			prog[n - 1].off = (int16_t)(end - n);
		}
		/* asked & ~allowed must be 0 */
		emit(MOVX, 1, 3, 0, 0);
		emit(AND, 1, 0, 0, ~r->access & 0xffff);
		emit(JNE, 1, 0, 0, 0);
		prog[n - 1].off = (int16_t)(end - n);
		if (r->major >= 0) {
			emit(JNE, 4, 0, 0, (int32_t)(uint32_t)r->major);
			prog[n - 1].off = (int16_t)(end - n);
		}
		if (r->minor >= 0) {
			emit(JNE, 5, 0, 0, (int32_t)(uint32_t)r->minor);
			prog[n - 1].off = (int16_t)(end - n);
		}
		emit(MOVK, 0, 0, 0, 1);
		emit(EXIT, 0, 0, 0, 0);
		if (n != end) {
			fail("internal: block length", EINVAL);
			return;
		}
	}
	emit(MOVK, 0, 0, 0, 0);
	emit(EXIT, 0, 0, 0, 0);
}

static struct rule rules[MAX_RULES];
static char verifier_log[65536];


int devfilter_apply(const char *dir, int nrules, const char *const *texts, char *err, size_t err_size)
{
	errbuf = err;
	errlen = err_size;
	failed = 0;
	n = 0;
	err[0] = '\0';
	if (nrules > MAX_RULES) {
		fail("too many rules", E2BIG);
		return -1;
	}
	for (int i = 0; i < nrules; i++)
		if (parse_rule(texts[i], &rules[i]) < 0) {
			snprintf(err, err_size, "rule %d is not \"TYPE MAJOR:MINOR ACCESS\"", i + 1);
			return -1;
		}
	assemble(rules, nrules);
	if (failed)
		return -1;
	int cg = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cg < 0) {
		fail("open the cgroup", errno);
		return -1;
	}
	struct statfs sf;
	if (fstatfs(cg, &sf) < 0) {
		fail("statfs the cgroup", errno);
		close(cg);
		return -1;
	}
	if (sf.f_type != CGROUP2_SUPER_MAGIC) {
		fail("the directory is not on a cgroup2 file system", EINVAL);
		close(cg);
		return -1;
	}
	union bpf_attr load;
	memset(&load, 0, sizeof load);
	load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	load.insn_cnt = (uint32_t)n;
	load.insns = (uint64_t)(uintptr_t)prog;
	load.license = (uint64_t)(uintptr_t) "GPL";
	load.log_level = 1;
	load.log_size = sizeof verifier_log;
	load.log_buf = (uint64_t)(uintptr_t)verifier_log;
	verifier_log[0] = '\0';
	strncpy(load.prog_name, "svirt_devices", sizeof load.prog_name - 1);
	/* The verifier gives up with EAGAIN when a signal is pending for the loader (svirt's Node
	 * gets SIGCHLD whenever a child it spawned exits, e.g. a start's early cgroup join):
	 * retried a few times, as libbpf does. */
	int pfd = -1;
	for (int attempt = 0; attempt < 5; attempt++) {
		verifier_log[0] = '\0';
		pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
		if (pfd >= 0 || errno != EAGAIN)
			break;
	}
	if (pfd < 0) {
		int e = errno;
		char *nl = strchr(verifier_log, '\n');
		if (nl)
			*nl = '\0';
		snprintf(err, err_size, "load the program: %s (%s)", strerror(e), verifier_log);
		close(cg);
		return -1;
	}
	union bpf_attr at;
	memset(&at, 0, sizeof at);
	at.target_fd = (uint32_t)cg;
	at.attach_bpf_fd = (uint32_t)pfd;
	at.attach_type = BPF_CGROUP_DEVICE;
	at.attach_flags = 0;
	int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &at, sizeof at);
	int e = errno;
	/* the cgroup holds the attached program: the fds go either way */
	close(pfd);
	close(cg);
	if (rc < 0) {
		fail("attach the program", e);
		return -1;
	}
	return 0;
}
