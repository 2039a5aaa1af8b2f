/*
 * icp: the Internet Cache Protocol, version 2 (RFC 2186), as Squid speaks it.
 *
 * Three parts:
 *   - the wire format (pd_icp_decode, pd_icp_encode): pure functions, no
 *     state, unit-tested with malformed packets;
 *   - the server: a worker answers the queries that reach its icp_port
 *     socket (one SO_REUSEPORT UDP socket per worker, opened by the master)
 *     with what the shared cache holds fresh: ICP_HIT, ICP_MISS,
 *     ICP_MISS_NOFETCH (draining), ICP_DENIED (icp_access), ICP_ERR (a query
 *     whose URL is malformed);
 *   - the client: on a miss, a transaction asks the siblings and parents
 *     peer.c names (pd_peer_icp_targets) and waits for their answers, up to
 *     the ICP query timeout; the answer is the peer that said HIT, or the
 *     parent whose MISS came first (weighted by RTT), or nothing.
 *
 * A worker sends its queries from a UDP socket of its own (an ephemeral
 * port), so that the answers come back to the worker that waits for them;
 * Squid answers a query to the address and port it came from.
 *
 * Memory: pd_icp is the worker's (pd_icp_new / pd_icp_free); a pd_icp_query
 * belongs to the module from pd_icp_query_start until its callback ran or
 * pd_icp_query_cancel was called, whichever comes first.
 */
#ifndef PROXYD_ICP_H
#define PROXYD_ICP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PD_ICP_VERSION 2
#define PD_ICP_HEADER_LEN 20       /* opcode, version, length, reqnum, flags, pad, sender */
#define PD_ICP_MAX_MSG 16384       /* the largest datagram read or written */

enum pd_icp_opcode {
    PD_ICP_OP_INVALID = 0,
    PD_ICP_OP_QUERY = 1,
    PD_ICP_OP_HIT = 2,
    PD_ICP_OP_MISS = 3,
    PD_ICP_OP_ERR = 4,
    PD_ICP_OP_SECHO = 10,
    PD_ICP_OP_DECHO = 11,
    PD_ICP_OP_MISS_NOFETCH = 21,
    PD_ICP_OP_DENIED = 22,
    PD_ICP_OP_HIT_OBJ = 23,
};

/* Why a datagram was not a message (pd_icp_decode). */
enum pd_icp_decode_result {
    PD_ICP_OK = 0,
    PD_ICP_ESHORT,      /* shorter than the header (or a query without its requester field) */
    PD_ICP_EVERSION,    /* not version 2 */
    PD_ICP_ELENGTH,     /* the length field is not the datagram's length */
    PD_ICP_EOPCODE,     /* an opcode proxyd does not take (HIT_OBJ, unknown) */
    PD_ICP_EURL,        /* no URL, not NUL-terminated, or an embedded NUL */
};

typedef struct pd_icp_msg {
    int opcode, version;
    uint16_t length;
    uint32_t reqnum, flags, pad, sender;
    uint32_t requester;         /* ICP_QUERY only: the requester host address field */
    const char *url;            /* into the datagram, NUL-terminated */
    size_t url_len;
} pd_icp_msg;

/*
 * Decode a datagram of len bytes. On PD_ICP_OK m is filled (m->url points
 * into buf). For PD_ICP_EURL and PD_ICP_EOPCODE the header fields of m are
 * set (a query with a bad URL is answered ICP_ERR with its reqnum); for the
 * other errors nothing in m is meaningful.
 */
enum pd_icp_decode_result pd_icp_decode(const void *buf, size_t len, pd_icp_msg *m);

/*
 * Encode a message into buf (size bytes): the header, for ICP_QUERY the
 * requester field (0, as Squid sends it), then url (url_len bytes, no NUL in
 * it) and its NUL. Returns its length, or 0 when it does not fit in size or
 * in the 16-bit length field.
 */
size_t pd_icp_encode(void *buf, size_t size, int opcode, uint32_t reqnum, uint32_t flags,
                     uint32_t pad, const char *url, size_t url_len);

/* "ICP_HIT", ... ("ICP_INVALID" for what is not an opcode). */
const char *pd_icp_opcode_name(int opcode);
/* The access log's code for a reply: "UDP_HIT", "UDP_MISS", "UDP_DENIED", ... */
const char *pd_icp_log_code(int opcode);

/* ---- the worker's ICP ---------------------------------------------------- */

struct pd_engine;
typedef struct pd_icp pd_icp;
typedef struct pd_icp_query pd_icp_query;

/*
 * The worker's ICP: answer queries on server_fd (its icp_port socket, -1:
 * none) and open a socket for its own queries when the configuration has
 * peers to ask. e must outlive it. NULL on error (logged).
 */
pd_icp *pd_icp_new(struct pd_engine *e, int server_fd);
void pd_icp_free(pd_icp *icp);

/* The outcome of a query (pd_icp_done_cb). */
typedef struct pd_icp_outcome {
    int hit;                    /* peer index that answered ICP_HIT, or -1 */
    int first_parent_miss;      /* parent with the fastest (RTT/weight) ICP_MISS, or -1 */
    int timed_out;              /* not every expected answer came in time */
    int replies, expected;
} pd_icp_outcome;

typedef void (*pd_icp_done_cb)(void *arg, const pd_icp_outcome *o);

/*
 * Ask peers[0..n-1] (cache_peer indexes) about url (url_len bytes). cb runs
 * once, later, from the event loop: at the first HIT, when every expected
 * peer answered, or at the timeout. Returns NULL when nothing was sent (no
 * peer could be asked: no address yet, sendto failed); then cb never runs.
 */
pd_icp_query *pd_icp_query_start(pd_icp *icp, const char *url, size_t url_len,
                                 const int *peers, int n, pd_icp_done_cb cb, void *arg);
/* Forget a query whose callback has not run; cb will not run. */
void pd_icp_query_cancel(pd_icp_query *q);

#endif
