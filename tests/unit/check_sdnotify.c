/*
 * check_sdnotify: the sd_notify datagram reaches a socket named by
 * $NOTIFY_SOCKET (path and abstract forms), and bad names are errors.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxyd/sdnotify.h"
#include "check_run.h"

/* Bind a datagram socket at name ("/path" or "@abstract"); returns the fd. */
static int bind_dgram(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)), 0);
    return fd;
}

static void expect_received(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    ck_assert_int_eq(n, (ssize_t)strlen(want));
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

START_TEST(unset_is_noop)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(pd_sdnotify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(pd_sdnotify_send("READY=1"), 0);
}
END_TEST

START_TEST(path_socket)
{
    char dir[] = "/tmp/check_sdnotify.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = bind_dgram(path);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(pd_sdnotify_send("READY=1\nMAINPID=7"), 1);
    expect_received(fd, "READY=1\nMAINPID=7");
    close(fd);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(abstract_socket)
{
    char name[64];
    snprintf(name, sizeof name, "@check_sdnotify.%d", (int)getpid());
    int fd = bind_dgram(name);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_int_eq(pd_sdnotify_send("STOPPING=1"), 1);
    expect_received(fd, "STOPPING=1");
    close(fd);
}
END_TEST

START_TEST(bad_names)
{
    static const char *bad[] = { "relative/path", "@", "/", "x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("NOTIFY_SOCKET", bad[i], 1);
        errno = 0;
        ck_assert_int_eq(pd_sdnotify_send("READY=1"), -1);
        ck_assert_int_eq(errno, EINVAL);
    }
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    ck_assert_int_eq(pd_sdnotify_send("READY=1"), -1);
    /* a well-formed name with nobody listening: the send fails, no crash */
    setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify", 1);
    ck_assert_int_eq(pd_sdnotify_send("READY=1"), -1);
    setenv("NOTIFY_SOCKET", "/tmp/x", 1);
    ck_assert_int_eq(pd_sdnotify_send(NULL), -1);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sdnotify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, unset_is_noop);
    tcase_add_test(tc, path_socket);
    tcase_add_test(tc, abstract_socket);
    tcase_add_test(tc, bad_names);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
