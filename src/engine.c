/*
 * engine: the request engine's context (include/proxyd/engine.h).
 */
#include "proxyd/engine.h"

#include <string.h>

void pd_engine_init(pd_engine *e)
{
    TAILQ_INIT(&e->clients);
    TAILQ_INIT(&e->idle);
    e->n_clients = 0;
    e->n_cache_waiters = 0;
    memset(e->ipc, 0, sizeof e->ipc);
}
