/*
 * tunnel: CONNECT. Once the origin accepted the connection the client gets
 * "200 Connection established" and bytes are relayed both ways, each side
 * reading only while the other side's output is small; a half-close is
 * passed on once the other side's output is flushed, and the transaction
 * ends when both directions are done.
 *
 * Each direction starts through the conns' buffers and switches to a splice
 * relay (pd_conn_splice: socket -> pipe -> socket in the kernel, no copy into
 * proxyd) once it carries a bulk transfer and its buffers are empty. Nobody
 * looks at tunnelled bytes (TLS), so copying a download through user space is
 * pure cost; for small exchanges a read and a write are cheaper than a pipe.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxyd/access_log.h"
#include "proxyd/acl.h"
#include "proxyd/admin.h"
#include "proxyd/cache_store.h"
#include "proxyd/dns.h"
#include "proxyd/errors.h"
#include "proxyd/http_msg.h"
#include "proxyd/stats.h"
#include "proxyd/upool.h"
#include "proxyd/url.h"

#include "client_int.h"


static void tunnel_begin(struct pd_client *c);

void client_tunnel_start(struct pd_client *c)
{
    struct evbuffer *out = cout(c);
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    evbuffer_add(out, ok, sizeof ok - 1);
    c->out_bytes += sizeof ok - 1;
    tunnel_begin(c);
}

void client_tunnel_via_peer(struct pd_client *c)
{
    char auth[PD_URL_HOST_MAX + 16];
    pd_url_authority(&c->url, auth, sizeof auth);
    struct evbuffer *uo = pd_conn_output(c->up);
    size_t before = evbuffer_get_length(uo);
    evbuffer_add_printf(uo, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", auth, auth);
    const char *pa = pd_peer_auth(c->w->peers, c->via_peer - 1);
    if (pa)
        evbuffer_add_printf(uo, "Proxy-Authorization: %s\r\n", pa);
    evbuffer_add(uo, "\r\n", 2);
    c->up_out_bytes += evbuffer_get_length(uo) - before;
    /* the parent's answer is the client's: logged 200 as the tunnel it asked for */
    tunnel_begin(c);
}

static void tunnel_begin(struct pd_client *c)
{
    client_head_queued(c);
    c->status = 200;
    c->result = PD_R_TCP_TUNNEL;
    c->state = C_TUNNEL;
    const pd_conf *conf = c->w->conf;
    pd_conn_set_timeouts(c->up, conf->read_timeout, conf->write_timeout);
    pd_conn_set_timeouts(c->bev, conf->read_timeout, conf->write_timeout);
    pd_conn_set_read_high(c->up, HIGH_WM);
    pd_conn_set_read_high(c->bev, HIGH_WM);
    pd_conn_enable(c->bev, EV_READ | EV_WRITE);
    pd_conn_enable(c->up, EV_READ | EV_WRITE);
    client_tunnel_pump(c);
}

/* A direction goes on in the kernel once it carries a bulk transfer: one
 * round brought SPLICE_BURST bytes or more. Small exchanges (handshakes,
 * requests, short answers) stay in user space, where a read and a write cost
 * less than two splices through a pipe (bench/tunnel, docs/benchmarks.md). */
#define SPLICE_BURST (64 * 1024)

/*
 * One direction, from src (its input already moved to out, dst's output):
 * a bulk direction switches to a splice relay once its buffers are empty,
 * and reads nothing more until then, or a steady stream would keep them busy
 * for good; otherwise src reads while out is small. A direction that cannot
 * be spliced (no pipe: EMFILE, ENFILE) stays in user space, as do the rest
 * of the transaction's.
 */
static void tunnel_direction(struct pd_client *c, pd_conn *src, pd_conn *dst, struct evbuffer *out,
                             size_t moved, int eof, int *spliced, int *bulk)
{
    if (*spliced || eof)
        return;
    if (moved >= SPLICE_BURST && c->w->conf->tunnel_splice)
        *bulk = 1;
    int to_splice = *bulk && !c->spl_failed;
    if (to_splice && evbuffer_get_length(pd_conn_input(src)) == 0 &&
        evbuffer_get_length(out) == 0) {
        if (pd_conn_splice(src, dst) == 0) {
            *spliced = 1;
            pd_conn_enable(src, EV_READ); /* it may have been paused by the buffers */
            return;
        }
        c->spl_failed = 1;
        to_splice = 0;
    }
    if (evbuffer_get_length(out) > (to_splice ? 0 : HIGH_WM))
        pd_conn_disable(src, EV_READ);
    else
        pd_conn_enable(src, EV_READ);
}

/*
 * Move what each side sent to the other, pass a half-close on once the
 * other side's output is flushed, and end when both directions are done.
 * May free c.
 */
void client_tunnel_pump(struct pd_client *c)
{
    struct evbuffer *cin = pd_conn_input(c->bev), *cout_ = cout(c);
    struct evbuffer *uin = pd_conn_input(c->up), *uout = pd_conn_output(c->up);
    /* what the splice relays moved since the last round */
    uint64_t m = pd_conn_take_spliced(c->bev);
    c->in_bytes += m;
    c->up_out_bytes += m;
    uint64_t spliced = m;
    m = pd_conn_take_spliced(c->up);
    c->out_bytes += m;
    c->resp_bytes_in += m;
    spliced += m;
    if (spliced)
        pd_stats_add(c->w->stats, PD_STAT_TUNNEL_SPLICED_BYTES, (int64_t)spliced);
    size_t n_uc = evbuffer_get_length(uin);
    if (n_uc) {
        evbuffer_remove_buffer(uin, cout_, n_uc);
        c->out_bytes += n_uc;
        c->resp_bytes_in += n_uc;
    }
    size_t n_cu = evbuffer_get_length(cin);
    c->in_bytes += n_cu;
    c->up_out_bytes += n_cu;
    evbuffer_add_buffer(uout, cin);
    tunnel_direction(c, c->bev, c->up, uout, n_cu, c->cl_eof, &c->spl_cu, &c->bulk_cu);
    tunnel_direction(c, c->up, c->bev, cout_, n_uc, c->up_eof, &c->spl_uc, &c->bulk_uc);
    size_t to_up = pd_conn_pending(c->up), to_client = pd_conn_pending(c->bev);
    if (c->cl_eof && to_up == 0)
        shutdown(pd_conn_fd(c->up), SHUT_WR);
    if (c->up_eof && to_client == 0)
        shutdown(pd_conn_fd(c->bev), SHUT_WR);
    if (c->cl_eof && c->up_eof && to_up == 0 && to_client == 0)
        client_free(c);
}
