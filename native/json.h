/*
 * A small, strict JSON parser for untrusted input of bounded size.
 *
 * The document is parsed in place: strings are unescaped into the input buffer and
 * NUL-terminated there, so the buffer must outlive the tree. Values live in a caller-given
 * pool (no allocation). Restrictions, all of which fail the parse: numbers must be integers
 * that fit in int64; strings may not contain U+0000; duplicate object keys; nesting deeper
 * than JSON_MAX_DEPTH; more values than the pool holds.
 */
#ifndef SVIRT_JSON_H
#define SVIRT_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 16

enum json_type { JSON_NULL, JSON_BOOL, JSON_INT, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_value {
	enum json_type type;
	int next;        /* index of the next element/member in the parent, or -1 */
	int first;       /* array/object: index of the first element/member, or -1 */
	int count;       /* array/object: number of elements/members */
	const char *key; /* member of an object: its key (NUL-terminated) */
	const char *str; /* string: NUL-terminated, no embedded NUL */
	size_t len;      /* string: length in bytes */
	int64_t num;     /* integer */
	int boolean;
};

struct json_doc {
	struct json_value *pool;
	int cap;
	int used;
	char error[160]; /* why the parse failed */
};

/* Parses buf[0..len) (modified in place). Returns the index of
 * the root value, or -1 with doc->error set. */
int json_parse(struct json_doc *doc, char *buf, size_t len);

/* The member named key of the object at index obj, or -1. */
int json_member(const struct json_doc *doc, int obj, const char *key);

#endif
