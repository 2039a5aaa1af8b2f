/*
 * client_drive.c: the one driver of a transaction's state machine.
 *
 * The transaction's step is c->state (enum cstate, client_int.h); what moves
 * it is an event (PD_CLIENT_EVENTS). Callbacks from the event loop, the
 * resolver, the helpers and the cache only record their event with
 * client_post; client_drive runs the handlers, one at a time and in the
 * order the events came. An event posted while a handler runs (a lookup
 * answered at once, a helper's cached answer, the cache waking the reader
 * that is writing) waits for that handler to return instead of running
 * inside it, and an ending a handler asks for (client_free, the hand-over to
 * the idle wait) happens once the driver returns: no frame up the stack ever
 * holds a freed transaction, and the events still pending then are dropped.
 *
 * Memory: the queue is a few bytes inside the transaction; nothing here
 * allocates.
 */
#include <assert.h>
#include <stdlib.h>

#include "client_int.h"

typedef void (*handler_fn)(struct pd_client *c);

static const handler_fn handlers[CEV_COUNT] = {
#define HANDLER_ROW(e, h) [CEV_##e] = h,
    PD_CLIENT_EVENTS(HANDLER_ROW)
#undef HANDLER_ROW
};

_Static_assert(CEV_COUNT <= 32, "ev_pending holds a bit per event");

static int is_up_event(enum client_event e)
{
    return e == CEV_UP_READ || e == CEV_UP_WRITE || e == CEV_UP_CONN;
}

static void record(struct pd_client *c, enum client_event e)
{
    uint32_t bit = 1u << e;
    if (c->ev_pending & bit)
        return; /* already waiting: its handler reads the latest state */
    c->ev_pending |= bit;
    c->ev_queue[(c->ev_head + c->ev_n) % CEV_COUNT] = (uint8_t)e;
    c->ev_n++;
}

/* Take the origin connection's pending events out of the queue. */
static void withdraw_up(struct pd_client *c)
{
    uint8_t kept[CEV_COUNT];
    unsigned n = 0;
    for (unsigned i = 0; i < c->ev_n; i++) {
        enum client_event e = c->ev_queue[(c->ev_head + i) % CEV_COUNT];
        if (is_up_event(e))
            c->ev_pending &= ~(1u << e);
        else
            kept[n++] = (uint8_t)e;
    }
    for (unsigned i = 0; i < n; i++)
        c->ev_queue[i] = kept[i];
    c->ev_head = 0;
    c->ev_n = (uint8_t)n;
}

void client_drive(struct pd_client *c)
{
    if (c->driving)
        return; /* the driver on the stack runs it next */
    c->driving = 1;
    while (c->ev_n && !c->closing) {
        enum client_event e = c->ev_queue[c->ev_head];
        c->ev_head = (uint8_t)((c->ev_head + 1) % CEV_COUNT);
        c->ev_n--;
        c->ev_pending &= ~(1u << e);
        if (is_up_event(e) && c->up != c->ev_up)
            continue; /* that connection is not the transaction's any more */
        handlers[e](c);
    }
    c->ev_pending = 0;
    c->ev_n = 0;
    c->driving = 0;
    if (c->closing)
        client_finish(c);
}

void client_post(struct pd_client *c, enum client_event e)
{
    assert(c->magic == CLIENT_MAGIC);
    if (c->closing)
        return; /* ending: whatever happens now is moot */
    record(c, e);
    client_drive(c);
}

void client_post_conn(struct pd_client *c, enum client_event e, short what)
{
    short *acc = e == CEV_CL_CONN ? &c->ev_cl_what : &c->ev_up_what;
    if (!(c->ev_pending & (1u << e)))
        *acc = 0;
    *acc |= what;
    client_post(c, e);
}

void client_post_up(struct pd_client *c, pd_conn *conn, enum client_event e, short what)
{
    if (conn != c->ev_up) {
        /* another origin connection now: what the last one said is moot */
        withdraw_up(c);
        c->ev_up = conn;
    }
    if (e == CEV_UP_CONN)
        client_post_conn(c, e, what);
    else
        client_post(c, e);
}
