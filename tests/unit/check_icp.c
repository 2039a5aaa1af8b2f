/*
 * check_icp: the ICP v2 wire format (RFC 2186) of icp.c: encode/decode round
 * trips, byte-exact layouts, and malformed datagrams (short, wrong version,
 * bad length, bad URL field) refused without reading past the datagram.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/icp.h"
#include "check_run.h"

static const char URL[] = "http://127.0.0.1:8080/obj";

START_TEST(query_layout)
{
    unsigned char b[256];
    size_t n = pd_icp_encode(b, sizeof b, PD_ICP_OP_QUERY, 0x01020304u, 0, 0, URL, strlen(URL));
    /* header 20 + requester 4 + URL + NUL */
    ck_assert_uint_eq(n, 20 + 4 + strlen(URL) + 1);
    ck_assert_uint_eq(b[0], 1);             /* ICP_OP_QUERY */
    ck_assert_uint_eq(b[1], 2);             /* version 2 */
    ck_assert_uint_eq((size_t)(b[2] << 8 | b[3]), n);
    ck_assert_uint_eq(b[4], 1);
    ck_assert_uint_eq(b[7], 4);             /* reqnum in network order */
    ck_assert_mem_eq(b + 24, URL, strlen(URL));
    ck_assert_uint_eq(b[n - 1], 0);
    pd_icp_msg m;
    ck_assert_int_eq(pd_icp_decode(b, n, &m), PD_ICP_OK);
    ck_assert_int_eq(m.opcode, PD_ICP_OP_QUERY);
    ck_assert_uint_eq(m.reqnum, 0x01020304u);
    ck_assert_uint_eq(m.url_len, strlen(URL));
    ck_assert_str_eq(m.url, URL);
}
END_TEST

static const int reply_ops[] = { PD_ICP_OP_HIT, PD_ICP_OP_MISS, PD_ICP_OP_ERR,
                                 PD_ICP_OP_MISS_NOFETCH, PD_ICP_OP_DENIED };

START_TEST(reply_round_trip)
{
    unsigned char b[256];
    int op = reply_ops[_i];
    size_t n = pd_icp_encode(b, sizeof b, op, 77, 0x80000000u, 0x12345678u, URL, strlen(URL));
    ck_assert_uint_eq(n, 20 + strlen(URL) + 1); /* a reply has no requester field */
    pd_icp_msg m;
    ck_assert_int_eq(pd_icp_decode(b, n, &m), PD_ICP_OK);
    ck_assert_int_eq(m.opcode, op);
    ck_assert_uint_eq(m.reqnum, 77);
    ck_assert_uint_eq(m.flags, 0x80000000u);
    ck_assert_uint_eq(m.pad, 0x12345678u);
    ck_assert_str_eq(m.url, URL);
}
END_TEST

START_TEST(empty_url_err)
{
    /* Squid answers a query it cannot read with ICP_ERR and an empty URL */
    unsigned char b[64];
    size_t n = pd_icp_encode(b, sizeof b, PD_ICP_OP_ERR, 5, 0, 0, "", 0);
    ck_assert_uint_eq(n, 21);
    pd_icp_msg m;
    ck_assert_int_eq(pd_icp_decode(b, n, &m), PD_ICP_OK);
    ck_assert_uint_eq(m.url_len, 0);
}
END_TEST

START_TEST(encode_limits)
{
    unsigned char b[64];
    /* does not fit */
    ck_assert_uint_eq(pd_icp_encode(b, 30, PD_ICP_OP_QUERY, 1, 0, 0, URL, strlen(URL)), 0);
    /* a NUL inside the URL cannot be sent */
    ck_assert_uint_eq(pd_icp_encode(b, sizeof b, PD_ICP_OP_HIT, 1, 0, 0, "a\0b", 3), 0);
    /* over the 16-bit length field */
    size_t big = 70000;
    char *u = malloc(big);
    unsigned char *out = malloc(big + 64);
    memset(u, 'a', big);
    ck_assert_uint_eq(pd_icp_encode(out, big + 64, PD_ICP_OP_HIT, 1, 0, 0, u, big), 0);
    free(u);
    free(out);
}
END_TEST

/* Malformed datagrams: each is refused with its reason. */
static size_t good_query(unsigned char *b, size_t size)
{
    return pd_icp_encode(b, size, PD_ICP_OP_QUERY, 9, 0, 0, URL, strlen(URL));
}

START_TEST(short_datagrams)
{
    unsigned char b[256];
    size_t n = good_query(b, sizeof b);
    pd_icp_msg m;
    /* every length shorter than the header, copied to an exact-size buffer so
     * that ASan catches a read past it */
    for (size_t len = 0; len < PD_ICP_HEADER_LEN; len++) {
        unsigned char *c = malloc(len ? len : 1);
        memcpy(c, b, len);
        ck_assert_int_eq(pd_icp_decode(c, len, &m), PD_ICP_ESHORT);
        free(c);
    }
    /* a query cut at every byte after the header: its length field no longer matches */
    for (size_t len = PD_ICP_HEADER_LEN; len < n; len++) {
        unsigned char *c = malloc(len);
        memcpy(c, b, len);
        ck_assert_int_eq(pd_icp_decode(c, len, &m), PD_ICP_ELENGTH);
        /* and with the length field fixed up: no room for the requester, or no NUL */
        c[2] = (unsigned char)(len >> 8);
        c[3] = (unsigned char)len;
        enum pd_icp_decode_result r = pd_icp_decode(c, len, &m);
        ck_assert_int_eq(r, len < PD_ICP_HEADER_LEN + 4 ? PD_ICP_ESHORT : PD_ICP_EURL);
        free(c);
    }
    ck_assert_int_eq(pd_icp_decode(NULL, 0, &m), PD_ICP_ESHORT);
}
END_TEST

