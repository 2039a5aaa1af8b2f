/*
 * conn: one non-blocking TCP socket with an input and an output buffer, the
 * I/O layer under the client and origin sides of a transaction.
 *
 * Why not a libevent bufferevent: libevent 2.1 reads at most 4096 bytes per
 * read(2), asks ioctl(FIONREAD) before each, and re-arms epoll when reading is
 * paused and resumed. A 1 MiB body cost ~1,000 system calls that way. A
 * pd_conn registers one edge-triggered event for the socket's whole life and
 * remembers itself whether the socket can be read or written (a short read
 * means empty, unless the peer's FIN came with the edge: EV_CLOSED), reads into
 * reserved buffer space with readv(2) in chunks that grow to PD_CONN_MAX_READ
 * while the peer keeps them full, and writes the whole output with writev(2)
 * once per loop iteration.
 *
 * Semantics (close to a bufferevent's, so the transaction code reads alike):
 * - read_cb runs after new bytes were appended to the input; reading stops
 *   while the input holds read_high bytes or more (0: no limit) and resumes
 *   when the owner drains it below;
 * - write_cb runs after a write left the output at or below write_low bytes;
 * - event_cb gets PD_CONN_CONNECTED, or PD_CONN_EOF / PD_CONN_ERROR /
 *   PD_CONN_TIMEOUT ORed with PD_CONN_READING or PD_CONN_WRITING; after EOF,
 *   an error or a read timeout, reading is disabled. PD_CONN_HUP says the
 *   peer closed while the owner was not reading (a client gone while its
 *   request is served).
 * - No function of this module calls a callback of the conn it is given:
 *   work is scheduled for the event loop, so a caller never sees its own
 *   object freed under it.
 *
 * Memory: the conn owns its socket and both buffers. pd_conn_free closes and
 * frees them; inside one of the conn's own callbacks the free is deferred to
 * the callback's return. Buffers hold no memory while empty.
 */
#ifndef PROXYD_CONN_H
#define PROXYD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

typedef struct pd_conn pd_conn;

/* What event_cb is told. */
#define PD_CONN_READING 0x01
#define PD_CONN_WRITING 0x02
#define PD_CONN_EOF 0x10
#define PD_CONN_ERROR 0x20
#define PD_CONN_TIMEOUT 0x40
#define PD_CONN_CONNECTED 0x80
/* The peer closed its side while reading is off (bytes may still wait unread):
 * told once; the EOF itself comes when reading is enabled again. */
#define PD_CONN_HUP 0x100

/* Largest single read, and the first one (reads double while they come back full). */
#define PD_CONN_MAX_READ (256 * 1024)
#define PD_CONN_MIN_READ (16 * 1024)

typedef void (*pd_conn_data_cb)(pd_conn *conn, void *arg);
typedef void (*pd_conn_event_cb)(pd_conn *conn, short what, void *arg);

/*
 * A conn for an open socket (made non-blocking here), or for fd -1 to be
 * connected with pd_conn_connect. Takes ownership of fd, also on failure
 * (NULL: fd closed).
 */
pd_conn *pd_conn_new(struct event_base *base, evutil_socket_t fd);

/*
 * Start a non-blocking connect to sa (the conn must have been made with fd
 * -1). Returns 0 when under way: event_cb then gets PD_CONN_CONNECTED, or
 * PD_CONN_ERROR (refused, unreachable) or PD_CONN_TIMEOUT|PD_CONN_WRITING
 * (past the write timeout). Returns -1 when it failed at once.
 */
int pd_conn_connect(pd_conn *conn, const struct sockaddr *sa, socklen_t len);
/* The same from a source address (port 0: the kernel's choice); NULL: any. */
int pd_conn_connect_from(pd_conn *c, const struct sockaddr *sa, socklen_t len,
                         const struct sockaddr_storage *src);

/* Close the socket and free the conn (deferred inside its own callbacks). */
void pd_conn_free(pd_conn *conn);

void pd_conn_setcb(pd_conn *conn, pd_conn_data_cb read_cb, pd_conn_data_cb write_cb,
                   pd_conn_event_cb event_cb, void *arg);

/* The buffers, owned by the conn. Bytes added to the output are written
 * from the event loop; bytes drained from the input make room to read. */
struct evbuffer *pd_conn_input(pd_conn *conn);
struct evbuffer *pd_conn_output(pd_conn *conn);
evutil_socket_t pd_conn_fd(const pd_conn *conn);

/*
 * Queue len bytes of the file fd from offset off after what the output holds;
 * they go to the socket with sendfile(2), by reference: fd must stay open and
 * the bytes unchanged until done(seg, flags, arg) runs, exactly once, when
 * they left the buffer (written, or dropped with the conn), or at once when
 * this fails (-1: send them by other means).
 */
int pd_conn_add_file(pd_conn *conn, int fd, int64_t off, size_t len,
                     evbuffer_file_segment_cleanup_cb done, void *arg);
/* The address pd_conn_connect was given (NULL for an accepted socket). */
const struct sockaddr *pd_conn_peer(const pd_conn *conn);

/* Reading and writing, each on or off (EV_READ, EV_WRITE); both start on. */
void pd_conn_enable(pd_conn *conn, short what);
void pd_conn_disable(pd_conn *conn, short what);
int pd_conn_reading(const pd_conn *conn);

void pd_conn_set_read_high(pd_conn *conn, size_t high);
void pd_conn_set_write_low(pd_conn *conn, size_t low);

/*
 * Timeouts in milliseconds, 0 for none. The read timeout runs while reading
 * is enabled and restarts on every read; the write timeout runs while output
 * is pending (or a connect is under way) and restarts on every write.
 */
void pd_conn_set_timeouts(pd_conn *conn, int64_t read_ms, int64_t write_ms);

/* Half-close: no more output after what is queued (shutdown(SHUT_WR) once it is written). */
void pd_conn_shutdown_write(pd_conn *conn);

/*
 * Splice relay: from now on what src reads goes to dst's socket inside the
 * kernel, socket -> pipe -> socket with splice(2), without passing through
 * src's input or dst's output buffer (both must be empty). src's read_cb runs
 * after bytes moved (pd_conn_take_spliced says how many); reading pauses
 * while the pipe (256 KB) is full and resumes as dst drains it; dst's
 * write_cb runs when the pipe drained (to write_low); src's EOF and errors are
 * told as before (bytes may still wait in the pipe: pd_conn_pending(dst)), a
 * write error on dst to dst's event_cb. Freeing either conn ends the relay.
 * The two directions between two conns are two relays, each with its pipe.
 * Returns 0, or -1 (buffers not empty, no pipe): keep relaying with the buffers.
 */
int pd_conn_splice(pd_conn *src, pd_conn *dst);

/* Bytes the relay moved from src into its destination since the last call. */
uint64_t pd_conn_take_spliced(pd_conn *src);

/* Bytes waiting to be written to conn's socket: its output buffer, plus the
 * pipe when it is a splice destination. */
size_t pd_conn_pending(const pd_conn *conn);

/* System calls made so far by every conn of this process (tests, the profile page). */
typedef struct pd_conn_counters {
    uint64_t reads, read_bytes, writes, write_bytes;
} pd_conn_counters;
void pd_conn_get_counters(pd_conn_counters *out);

#endif
