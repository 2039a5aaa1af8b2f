/*
 * log: diagnostics to stderr (see include/proxyd/log.h). One write(2) per
 * line so that lines from the master and the workers do not interleave.
 */
#include "proxyd/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char role[32] = "proxyd";

void pd_log_set_role(const char *r)
{
    snprintf(role, sizeof role, "%s", r);
}

int pd_log_reopen(const char *path)
{
    if (!path || strcmp(path, "stderr") == 0)
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int r = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0;
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[1024];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y/%m/%d %H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03d %s[%d] %s: ", (int)(tv.tv_usec / 1000),
                          role, (int)getpid(), level);
    if (n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void pd_log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("info", fmt, ap);
    va_end(ap);
}

void pd_log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning", fmt, ap);
    va_end(ap);
}

void pd_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("error", fmt, ap);
    va_end(ap);
}
