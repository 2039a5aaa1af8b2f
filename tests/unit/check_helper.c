/*
 * check_helper: the helper pool against small shell helpers written by the
 * tests: the reply grammar, channel IDs answered out of order, the bounded
 * queue, a child that dies mid-request, a timeout, cancellation, restart.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

static struct event_base *base;
#include "evtest.h"

#include "proxyd/helper.h"
#include "check_run.h"

/* ---- replies ------------------------------------------------------------ */

START_TEST(parse_reply_table)
{
    static const struct {
        const char *line;
        enum pd_helper_result r;
        int n_kv;
        const char *k0, *v0, *k1, *v1;
        const char *text;
    } cases[] = {
        {"OK", PD_HELPER_OK, 0, NULL, NULL, NULL, NULL, ""},
        {"ERR", PD_HELPER_ERR, 0, NULL, NULL, NULL, NULL, ""},
        {"BH message=\"no db\"", PD_HELPER_BH, 1, "message", "no db", NULL, NULL, ""},
        {"OK user=alice tag=x", PD_HELPER_OK, 2, "user", "alice", "tag", "x", ""},
        {"OK rewrite-url=http://b/ status=302", PD_HELPER_OK, 2, "rewrite-url", "http://b/",
         "status", "302", ""},
        {"ERR Wrong password", PD_HELPER_ERR, 0, NULL, NULL, NULL, NULL, "Wrong password"},
        {"ERR message=\"a \\\"q\\\" b\" trailing words", PD_HELPER_ERR, 1, "message",
         "a \"q\" b", NULL, NULL, "trailing words"},
        {"OKAY", PD_HELPER_UNKNOWN, 0, NULL, NULL, NULL, NULL, "OKAY"},
        {"http://rewritten/ 1.2.3.4/- - GET", PD_HELPER_UNKNOWN, 0, NULL, NULL, NULL, NULL,
         "http://rewritten/ 1.2.3.4/- - GET"},
        {"", PD_HELPER_UNKNOWN, 0, NULL, NULL, NULL, NULL, ""},
        {"OK =x", PD_HELPER_OK, 0, NULL, NULL, NULL, NULL, "=x"},
        {"OK k=\"unterminated", PD_HELPER_OK, 0, NULL, NULL, NULL, NULL, "k=\"unterminated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", cases[i].line);
        pd_helper_reply r;
        pd_helper_parse_reply(buf, &r);
        ck_assert_msg(r.result == cases[i].r, "case %zu result %d", i, r.result);
        ck_assert_msg(r.n_kv == cases[i].n_kv, "case %zu n_kv %d", i, r.n_kv);
        if (cases[i].k0) {
            ck_assert_str_eq(r.key[0], cases[i].k0);
            ck_assert_str_eq(r.value[0], cases[i].v0);
            ck_assert_str_eq(pd_helper_reply_get(&r, cases[i].k0), cases[i].v0);
        }
        if (cases[i].k1) {
            ck_assert_str_eq(r.key[1], cases[i].k1);
            ck_assert_str_eq(r.value[1], cases[i].v1);
        }
        ck_assert_msg(strcmp(r.text, cases[i].text) == 0, "case %zu text '%s'", i, r.text);
        ck_assert_ptr_null(pd_helper_reply_get(&r, "absent"));
    }
}
END_TEST

START_TEST(parse_children_words)
{
    pd_helper_cfg c = {.children_max = 0, .startup = 0, .idle = 1, .queue_size = -1};
    char err[128];
    char *ok[] = {"5", "startup=2", "idle=1", "concurrency=8", "queue-size=9"};
    ck_assert_int_eq(pd_helper_parse_children(&c, ok, 5, err, sizeof err), 0);
    ck_assert_int_eq(c.children_max, 5);
    ck_assert_int_eq(c.startup, 2);
    ck_assert_int_eq(c.concurrency, 8);
    ck_assert_int_eq(c.queue_size, 9);
    char *bad1[] = {"0"};
    ck_assert_int_eq(pd_helper_parse_children(&c, bad1, 1, err, sizeof err), -1);
    char *bad2[] = {"3", "startup=4"};
    ck_assert_int_eq(pd_helper_parse_children(&c, bad2, 2, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "startup"));
    char *bad3[] = {"3", "bogus=1"};
    ck_assert_int_eq(pd_helper_parse_children(&c, bad3, 2, err, sizeof err), -1);
    char *bad4[] = {"3", "concurrency=x"};
    ck_assert_int_eq(pd_helper_parse_children(&c, bad4, 2, err, sizeof err), -1);
}
END_TEST

