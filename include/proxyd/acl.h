/*
 * acl: Squid's access control: `acl` definitions, `http_access` and `cache`
 * rules, `deny_info`. Compiled once from the raw lines kept by conf.c (regexes
 * compiled at load, dstdomain lists hashed by suffix) into an immutable
 * pd_acl_rules, swapped atomically on reload.
 */
#ifndef PROXYD_ACL_H
#define PROXYD_ACL_H

#include <stdio.h>
#include <time.h>
#include <stdint.h>
#include <sys/socket.h>
#include "proxyd/conf.h"
#include "proxyd/url.h"
#include "proxyd/http_msg.h"

typedef struct pd_acl_rules pd_acl_rules;

/*
 * Compile conf->acl, conf->http_access, conf->cache_rules and conf->deny_info.
 * Returns NULL on error after writing "file:line: message" lines to err
 * (NULL = stderr). Release with pd_acl_rules_free.
 */
pd_acl_rules *pd_acl_compile(const pd_conf *conf, FILE *err);
/* The same, and counts the errors and warnings written (either pointer may be NULL). */
pd_acl_rules *pd_acl_compile_counted(const pd_conf *conf, FILE *err, int *n_errors,
                                     int *n_warnings);
void pd_acl_rules_free(pd_acl_rules *rules);

/* Where a request's credentials are (proxy_auth acls). */
enum pd_auth_state {
    PD_AUTH_NONE = 0,   /* not looked at yet: a proxy_auth acl answers PD_ACL_NEED_AUTH */
    PD_AUTH_OK,         /* the helper accepted them: user is set */
    PD_AUTH_FAILED      /* none, malformed, or refused: PD_ACL_AUTH_REQUIRED (407) */
};

/* An external_acl_type as compiled (its helper pool is the worker's, ext_acl.c). */
typedef struct pd_acl_ext_info {
    const char *name;
    char *const *argv;              /* program and arguments */
    int ttl, negative_ttl;          /* seconds an OK / ERR answer is reused */
    int children_max, startup, idle, concurrency, queue_size;
    int cache;                      /* Squid's cache=N (0: no limit of its own) */
    int grace;                      /* accepted, not used */
    int needs_login;                /* the format sends %LOGIN */
} pd_acl_ext_info;

size_t pd_acl_ext_count(const pd_acl_rules *rules);
const pd_acl_ext_info *pd_acl_ext_get(const pd_acl_rules *rules, size_t i);

/* ext_lookup's answers */
enum { PD_ACL_EXT_NOMATCH = 0, PD_ACL_EXT_MATCH = 1, PD_ACL_EXT_UNKNOWN = 2,
       PD_ACL_EXT_FAILED = 3 };

/* The question an external acl leaves for the caller (PD_ACL_NEED_EXT). */
typedef struct pd_acl_ext_query {
    size_t type;                    /* external_acl_type index */
    char line[8192];                /* the request line for its helper */
} pd_acl_ext_query;

/* What is known of a request when access is checked. */
typedef struct pd_acl_req {
    const struct sockaddr *client;  /* client address */
    uint16_t local_port;            /* port the client connected to */
    const pd_http_msg *msg;         /* request head (method, headers) */
    const pd_url *url;              /* normalised target */
    int is_connect;
    /* Destination addresses once resolved; NULL/0 before DNS. */
    const struct sockaddr_storage *dst;
    int n_dst;
    int client_conns;               /* open connections from this client address */
    const pd_http_msg *reply;       /* the reply head (rep_header, rep_mime_type, http_status);
                                     * NULL before one is known: those acls never match */
    enum pd_auth_state auth_state;
    const char *user;               /* PD_AUTH_OK: the authenticated user */
    /* external acls: the caller's answers (cache, this request's replies); NULL:
     * an external acl fails (deny) */
    int (*ext_lookup)(void *ctx, size_t type, const char *line);
    void *ext_ctx;
    struct pd_acl_ext_query *ext_pending; /* PD_ACL_NEED_EXT: what to ask */
    /* the transaction's annotations from helper replies' kv-pairs, "key=value\n" each
     * (note and tag acls); NULL: none */
    const char *notes;
    time_t now;
} pd_acl_req;

enum pd_acl_verdict {
    PD_ACL_ALLOW = 0,
    PD_ACL_DENY = 1,
    PD_ACL_NEED_DST = 2,  /* a `dst` acl must be evaluated: resolve, fill dst, ask again */
    PD_ACL_NEED_AUTH = 3, /* a proxy_auth acl: check the credentials, set auth_state, ask again */
    PD_ACL_AUTH_REQUIRED = 4, /* no valid credentials where they are needed: 407 */
    PD_ACL_NEED_EXT = 5   /* an external acl: ask its helper ext_pending, then ask again */
};

