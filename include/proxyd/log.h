/*
 * log: proxyd's own diagnostics ("cache.log"): one line per event on stderr
 * (or the cache_log file, dup'ed onto stderr by the master), prefixed with
 * the time, the process role and pid.
 */
#ifndef PROXYD_LOG_H
#define PROXYD_LOG_H

/* Name shown in lines of this process: "master" or "worker 3". */
void pd_log_set_role(const char *role);

void pd_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pd_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pd_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
