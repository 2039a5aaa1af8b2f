/*
 * client: one client connection and the request it is serving: the request's
 * state machine from the first byte of its head to the last byte of the
 * response (forwarding, tunnelling, errors, access log), then keep-alive.
 */
#ifndef PROXYD_CLIENT_H
#define PROXYD_CLIENT_H

#include <sys/socket.h>
#include <event2/util.h>

#include "proxyd/engine.h"

/* Take ownership of an accepted socket fd; returns -1 (fd closed) on failure. */
int pd_client_accept(pd_engine *w, evutil_socket_t fd, const struct sockaddr *peer,
                     int peerlen, uint16_t local_port);

/* Drain: idle clients are closed now, busy ones after their current response. */
void pd_client_drain_all(pd_engine *w);

/* The cache's notify fd fired: retry every client waiting on an object being written. */
void pd_client_cache_wakeup(pd_engine *w);

/* Free every client at once (worker exit). */
void pd_client_close_all(pd_engine *w);

#endif