/*
 * Evaluate http_access. On DENY, *deny_acl (if not NULL) is set to the name of
 * the last acl examined on the deciding line (for deny_info), or NULL.
 */
enum pd_acl_verdict pd_acl_check_http(const pd_acl_rules *rules, const pd_acl_req *req,
                                      const char **deny_acl);

/* Evaluate url_rewrite_access: ALLOW when the request goes to the URL rewriter
 * (no lines: all). What cannot be decided now (dst before DNS, an external acl
 * without an answer) counts as DENY. */
enum pd_acl_verdict pd_acl_check_rewrite(const pd_acl_rules *rules, const pd_acl_req *req);
/* Evaluate store_id_access the same way: ALLOW when the Store-ID helper is asked. */
enum pd_acl_verdict pd_acl_check_store_id(const pd_acl_rules *rules, const pd_acl_req *req);

/* Evaluate `cache` rules: ALLOW when the response may be stored/served from cache. */
enum pd_acl_verdict pd_acl_check_cache(const pd_acl_rules *rules, const pd_acl_req *req);

/*
 * Does a `method` acl name this method (case-sensitive)? Squid takes an acl
 * naming PURGE as the operator's consent to PURGE (otherwise it is refused,
 * whatever http_access says). 0 when rules is NULL.
 */
int pd_acl_names_method(const pd_acl_rules *rules, const char *method);

/* deny_info for an acl name: an error page name or a URL ("http://..."), or NULL. */
const char *pd_acl_deny_info(const pd_acl_rules *rules, const char *acl_name);

/*
 * http_reply_access, once the reply head is known (req->reply): ALLOW with no
 * line. On DENY *deny_acl names the last acl of the deciding line (or NULL).
 */
enum pd_acl_verdict pd_acl_check_reply(const pd_acl_rules *rules, const pd_acl_req *req,
                                       const char **deny_acl);
/* miss_access, before a request goes to the origin: ALLOW with no line. */
enum pd_acl_verdict pd_acl_check_miss(const pd_acl_rules *rules, const pd_acl_req *req,
                                      const char **deny_acl);
/* reply_body_max_size for the request (and reply, when known): UINT64_MAX for none. */
uint64_t pd_acl_reply_body_max(const pd_acl_rules *rules, const pd_acl_req *req);
/*
 * tcp_outgoing_address: the source address of the first line of this family
 * (AF_INET, AF_INET6) whose acls match, or NULL (the kernel chooses). Points
 * into rules.
 */
const struct sockaddr_storage *pd_acl_outgoing_address(const pd_acl_rules *rules,
                                                       const pd_acl_req *req, int family);
int pd_acl_has_outgoing_address(const pd_acl_rules *rules);
/*
 * follow_x_forwarded_for: starting from req->client, while the current client
 * is allowed by follow_x_forwarded_for, the next X-Forwarded-For address from
 * the right becomes the client. Returns 1 and the indirect client in *out
 * when at least one was taken, else 0 (*out untouched).
 */
int pd_acl_indirect_client(const pd_acl_rules *rules, const pd_acl_req *req,
                           struct sockaddr_storage *out);

/*
 * A list of rule lines over these acls, for other modules' directives
 * (headers.c): lines are `allow|deny` (or a value the caller keeps by
 * index) and [!]ACL words, ANDed. Create with pd_acl_list_new, free with
 * pd_acl_list_free; the list refers to rules, which must outlive it.
 */
typedef struct pd_acl_list pd_acl_list;
pd_acl_list *pd_acl_list_new(void);
void pd_acl_list_free(pd_acl_list *l);
/*
 * Add a line: allow (1/0) and the acl words argv[0..argc-1] (none: always
 * matches). reply: whether the line is evaluated with a reply. Unknown acls
 * are errors: "file:line: dir: unknown acl 'x'" to err (NULL = stderr), and
 * -1. Warnings are counted in *n_warnings (may be NULL).
 */
int pd_acl_list_add(pd_acl_list *l, const pd_acl_rules *rules, const char *dir,
                    const char *file, int line, int allow, int argc, char **argv, int reply,
                    FILE *err, int *n_warnings);
size_t pd_acl_list_len(const pd_acl_list *l);
/* Index of the first line whose acls all match, or -1. */
long pd_acl_list_first(const pd_acl_list *l, const pd_acl_req *req);
/* As http_access: the first matching line's verdict; none: the opposite of the
 * last line's; an empty list: when_empty. */
enum pd_acl_verdict pd_acl_list_check(const pd_acl_list *l, const pd_acl_req *req,
                                      enum pd_acl_verdict when_empty);

#endif