/* ---- pools -------------------------------------------------------------- */

struct answer {
    int done;
    enum pd_helper_result r;
    char user[64];
    char text[128];
    int why;        /* the pool answered itself */
};

static void on_reply(void *arg, const pd_helper_reply *rep)
{
    struct answer *a = arg;
    a->done++;
    a->r = rep->result;
    const char *u = pd_helper_reply_get(rep, "user");
    snprintf(a->user, sizeof a->user, "%s", u ? u : "");
    snprintf(a->text, sizeof a->text, "%s", rep->text);
    a->why = rep->why != NULL;
}

static pd_helper *pool(const char *script, int max, int startup, int conc, int queue,
                       int timeout_ms)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    pd_helper_cfg c = {.name = "test", .argv = argv, .children_max = max, .startup = startup,
                       .idle = 1, .concurrency = conc, .queue_size = queue,
                       .timeout_ms = timeout_ms};
    pd_helper *h = pd_helper_create(base, &c);
    ck_assert_ptr_nonnull(h);
    return h;
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
}

static void teardown(void)
{
    event_base_free(base);
}

/* Echo the line back as the user; "bh" answers BH, "err" ERR. */
static const char *ECHO =
    "while read -r l; do case \"$l\" in bh) echo 'BH message=\"broken\"';; "
    "err) echo 'ERR Wrong password';; *) echo \"OK user=$l\";; esac; done";

START_TEST(roundtrip_in_order)
{
    pd_helper *h = pool(ECHO, 2, 1, 0, -1, 0);
    struct answer a[3] = {{0}};
    const char *lines[] = {"alice", "bh", "err"};
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(pd_helper_submit(h, lines[i], strlen(lines[i]), on_reply, &a[i]));
    /* never answered from inside submit */
    ck_assert_int_eq(a[0].done + a[1].done + a[2].done, 0);
    RUN_UNTIL(a[0].done && a[1].done && a[2].done);
    ck_assert_int_eq(a[0].r, PD_HELPER_OK);
    ck_assert_str_eq(a[0].user, "alice");
    ck_assert_int_eq(a[1].r, PD_HELPER_BH);
    ck_assert_int_eq(a[1].why, 0);
    ck_assert_int_eq(a[2].r, PD_HELPER_ERR);
    ck_assert_str_eq(a[2].text, "Wrong password");
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq((int)st.requests, 3);
    ck_assert_int_eq((int)st.replies, 3);
    ck_assert_int_le(st.children, 2);
    ck_assert_int_ge(st.children, 1);
    /* newline in a request: refused, never sent */
    ck_assert_ptr_null(pd_helper_submit(h, "a\nb", 3, on_reply, &a[0]));
    pd_helper_free(h);
}
END_TEST

/* concurrency=4: reads four requests, answers them last first. */
START_TEST(channels_out_of_order)
{
    const char *script =
        "while read -r c1 l1 && read -r c2 l2 && read -r c3 l3 && read -r c4 l4; do "
        "echo \"$c4 OK user=$l4\"; echo \"$c3 OK user=$l3\"; "
        "echo \"$c2 OK user=$l2\"; echo \"$c1 OK user=$l1\"; done";
    pd_helper *h = pool(script, 1, 1, 4, -1, 0);
    struct answer a[4] = {{0}};
    const char *lines[] = {"u0", "u1", "u2", "u3"};
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(pd_helper_submit(h, lines[i], 2, on_reply, &a[i]));
    RUN_UNTIL(a[0].done && a[1].done && a[2].done && a[3].done);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(a[i].r, PD_HELPER_OK);
        ck_assert_str_eq(a[i].user, lines[i]);
        ck_assert_int_eq(a[i].done, 1);
    }
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq(st.children, 1);
    pd_helper_free(h);
}
END_TEST

