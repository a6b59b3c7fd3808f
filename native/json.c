/* Strict in-place JSON parser; see json.h for the rules. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct parser {
	struct json_doc *doc;
	char *buf;
	size_t len;
	size_t pos;
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *p, const char *fmt, ...)
{
	char what[120];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(p->doc->error, sizeof p->doc->error, "%s at byte %zu", what, p->pos);
	return -1;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->buf[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static int peek(struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->buf[p->pos] : -1;
}

static int new_value(struct parser *p, enum json_type type)
{
	struct json_doc *d = p->doc;
	if (d->used >= d->cap)
		return fail(p, "too many values");
	struct json_value *v = &d->pool[d->used];
	memset(v, 0, sizeof *v);
	v->type = type;
	v->next = -1;
	v->first = -1;
	return d->used++;
}

static int literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->buf + p->pos, word, n) != 0)
		return fail(p, "invalid literal");
	p->pos += n;
	return 0;
}

static int hex4(struct parser *p, unsigned *out)
{
	unsigned v = 0;
	if (p->len - p->pos < 4)
		return fail(p, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = p->buf[p->pos++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(p, "invalid \\u escape");
	}
	*out = v;
	return 0;
}

/* Writes code point cp as UTF-8 at *out. */
static void put_utf8(char **out, unsigned cp)
{
	char *o = *out;
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	*out = o;
}

/* Parses a string at p->pos (on the opening quote), unescaping it in place. The decoded
 * form is never longer than the escaped one, so it fits before the closing quote. */
static int parse_string(struct parser *p, const char **str, size_t *len)
{
	p->pos++; /* opening quote */
	char *start = p->buf + p->pos;
	char *out = start;
	for (;;) {
		if (p->pos >= p->len)
			return fail(p, "unterminated string");
		unsigned char c = (unsigned char)p->buf[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c != '\\') {
			*out++ = (char)c;
			p->pos++;
			continue;
		}
		p->pos++;
		if (p->pos >= p->len)
			return fail(p, "unterminated string");
		char e = p->buf[p->pos++];
		unsigned cp;
		switch (e) {
		case '"': *out++ = '"'; break;
		case '\\': *out++ = '\\'; break;
		case '/': *out++ = '/'; break;
		case 'b': *out++ = '\b'; break;
		case 'f': *out++ = '\f'; break;
		case 'n': *out++ = '\n'; break;
		case 'r': *out++ = '\r'; break;
		case 't': *out++ = '\t'; break;
		case 'u':
			if (hex4(p, &cp) < 0)
				return -1;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned lo;
				if (p->len - p->pos < 2 || p->buf[p->pos] != '\\' || p->buf[p->pos + 1] != 'u')
					return fail(p, "lone surrogate");
				p->pos += 2;
				if (hex4(p, &lo) < 0)
					return -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return fail(p, "lone surrogate");
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				return fail(p, "lone surrogate");
			}
			if (cp == 0)
				return fail(p, "NUL in string");
			put_utf8(&out, cp);
			break;
		default:
			return fail(p, "invalid escape");
		}
	}
	*out = '\0'; /* at most on the closing quote, which is already consumed */
	*str = start;
	*len = (size_t)(out - start);
	return 0;
}

