/*
 * access_log: one line per transaction in Squid's native, common or combined
 * format, to a file (O_APPEND, one write per line so that workers sharing the
 * file never interleave within a line), stdout, or nowhere. Control bytes in
 * logged fields are escaped so that a request cannot forge log lines.
 */
#ifndef PROXYD_ACCESS_LOG_H
#define PROXYD_ACCESS_LOG_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "proxyd/conf.h"
#include "proxyd/http_msg.h"

typedef struct pd_access_log pd_access_log;

/* Open per conf->access_log (NULL conf path = no log). NULL only on error (errno set). */
pd_access_log *pd_access_log_open(const pd_conf *conf);
/* Reopen the file (SIGUSR1, after rotation). Returns 0, or -1 keeping the old file. */
int pd_access_log_reopen(pd_access_log *log);
void pd_access_log_close(pd_access_log *log);

typedef struct pd_log_entry {
    struct timeval start;       /* when the request head was complete */
    int64_t elapsed_ms;
    const char *client_ip;
    const char *result;         /* Squid result code: TCP_MISS ... */
    int status;                 /* status sent to the client (0 = none) */
    uint64_t bytes;             /* bytes sent to the client, head included */
    const char *method;
    size_t method_len;
    const char *url;
    size_t url_len;
    const char *hier;           /* HIER_DIRECT, HIER_NONE */
    const char *peer_ip;        /* origin address or "-" */
    const char *content_type;   /* may be NULL */
    size_t content_type_len;
    const char *referer, *user_agent; /* combined format; may be NULL */
    size_t referer_len, user_agent_len;
    int version_major, version_minor;
    /* for logformat codes; all optional (0/NULL print "-") */
    uint16_t client_port, local_port;
    uint64_t bytes_in;          /* %>st: bytes received from the client */
    int origin_status;          /* %<Hs: status the origin sent, 0 = none */
    const pd_http_msg *req;     /* %>h: request headers as received */
    const pd_http_msg *resp;    /* %<h: response headers as received from the origin */
    const char *user;           /* %ul: the authenticated user, or NULL; %un falls back to
                                 * the notes' user= (an external acl's) */
    const char *notes;          /* helper kv-pairs, "key=value\n"... (%note, %ue, %et, %ea),
                                 * or NULL */
    const char *server_host;    /* %<A: the origin's host name, or NULL */
    const char *err_code;       /* %err_code: the error page proxyd answered (ERR_...), or NULL */
    const char *err_detail;     /* %err_detail: why, or NULL */
    int64_t server_ms;          /* %<tt: first connect to the origin .. its last I/O; < 0: none */
} pd_log_entry;

void pd_access_log_write(pd_access_log *log, const pd_log_entry *e);

/* The first value of key in notes ("key=value\n"...): its start and *len,
 * or NULL. */
const char *pd_notes_find(const char *notes, const char *key, size_t *len);

/*
 * A compiled `logformat` specification (Squid's % codes: %ts %tu %tl %tg %tr
 * %>a %>p %<a %<A %lp %Ss %Sh %>Hs %<Hs %<st %>st %rm %ru %rp %rv %un %ui %ul %mt
 * %>h %>ha %<h %<tt %err_code %err_detail %ssl::>sni %note %ue %et %ea %%, with the modifiers " [ - 0 WIDTH and a {Header} or {strftime}
 * argument before or after the code). Returns NULL with a message in err for
 * an unknown code. Release with pd_logfmt_free.
 */
typedef struct pd_logfmt pd_logfmt;
pd_logfmt *pd_logfmt_compile(const char *spec, char *err, size_t errlen);
void pd_logfmt_free(pd_logfmt *f);
/* Format one line (no newline) into buf; returns the length it needs (like snprintf). */
size_t pd_logfmt_format(const pd_logfmt *f, const pd_log_entry *e, char *buf, size_t size);

/* Format one line (without the newline) into buf; returns its length. For tests. */
size_t pd_access_log_format(enum pd_log_format fmt, const pd_log_entry *e, char *buf,
                            size_t size);

#endif