START_TEST(wrong_version)
{
    unsigned char b[256];
    size_t n = good_query(b, sizeof b);
    pd_icp_msg m;
    for (int v = 0; v < 256; v++) {
        b[1] = (unsigned char)v;
        ck_assert_int_eq(pd_icp_decode(b, n, &m), v == 2 ? PD_ICP_OK : PD_ICP_EVERSION);
    }
}
END_TEST

START_TEST(bad_length_field)
{
    unsigned char b[256];
    size_t n = good_query(b, sizeof b);
    pd_icp_msg m;
    for (unsigned v = 0; v < 0x10000; v += 7) {
        b[2] = (unsigned char)(v >> 8);
        b[3] = (unsigned char)v;
        ck_assert_int_eq(pd_icp_decode(b, n, &m), v == n ? PD_ICP_OK : PD_ICP_ELENGTH);
    }
    /* a datagram longer than its length field (trailing garbage) */
    b[2] = (unsigned char)(n >> 8);
    b[3] = (unsigned char)n;
    b[n] = 'x';
    ck_assert_int_eq(pd_icp_decode(b, n + 1, &m), PD_ICP_ELENGTH);
}
END_TEST

START_TEST(bad_url_field)
{
    unsigned char b[256];
    size_t n = good_query(b, sizeof b);
    pd_icp_msg m;
    /* not NUL-terminated */
    b[n - 1] = 'x';
    ck_assert_int_eq(pd_icp_decode(b, n, &m), PD_ICP_EURL);
    ck_assert_int_eq(m.opcode, PD_ICP_OP_QUERY); /* the header is known: answered ICP_ERR */
    ck_assert_uint_eq(m.reqnum, 9);
    b[n - 1] = '\0';
    /* an embedded NUL */
    b[30] = '\0';
    ck_assert_int_eq(pd_icp_decode(b, n, &m), PD_ICP_EURL);
    /* a reply of just a header: no URL field at all */
    unsigned char h[20];
    memset(h, 0, sizeof h);
    h[0] = PD_ICP_OP_HIT;
    h[1] = 2;
    h[3] = 20;
    ck_assert_int_eq(pd_icp_decode(h, sizeof h, &m), PD_ICP_EURL);
}
END_TEST

START_TEST(unknown_opcodes)
{
    unsigned char b[256];
    size_t n = pd_icp_encode(b, sizeof b, PD_ICP_OP_HIT, 1, 0, 0, URL, strlen(URL));
    pd_icp_msg m;
    for (int op = 0; op < 256; op++) {
        b[0] = (unsigned char)op;
        enum pd_icp_decode_result r = pd_icp_decode(b, n, &m);
        int known = op == 2 || op == 3 || op == 4 || op == 10 || op == 11 || op == 21 || op == 22;
        if (op == 1) /* a query needs its requester field: here the URL loses 4 bytes */
            ck_assert_int_eq(r, PD_ICP_OK);
        else
            ck_assert_int_eq(r, known ? PD_ICP_OK : PD_ICP_EOPCODE);
    }
}
END_TEST

/* Random bytes and random mutations of good messages: no crash, no read past the end. */
START_TEST(random_datagrams)
{
    unsigned seed = 12345;
    unsigned char good[256];
    size_t gn = good_query(good, sizeof good);
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % 80;
        unsigned char *c = malloc(len ? len : 1);
        if (i % 2) {
            for (size_t k = 0; k < len; k++) {
                seed = seed * 1103515245u + 12345u;
                c[k] = (unsigned char)(seed >> 16);
            }
        } else {
            memcpy(c, good, len < gn ? len : gn);
            for (size_t k = gn; k < len; k++)
                c[k] = 0;
            if (len) {
                seed = seed * 1103515245u + 12345u;
                c[(seed >> 16) % len] ^= (unsigned char)(1u << ((seed >> 8) % 8));
            }
        }
        pd_icp_msg m;
        if (pd_icp_decode(c, len, &m) == PD_ICP_OK) {
            ck_assert_uint_eq(m.length, len);
            ck_assert_uint_eq(strlen(m.url), m.url_len);
            ck_assert_ptr_eq(m.url + m.url_len + 1, (const char *)c + len);
        }
        free(c);
    }
}
END_TEST

START_TEST(names)
{
    ck_assert_str_eq(pd_icp_opcode_name(PD_ICP_OP_MISS_NOFETCH), "ICP_MISS_NOFETCH");
    ck_assert_str_eq(pd_icp_opcode_name(99), "ICP_INVALID");
    ck_assert_str_eq(pd_icp_log_code(PD_ICP_OP_HIT), "UDP_HIT");
    ck_assert_str_eq(pd_icp_log_code(PD_ICP_OP_DENIED), "UDP_DENIED");
    ck_assert_str_eq(pd_icp_log_code(PD_ICP_OP_ERR), "UDP_INVALID");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("icp");
    TCase *tc = tcase_create("wire");
    tcase_add_test(tc, query_layout);
    tcase_add_loop_test(tc, reply_round_trip, 0, sizeof reply_ops / sizeof reply_ops[0]);
    tcase_add_test(tc, empty_url_err);
    tcase_add_test(tc, encode_limits);
    tcase_add_test(tc, short_datagrams);
    tcase_add_test(tc, wrong_version);
    tcase_add_test(tc, bad_length_field);
    tcase_add_test(tc, bad_url_field);
    tcase_add_test(tc, unknown_opcodes);
    tcase_add_test(tc, random_datagrams);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