/* One child that never answers, a queue of 2: the fourth request is refused. */
START_TEST(queue_overflow_refused)
{
    pd_helper *h = pool("exec cat >/dev/null", 1, 1, 0, 2, 0);
    struct answer a[4] = {{0}};
    ck_assert_ptr_nonnull(pd_helper_submit(h, "a", 1, on_reply, &a[0]));
    ck_assert_ptr_nonnull(pd_helper_submit(h, "b", 1, on_reply, &a[1]));
    ck_assert_ptr_nonnull(pd_helper_submit(h, "c", 1, on_reply, &a[2]));
    ck_assert_ptr_null(pd_helper_submit(h, "d", 1, on_reply, &a[3]));
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq((int)st.overflows, 1);
    ck_assert_int_eq(st.queued, 2);
    ck_assert_int_eq(st.busy, 1);
    pd_helper_free(h);
    ck_assert_int_eq(a[0].done + a[1].done + a[2].done + a[3].done, 0);
}
END_TEST

/* As Squid: past queue-size the pool is overloaded and still queues, until
 * the overload has lasted overload_grace_ms; then new requests are refused,
 * and once the queue is back within its size the overload is over. */
START_TEST(queue_overload_grace)
{
    char *argv[] = {"/bin/sh", "-c", "exec cat >/dev/null", NULL};
    pd_helper_cfg c = {.name = "test", .argv = argv, .children_max = 1, .startup = 1,
                       .idle = 1, .queue_size = 1, .overload_grace_ms = 50};
    pd_helper *h = pd_helper_create(base, &c);
    ck_assert_ptr_nonnull(h);
    struct answer a[5] = {{0}};
    ck_assert_ptr_nonnull(pd_helper_submit(h, "a", 1, on_reply, &a[0])); /* the child */
    ck_assert_ptr_nonnull(pd_helper_submit(h, "b", 1, on_reply, &a[1])); /* queued */
    ck_assert_ptr_nonnull(pd_helper_submit(h, "c", 1, on_reply, &a[2])); /* overloaded */
    ck_assert_ptr_nonnull(pd_helper_submit(h, "d", 1, on_reply, &a[3]));
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq((int)st.overflows, 0);
    ck_assert_int_eq(st.queued, 3);
    /* the overload persists past its grace: refused */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        event_base_loop(base, EVLOOP_NONBLOCK);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 60);
    ck_assert_ptr_null(pd_helper_submit(h, "e", 1, on_reply, &a[4]));
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq((int)st.overflows, 1);
    ck_assert_int_eq(st.queued, 3);
    pd_helper_free(h);
}
END_TEST

/* A child dies on "die": tried once more on a new child, which dies too: BH.
 * A request queued behind it is still answered (by a restarted child). */
START_TEST(crash_mid_request)
{
    const char *script = "while read -r l; do [ \"$l\" = die ] && exit 3; echo \"OK user=$l\"; done";
    pd_helper *h = pool(script, 1, 1, 0, -1, 0);
    struct answer a = {0}, b = {0};
    ck_assert_ptr_nonnull(pd_helper_submit(h, "die", 3, on_reply, &a));
    RUN_UNTIL(a.done);
    ck_assert_int_eq(a.r, PD_HELPER_BH);
    ck_assert_int_eq(a.why, 1);
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq((int)st.deaths, 2);
    /* the children died young: back-off; startup=1 brings one back after it */
    RUN_UNTIL((pd_helper_get_stats(h, &st), st.children == 1));
    ck_assert_ptr_nonnull(pd_helper_submit(h, "bob", 3, on_reply, &b));
    RUN_UNTIL(b.done);
    ck_assert_int_eq(b.r, PD_HELPER_OK);
    ck_assert_str_eq(b.user, "bob");
    pd_helper_free(h);
}
END_TEST

/* The child gets stdin, stdout and stderr, and none of the worker's other
 * descriptors (a listening socket held by a helper would outlive proxyd). */
START_TEST(child_inherits_no_descriptors)
{
    int fd = open("/dev/null", O_RDONLY);     /* not close-on-exec */
    ck_assert_int_ge(fd, 3);
    ck_assert_int_eq(dup2(fd, 50), 50);
    pd_helper *h = pool("while read -r l; do if [ -e /proc/$$/fd/50 ]; then echo OK user=leak; "
                        "else echo OK user=clean; fi; done", 1, 1, 0, -1, 0);
    struct answer a = {0};
    ck_assert_ptr_nonnull(pd_helper_submit(h, "x", 1, on_reply, &a));
    RUN_UNTIL(a.done);
    ck_assert_str_eq(a.user, "clean");
    pd_helper_free(h);
    close(50);
    close(fd);
}
END_TEST

