/*
 * pbtxt.c - the protobuf text format reader (see pbtxt.h), after the
 * language spec (protobuf.dev/reference/protobuf/textformat-spec):
 *
 *   Message  = { Field [ ";" | "," ] }
 *   Field    = Name ( ":" Scalar | ":" "[" [Scalar {"," Scalar}] "]"
 *                   | [":"] MsgValue | [":"] "[" [MsgValue {"," MsgValue}] "]" )
 *   MsgValue = "{" Message "}" | "<" Message ">"
 *   Scalar   = String {String} | ["-"] Number | ["-"] Identifier
 *
 * with "#" comments to the end of a line. Extension and Any names
 * ("[pkg.ext]") are refused: config.pbtxt has none that Ferry could use.
 * Numbers are kept as written; model_config.c checks them where it reads
 * them, against the range each field allows.
 */
#include "server/pbtxt.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper nesting than any real config, shallow enough for any stack. */
#define MAX_DEPTH 32
/* Fields in one document: a config has tens; this bounds the tree's size
 * whatever the input. */
#define MAX_FIELDS 100000

typedef struct reader {
    const char *p, *end;
    int line;
    int depth;
    long fields;
    bool oom;
    char *err;
    size_t errlen;
    bool failed;
} reader;

static bool fail(reader *r, const char *fmt, ...)
{
    if (r->failed)
        return false;
    r->failed = true;
    int n = snprintf(r->err, r->errlen, "line %d: ", r->line);
    if (n < 0 || (size_t)n >= r->errlen)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

/* What is at p, for messages: a character as it is, or its code. */
static const char *shown(const reader *r, char *buf, size_t n)
{
    if (r->p >= r->end)
        return "the end of the file";
    unsigned char c = (unsigned char)*r->p;
    if (c > 32 && c < 127)
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

static void skip_space(reader *r)
{
    while (r->p < r->end) {
        char c = *r->p;
        if (c == '\n') {
            r->line++;
            r->p++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            r->p++;
        } else if (c == '#') {
            while (r->p < r->end && *r->p != '\n')
                r->p++;
        } else {
            break;
        }
    }
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool peek(reader *r, char c)
{
    skip_space(r);
    return r->p < r->end && *r->p == c;
}

static bool accept(reader *r, char c)
{
    if (!peek(r, c))
        return false;
    r->p++;
    return true;
}

static char *dup_span(reader *r, const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) {
        r->oom = true;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* UTF-8 of code point cp into out (4 bytes at most). */
static size_t put_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A growing byte buffer for a string's unescaped bytes. */
typedef struct sbuf {
    char *b;
    size_t n, cap;
} sbuf;

/* Room for 4 more bytes (an escape's most) and the NUL. */
static bool sbuf_room(reader *r, sbuf *s)
{
    if (s->n + 5 <= s->cap)
        return true;
    size_t cap = s->cap ? 2 * s->cap : 32;
    char *nb = realloc(s->b, cap);
    if (!nb) {
        r->oom = true;
        return false;
    }
    s->b = nb;
    s->cap = cap;
    return true;
}

/* One quoted string at p (its opening quote), its bytes unescaped and
 * appended to sb. */
static bool read_string(reader *r, sbuf *sb)
{
    char q = *r->p++;
    for (;;) {
        if (!sbuf_room(r, sb))
            return false;
        char *buf = sb->b;
        size_t *n = &sb->n;
        if (r->p >= r->end || *r->p == '\n')
            return fail(r, "string not closed before the end of the line");
        char c = *r->p++;
        if (c == q)
            return true;
        if (c != '\\') {
            buf[(*n)++] = c;
            continue;
        }
        if (r->p >= r->end)
            return fail(r, "string not closed before the end of the file");
        c = *r->p++;
        switch (c) {
        case 'n': buf[(*n)++] = '\n'; break;
        case 't': buf[(*n)++] = '\t'; break;
        case 'r': buf[(*n)++] = '\r'; break;
        case 'a': buf[(*n)++] = '\a'; break;
        case 'b': buf[(*n)++] = '\b'; break;
        case 'f': buf[(*n)++] = '\f'; break;
        case 'v': buf[(*n)++] = '\v'; break;
        case '\\':
        case '\'':
        case '"':
        case '?': buf[(*n)++] = c; break;
        case 'x': {
            int v = 0, k = 0;
            for (; k < 2 && r->p < r->end && hexval(*r->p) >= 0; k++)
                v = v * 16 + hexval(*r->p++);
            if (!k)
                return fail(r, "\\x without hex digits in a string");
            buf[(*n)++] = (char)v;
            break;
        }
        case 'u':
        case 'U': {
            int want = c == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (int k = 0; k < want; k++) {
                if (r->p >= r->end || hexval(*r->p) < 0)
                    return fail(r, "\\%c wants %d hex digits in a string", c, want);
                v = v * 16 + (uint32_t)hexval(*r->p++);
            }
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                return fail(r, "\\%c%0*X is not a Unicode scalar value", c, want, v);
            /* at most 4 bytes from 6 or 10 of source */
            *n += put_utf8(v, buf + *n);
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                int v = c - '0';
                for (int k = 1; k < 3 && r->p < r->end && *r->p >= '0' && *r->p <= '7'; k++)
                    v = v * 8 + (*r->p++ - '0');
                if (v > 255)
                    return fail(r, "octal escape \\%o is larger than a byte", (unsigned)v);
                buf[(*n)++] = (char)v;
                break;
            }
            return fail(r, "unknown escape '\\%c' in a string", c > 32 && c < 127 ? c : '?');
        }
    }
}

/* A scalar value into f (the field's name and line are set). */
static bool read_scalar(reader *r, pbtxt_field *f)
{
    skip_space(r);
    f->line = r->line;
    if (r->p < r->end && (*r->p == '"' || *r->p == '\'')) {
        sbuf sb = {0};
        do { /* adjacent strings are one */
            if (!read_string(r, &sb)) {
                free(sb.b);
                return false;
            }
            skip_space(r);
        } while (r->p < r->end && (*r->p == '"' || *r->p == '\''));
        if (!sbuf_room(r, &sb)) {
            free(sb.b);
            return false;
        }
        sb.b[sb.n] = '\0';
        f->text = sb.b;
        f->len = sb.n;
        f->kind = PBTXT_STRING;
        return true;
    }
    const char *s = r->p;
    if (r->p < r->end && *r->p == '-') {
        r->p++;
        skip_space(r); /* the spec allows "- 5" */
    }
    const char *t = r->p;
    if (t < r->end && ((*t >= '0' && *t <= '9') || *t == '.')) {
        /* a number: digits, letters (hex, exponent, the f suffix), dots,
         * and a sign right after an exponent's e */
        while (r->p < r->end) {
            char c = *r->p;
            if (is_ident_char(c) || c == '.') {
                r->p++;
            } else if ((c == '+' || c == '-') && r->p > t && (r->p[-1] == 'e' || r->p[-1] == 'E') &&
                       !(t + 1 < r->end && t[0] == '0' && (t[1] == 'x' || t[1] == 'X'))) {
                r->p++;
            } else {
                break;
            }
        }
        f->kind = PBTXT_NUMBER;
    } else if (t < r->end && is_ident_start(*t)) {
        while (r->p < r->end && is_ident_char(*r->p))
            r->p++;
        f->kind = s == t ? PBTXT_IDENT : PBTXT_NUMBER; /* -inf, -nan */
    } else {
        char b[16];
        return fail(r, "field '%s': expected a value, found %s", f->name, shown(r, b, sizeof b));
    }
    /* the text without the space a "- 5" may hold */
    size_t n = (size_t)(r->p - t) + (s != t ? 1 : 0);
    f->text = malloc(n + 1);
    if (!f->text) {
        r->oom = true;
        return false;
    }
    if (s != t)
        f->text[0] = '-';
    memcpy(f->text + (s != t), t, (size_t)(r->p - t));
    f->text[n] = '\0';
    f->len = n;
    return true;
}

static bool read_message(reader *r, pbtxt_msg *m, char close);

static pbtxt_field *add_field(reader *r, pbtxt_msg *m, const char *name, size_t name_n)
{
    if (++r->fields > MAX_FIELDS) {
        fail(r, "more than %d fields", MAX_FIELDS);
        return NULL;
    }
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 4;
        pbtxt_field *nf = realloc(m->fields, (size_t)cap * sizeof *nf);
        if (!nf) {
            r->oom = true;
            return NULL;
        }
        m->fields = nf;
        m->cap = cap;
    }
    pbtxt_field *f = &m->fields[m->n];
    memset(f, 0, sizeof *f);
    f->name = dup_span(r, name, name_n);
    if (!f->name)
        return NULL;
    f->line = r->line;
    m->n++;
    return f;
}

/* A message value at p ("{" or "<" next) into a new field of m. */
static bool read_msg_value(reader *r, pbtxt_msg *m, const char *name, size_t name_n)
{
    skip_space(r);
    char open = *r->p++;
    pbtxt_field *f = add_field(r, m, name, name_n);
    if (!f)
        return false;
    f->kind = PBTXT_MESSAGE;
    if (r->depth >= MAX_DEPTH)
        return fail(r, "messages nested deeper than %d", MAX_DEPTH);
    r->depth++;
    bool ok = read_message(r, &f->msg, open == '{' ? '}' : '>');
    r->depth--;
    return ok;
}

static bool is_msg_open(reader *r)
{
    return peek(r, '{') || peek(r, '<');
}

static bool read_field(reader *r, pbtxt_msg *m)
{
    skip_space(r);
    char b[16];
    if (r->p < r->end && *r->p == '[')
        return fail(r, "extension or Any field names ('[...]') are not supported");
    if (r->p >= r->end || !is_ident_start(*r->p))
        return fail(r, "expected a field name, found %s", shown(r, b, sizeof b));
    const char *name = r->p;
    while (r->p < r->end && is_ident_char(*r->p))
        r->p++;
    size_t name_n = (size_t)(r->p - name);
    char nm[64];
    snprintf(nm, sizeof nm, "%.*s", (int)(name_n < 60 ? name_n : 60), name);
    bool colon = accept(r, ':');
    if (is_msg_open(r))
        return read_msg_value(r, m, name, name_n);
    if (accept(r, '[')) {
        if (accept(r, ']'))
            return true; /* an empty list: no values */
        bool msgs = is_msg_open(r);
        if (!msgs && !colon)
            return fail(r, "field '%s': a list of scalars needs ':' before '['", nm);
        do {
            if (msgs) {
                if (!is_msg_open(r))
                    return fail(r, "field '%s': expected '{' in a list of messages, found %s", nm,
                                shown(r, b, sizeof b));
                if (!read_msg_value(r, m, name, name_n))
                    return false;
            } else {
                pbtxt_field *f = add_field(r, m, name, name_n);
                if (!f || !read_scalar(r, f))
                    return false;
            }
        } while (accept(r, ','));
        if (!accept(r, ']'))
            return fail(r, "field '%s': expected ',' or ']' in a list, found %s", nm,
                        shown(r, b, sizeof b));
        return true;
    }
    if (!colon)
        return fail(r, "field '%s': expected ':' or '{', found %s", nm, shown(r, b, sizeof b));
    pbtxt_field *f = add_field(r, m, name, name_n);
    return f && read_scalar(r, f);
}

static bool read_message(reader *r, pbtxt_msg *m, char close)
{
    char b[16];
    for (;;) {
        skip_space(r);
        if (r->p >= r->end) {
            if (close)
                return fail(r, "expected '%c' before the end of the file", close);
            return true;
        }
        if (close && *r->p == close) {
            r->p++;
            return true;
        }
        if (*r->p == '}' || *r->p == '>')
            return fail(r, "unexpected %s", shown(r, b, sizeof b));
        if (!read_field(r, m))
            return false;
        if (!accept(r, ';'))
            accept(r, ',');
    }
}

void pbtxt_free(pbtxt_msg *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        free(m->fields[i].name);
        free(m->fields[i].text);
        pbtxt_free(&m->fields[i].msg);
    }
    free(m->fields);
    memset(m, 0, sizeof *m);
}

bool pbtxt_parse(const char *text, size_t len, pbtxt_msg *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    reader r = {.p = text, .end = text + len, .line = 1, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    bool ok = read_message(&r, out, 0);
    if (r.oom) {
        r.failed = false;
        fail(&r, "out of memory");
        ok = false;
    }
    if (!ok) {
        if (!r.failed)
            fail(&r, "malformed text");
        pbtxt_free(out);
    }
    return ok;
}