static int parse_int(struct parser *p, int64_t *out)
{
	int neg = 0;
	uint64_t v = 0;
	if (peek(p) == '-') {
		neg = 1;
		p->pos++;
	}
	int c = peek(p);
	if (c < '0' || c > '9')
		return fail(p, "invalid number");
	if (c == '0') {
		p->pos++;
	} else {
		const uint64_t limit = (uint64_t)INT64_MAX + (uint64_t)neg;
		while ((c = peek(p)) >= '0' && c <= '9') {
			uint64_t digit = (uint64_t)(c - '0');
			if (v > (limit - digit) / 10)
				return fail(p, "number out of range");
			v = v * 10 + digit;
			p->pos++;
		}
	}
	c = peek(p);
	if (c == '.' || c == 'e' || c == 'E' || (c >= '0' && c <= '9'))
		return fail(p, "only plain integers are accepted");
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

static int parse_value(struct parser *p, int depth);

static int parse_container(struct parser *p, int depth, int is_object)
{
	int idx = new_value(p, is_object ? JSON_OBJECT : JSON_ARRAY);
	if (idx < 0)
		return -1;
	char close = is_object ? '}' : ']';
	int last = -1;
	p->pos++; /* opening bracket */
	skip_ws(p);
	if (peek(p) == close) {
		p->pos++;
		return idx;
	}
	for (;;) {
		const char *key = NULL;
		size_t keylen = 0;
		skip_ws(p);
		if (is_object) {
			if (peek(p) != '"')
				return fail(p, "expected a string key");
			if (parse_string(p, &key, &keylen) < 0)
				return -1;
			for (int m = p->doc->pool[idx].first; m >= 0; m = p->doc->pool[m].next)
				if (strcmp(p->doc->pool[m].key, key) == 0)
					return fail(p, "duplicate key \"%.40s\"", key);
			skip_ws(p);
			if (peek(p) != ':')
				return fail(p, "expected ':'");
			p->pos++;
		}
		int child = parse_value(p, depth + 1);
		if (child < 0)
			return -1;
		struct json_value *parent = &p->doc->pool[idx];
		p->doc->pool[child].key = key;
		if (last < 0)
			parent->first = child;
		else
			p->doc->pool[last].next = child;
		last = child;
		parent->count++;
		skip_ws(p);
		int c = peek(p);
		if (c == ',') {
			p->pos++;
			continue;
		}
		if (c == close) {
			p->pos++;
			return idx;
		}
		return fail(p, "expected ',' or '%c'", close);
	}
}

static int parse_value(struct parser *p, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return fail(p, "nested too deeply");
	skip_ws(p);
	int c = peek(p);
	int idx;
	switch (c) {
	case '{':
		return parse_container(p, depth, 1);
	case '[':
		return parse_container(p, depth, 0);
	case '"':
		if ((idx = new_value(p, JSON_STRING)) < 0)
			return -1;
		if (parse_string(p, &p->doc->pool[idx].str, &p->doc->pool[idx].len) < 0)
			return -1;
		return idx;
	case 't':
	case 'f':
		if ((idx = new_value(p, JSON_BOOL)) < 0)
			return -1;
		p->doc->pool[idx].boolean = c == 't';
		return literal(p, c == 't' ? "true" : "false") < 0 ? -1 : idx;
	case 'n':
		if ((idx = new_value(p, JSON_NULL)) < 0)
			return -1;
		return literal(p, "null") < 0 ? -1 : idx;
	default:
		if (c == '-' || (c >= '0' && c <= '9')) {
			if ((idx = new_value(p, JSON_INT)) < 0)
				return -1;
			return parse_int(p, &p->doc->pool[idx].num) < 0 ? -1 : idx;
		}
		return fail(p, c < 0 ? "unexpected end of input" : "unexpected character");
	}
}

int json_parse(struct json_doc *doc, char *buf, size_t len)
{
	struct parser p = { doc, buf, len, 0 };
	doc->used = 0;
	doc->error[0] = '\0';
	if (memchr(buf, '\0', len) != NULL)
		return fail(&p, "NUL byte in document");
	int root = parse_value(&p, 0);
	if (root < 0)
		return -1;
	skip_ws(&p);
	if (p.pos != len)
		return fail(&p, "trailing data");
	return root;
}

int json_member(const struct json_doc *doc, int obj, const char *key)
{
	for (int m = doc->pool[obj].first; m >= 0; m = doc->pool[m].next)
		if (strcmp(doc->pool[m].key, key) == 0)
			return m;
	return -1;
}
