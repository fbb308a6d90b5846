/*
 * utf8.h - the well-formedness of UTF-8 (RFC 3629), for the request reader
 * (kserve_parse.c refuses strings that are not UTF-8, as RFC 8259 asks) and
 * the writer (jsonw.c echoes a client's bytes as valid JSON whatever they are).
 */
#ifndef FERRY_SERVER_UTF8_H
#define FERRY_SERVER_UTF8_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at p, which has n >= 1 bytes
 * (no overlongs, no surrogates, nothing past U+10FFFF); 0 if it is not
 * one, truncated ones included. */
static inline size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

#endif
