/*
 * log: proxyd's own diagnostics ("cache.log"): one line per event on stderr
 * (or the cache_log file, dup'ed onto stderr by the master), prefixed with
 * the time, the process role and pid.
 */
#ifndef PROXYD_LOG_H
#define PROXYD_LOG_H

/* Name shown in lines of this process: "master" or "worker 3". */
void pd_log_set_role(const char *role);

/*
 * Point stderr at the cache_log file `path` (created, appended to), e.g. after
 * the file was rotated (SIGUSR1). NULL or "stderr": nothing to do. Returns 0,
 * or -1 with errno, keeping the old stderr.
 */
int pd_log_reopen(const char *path);

void pd_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pd_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pd_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
