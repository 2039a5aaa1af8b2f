/*
 * master: process supervision (see src/master.c).
 */
#ifndef PROXYD_MASTER_H
#define PROXYD_MASTER_H

/* Run proxyd with this configuration until SIGTERM/SIGINT; returns the exit status. */
int pd_master_run(const char *conf_path);

/* proxyd -t: load and check the configuration; 0 when it is good. */
int pd_master_check(const char *conf_path);

#endif
