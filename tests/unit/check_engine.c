/* Unit tests for engine: pd_engine_own_listener, by a table of listeners and
 * destinations (IPv4, IPv6, v4-mapped, wildcard listeners, 0.0.0.0 and ::). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/engine.h"
#include "check_run.h"

/* "1.2.3.4:80" or "[::1]:80" into ss */
static void addr(const char *text, struct sockaddr_storage *ss)
{
    char host[64];
    memset(ss, 0, sizeof *ss);
    const char *colon = strrchr(text, ':');
    ck_assert_ptr_nonnull(colon);
    int port = atoi(colon + 1);
    if (text[0] == '[') {
        memcpy(host, text + 1, (size_t)(colon - text - 2));
        host[colon - text - 2] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET6, host, &s6->sin6_addr), 1);
    } else {
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET, host, &s4->sin_addr), 1);
    }
}

static const struct own_case {
    const char *listeners[3];
    const char *dst;
    int own;
} own_cases[] = {
    /* a listener on one address: that address and port only, and 0.0.0.0 / :: */
    { { "127.0.0.1:3129" }, "127.0.0.1:3129", 1 },
    { { "127.0.0.1:3129" }, "127.0.0.1:3130", 0 },
    { { "127.0.0.1:3129" }, "127.0.0.2:3129", 0 },
    { { "127.0.0.1:3129" }, "0.0.0.0:3129", 1 },
    { { "127.0.0.1:3129" }, "[::]:3129", 1 },
    { { "127.0.0.1:3129" }, "[::ffff:127.0.0.1]:3129", 1 },
    { { "127.0.0.1:3129" }, "192.0.2.1:3129", 0 },
    /* a wildcard listener: any address of this host on its port */
    { { "0.0.0.0:3128" }, "127.0.0.1:3128", 1 },
    { { "0.0.0.0:3128" }, "127.9.9.9:3128", 1 },
    { { "0.0.0.0:3128" }, "127.0.0.1:80", 0 },
    { { "0.0.0.0:3128" }, "192.0.2.1:3128", 0 },    /* TEST-NET-1: never this host's */
    { { "[::]:3128" }, "[::1]:3128", 1 },
    { { "[::]:3128" }, "[2001:db8::1]:3128", 0 },
    /* several: the second matches */
    { { "127.0.0.1:3128", "127.0.0.1:3129" }, "127.0.0.1:3129", 1 },
    { { "127.0.0.1:3128", "[::1]:3129" }, "[::1]:3129", 1 },
    { { "127.0.0.1:3128", "[::1]:3129" }, "[::1]:3128", 0 },
    /* none: nothing is ours */
    { { NULL }, "127.0.0.1:3128", 0 },
};

START_TEST(own_listener)
{
    const struct own_case *oc = &own_cases[_i];
    pd_engine e;
    memset(&e, 0, sizeof e);
    for (int i = 0; i < 3 && oc->listeners[i]; i++)
        addr(oc->listeners[i], &e.own[e.n_own++]);
    struct sockaddr_storage dst;
    addr(oc->dst, &dst);
    ck_assert_msg(pd_engine_own_listener(&e, &dst) == oc->own, "%s with %s...: want %d",
                  oc->dst, oc->listeners[0] ? oc->listeners[0] : "none", oc->own);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("own_listener");
    tcase_add_loop_test(tc, own_listener, 0, sizeof(own_cases) / sizeof(own_cases[0]));
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