/* A program that cannot run: every request is answered BH, never OK. */
START_TEST(missing_program_fails_closed)
{
    char *argv[] = {"/nonexistent/helper", NULL};
    pd_helper_cfg c = {.name = "missing", .argv = argv, .children_max = 2, .startup = 1,
                       .idle = 1, .queue_size = -1};
    pd_helper *h = pd_helper_create(base, &c);
    ck_assert_ptr_nonnull(h);
    struct answer a = {0};
    pd_helper_req *r = pd_helper_submit(h, "x", 1, on_reply, &a);
    ck_assert_ptr_nonnull(r);
    RUN_UNTIL(a.done);
    ck_assert_int_eq(a.r, PD_HELPER_BH);
    pd_helper_free(h);
}
END_TEST

START_TEST(timeout_answers_bh)
{
    /* answers "late" only after the next request arrives */
    const char *script = "while read -r l; do [ \"$l\" = slow ] && read -r l2 && echo OK user=late; "
                         "echo \"OK user=$l\"; done";
    pd_helper *h = pool(script, 1, 1, 0, -1, 100);
    struct answer a = {0};
    ck_assert_ptr_nonnull(pd_helper_submit(h, "slow", 4, on_reply, &a));
    RUN_UNTIL(a.done);
    ck_assert_int_eq(a.r, PD_HELPER_BH);
    ck_assert_int_eq(a.why, 1);
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq((int)st.timeouts, 1);
    /* the child is still busy with "slow": a second child (max 1) cannot
     * start, so this one waits; once it is sent the late reply is dropped */
    ck_assert_int_eq(st.busy, 1);
    pd_helper_free(h);
    ck_assert_int_eq(a.done, 1);
}
END_TEST

START_TEST(cancel_drops_reply)
{
    pd_helper *h = pool(ECHO, 1, 1, 0, -1, 0);
    struct answer a = {0}, b = {0};
    pd_helper_req *r = pd_helper_submit(h, "first", 5, on_reply, &a);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(pd_helper_submit(h, "second", 6, on_reply, &b));
    pd_helper_cancel(r);
    RUN_UNTIL(b.done);
    ck_assert_int_eq(a.done, 0);
    ck_assert_str_eq(b.user, "second");
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq((int)st.replies, 2);
    pd_helper_free(h);
}
END_TEST

/* All busy: the queue holds requests until a child frees up; a second child
 * starts on demand up to children_max. */
START_TEST(busy_children_queue_then_answer)
{
    pd_helper *h = pool(ECHO, 2, 0, 0, 10, 0);
    struct answer a[6] = {{0}};
    char line[8];
    for (int i = 0; i < 6; i++) {
        snprintf(line, sizeof line, "u%d", i);
        ck_assert_ptr_nonnull(pd_helper_submit(h, line, strlen(line), on_reply, &a[i]));
    }
    RUN_UNTIL(a[0].done && a[1].done && a[2].done && a[3].done && a[4].done && a[5].done);
    for (int i = 0; i < 6; i++) {
        snprintf(line, sizeof line, "u%d", i);
        ck_assert_str_eq(a[i].user, line);
    }
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    ck_assert_int_eq(st.children, 2);
    ck_assert_int_eq((int)st.spawns, 2);
    pd_helper_free(h);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("helper");
    TCase *t = tcase_create("parse");
    tcase_add_test(t, parse_reply_table);
    tcase_add_test(t, parse_children_words);
    suite_add_tcase(s, t);
    t = tcase_create("pool");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 20);
    tcase_add_test(t, roundtrip_in_order);
    tcase_add_test(t, channels_out_of_order);
    tcase_add_test(t, queue_overflow_refused);
    tcase_add_test(t, queue_overload_grace);
    tcase_add_test(t, crash_mid_request);
    tcase_add_test(t, missing_program_fails_closed);
    tcase_add_test(t, child_inherits_no_descriptors);
    tcase_add_test(t, timeout_answers_bh);
    tcase_add_test(t, cancel_drops_reply);
    tcase_add_test(t, busy_children_queue_then_answer);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return pd_check_run(suite());
}
