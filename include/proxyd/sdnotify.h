/*
 * sdnotify: tell systemd (Type=notify units) about the daemon's state, without
 * libsystemd. The protocol is one datagram of "KEY=VALUE\n" lines sent to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
 * namespace); see sd_notify(3).
 */
#ifndef PROXYD_SDNOTIFY_H
#define PROXYD_SDNOTIFY_H

/*
 * Send state (e.g. "READY=1\nMAINPID=42") to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset or empty (not run by
 * systemd: nothing to do), -1 on error (bad socket name, send failed) with
 * errno set. state is not kept.
 */
int pd_sdnotify_send(const char *state);

#endif
