/*
 * result: Squid's result codes ("TCP_MISS" in "TCP_MISS/200" of the access
 * log), one table for all that depends on them: the log text, the counter
 * row of proxyd_results_total (stats.h generates its rows from this table),
 * the kind of answer (what the hit/miss/revalidation counters add up), and
 * whether the bytes sent count as hit bytes for the manager pages.
 *
 * The transaction carries an enum pd_result; nothing compares code strings.
 */
#ifndef PROXYD_RESULT_H
#define PROXYD_RESULT_H

enum pd_result_class { PD_RC_NONE, PD_RC_HIT, PD_RC_MISS, PD_RC_REVALIDATION };

/*
 * R(ARG, ID, TEXT, CLASS, HIT_BYTES, ABORTED_ID): ARG is passed through (so
 * another table can generate its rows from this one); ABORTED_ID is the code
 * a transaction takes when its client goes away before the end.
 *
 * TCP_IMS_HIT / TCP_INM_HIT: a fresh stored object answered a conditional
 * request with 304 (If-Modified-Since, or If-None-Match alone), as Squid
 * names them; a 304 has no body to abort.
 *
 * stale-while-revalidate, as Squid 2.7 logged it (the last Squid that did it):
 * TCP_STALE_HIT: a stale object answered at once while a background request
 * revalidates it; TCP_ASYNC_HIT / TCP_ASYNC_MISS: that background request's
 * own line (the origin said 304 and the object was refreshed / anything else:
 * a new object, or a failure that left the stale one). The background lines
 * are no client's transaction: class NONE, counted apart (stats.h).
 */
#define PD_RESULT_TABLE(R, ARG)                                                         \
    R(ARG, NONE_NONE, "NONE_NONE", PD_RC_NONE, 0, NONE_NONE)                              \
    R(ARG, TCP_MISS, "TCP_MISS", PD_RC_MISS, 0, TCP_MISS_ABORTED)                         \
    R(ARG, TCP_MISS_ABORTED, "TCP_MISS_ABORTED", PD_RC_MISS, 0, TCP_MISS_ABORTED)         \
    R(ARG, TCP_MEM_HIT, "TCP_MEM_HIT", PD_RC_HIT, 1, TCP_MEM_HIT_ABORTED)                 \
    R(ARG, TCP_MEM_HIT_ABORTED, "TCP_MEM_HIT_ABORTED", PD_RC_HIT, 1, TCP_MEM_HIT_ABORTED) \
    R(ARG, TCP_IMS_HIT, "TCP_IMS_HIT", PD_RC_HIT, 1, TCP_IMS_HIT)                         \
    R(ARG, TCP_INM_HIT, "TCP_INM_HIT", PD_RC_HIT, 1, TCP_INM_HIT)                         \
    R(ARG, TCP_CF_MISS, "TCP_CF_MISS", PD_RC_MISS, 0, TCP_CF_MISS_ABORTED)                \
    R(ARG, TCP_CF_MISS_ABORTED, "TCP_CF_MISS_ABORTED", PD_RC_MISS, 0, TCP_CF_MISS_ABORTED) \
    R(ARG, TCP_REFRESH_UNMODIFIED, "TCP_REFRESH_UNMODIFIED", PD_RC_REVALIDATION, 1,       \
      TCP_REFRESH_UNMODIFIED)                                                             \
    R(ARG, TCP_REFRESH_MODIFIED, "TCP_REFRESH_MODIFIED", PD_RC_REVALIDATION, 0,           \
      TCP_REFRESH_MODIFIED)                                                               \
    R(ARG, TCP_REFRESH_FAIL_OLD, "TCP_REFRESH_FAIL_OLD", PD_RC_REVALIDATION, 1,           \
      TCP_REFRESH_FAIL_OLD)                                                               \
    R(ARG, TCP_REFRESH_FAIL_ERR, "TCP_REFRESH_FAIL_ERR", PD_RC_REVALIDATION, 0,           \
      TCP_REFRESH_FAIL_ERR)                                                               \
    R(ARG, TCP_STALE_HIT, "TCP_STALE_HIT", PD_RC_HIT, 1, TCP_STALE_HIT)                   \
    R(ARG, TCP_ASYNC_HIT, "TCP_ASYNC_HIT", PD_RC_NONE, 0, TCP_ASYNC_HIT)                  \
    R(ARG, TCP_ASYNC_MISS, "TCP_ASYNC_MISS", PD_RC_NONE, 0, TCP_ASYNC_MISS)               \
    R(ARG, TCP_DENIED, "TCP_DENIED", PD_RC_NONE, 0, TCP_DENIED)                           \
    R(ARG, TCP_DENIED_REPLY, "TCP_DENIED_REPLY", PD_RC_NONE, 0, TCP_DENIED_REPLY)         \
    R(ARG, TCP_TUNNEL, "TCP_TUNNEL", PD_RC_NONE, 0, TCP_TUNNEL)                           \
    R(ARG, TCP_REDIRECT, "TCP_REDIRECT", PD_RC_NONE, 0, TCP_REDIRECT)

#define PD_RESULT_ENUM_(arg, id, text, cls, hitb, ab) PD_R_##id,
/* PD_R_UNSET: nothing to log yet (no request, or already logged). */
enum pd_result { PD_R_UNSET = 0, PD_RESULT_TABLE(PD_RESULT_ENUM_, _) PD_R__N };
#undef PD_RESULT_ENUM_

/* The access log's text for r ("NONE_NONE" for PD_R_UNSET). */
const char *pd_result_text(enum pd_result r);
enum pd_result_class pd_result_class(enum pd_result r);
/* 1 when the bytes sent for r count as bytes served from the cache. */
int pd_result_hit_bytes(enum pd_result r);
/* What r becomes when the client leaves before the end (r itself when nothing else). */
enum pd_result pd_result_aborted(enum pd_result r);

#endif
