/*
 * headers: Squid's header rules, compiled once per configuration:
 * request_header_access / reply_header_access (which fields go on),
 * request_header_replace / reply_header_replace (what a denied field says
 * instead) and request_header_add / reply_header_add (fields added, with a
 * few of Squid's % codes). Immutable after pd_hdr_compile; refers to the
 * acl rules it was compiled with, which must outlive it.
 */
#ifndef PROXYD_HEADERS_H
#define PROXYD_HEADERS_H

#include <stdio.h>

#include "proxyd/acl.h"
#include "proxyd/conf.h"
#include "proxyd/http_msg.h"

typedef struct pd_hdr_rules pd_hdr_rules;

enum pd_hdr_dir { PD_HDR_REQUEST = 0, PD_HDR_REPLY = 1 };

/*
 * Compile the header directives of conf against acl. Errors are written as
 * "file:line: message" to err (NULL = stderr) and counted in *n_errors,
 * warnings in *n_warnings (either may be NULL). Returns NULL when there are
 * errors (or no memory); free with pd_hdr_rules_free.
 */
pd_hdr_rules *pd_hdr_compile(const pd_conf *conf, const pd_acl_rules *acl, FILE *err,
                             int *n_errors, int *n_warnings);
void pd_hdr_rules_free(pd_hdr_rules *r);

/* Whether any rule applies in this direction (the writers skip the work when not). */
int pd_hdr_active(const pd_hdr_rules *r, enum pd_hdr_dir d);

enum pd_hdr_action { PD_HDR_KEEP = 0, PD_HDR_DROP, PD_HDR_REPLACE };

/*
 * What becomes of a field named name: kept, dropped, or replaced by
 * *replacement (a view into r). The lines for the name decide; a name
 * without lines takes `Other` when Squid does not know it by name, then
 * `All`; with none of them, it is kept.
 */
enum pd_hdr_action pd_hdr_field(const pd_hdr_rules *r, enum pd_hdr_dir d, pd_str name,
                                const pd_acl_req *q, pd_str *replacement);

/* What the % codes of *_header_add values expand to. */
typedef struct pd_hdr_vars {
    const char *client_ip;      /* %>a */
    unsigned client_port;       /* %>p */
    const char *local_ip;       /* %la */
    unsigned local_port;        /* %lp */
    const pd_url *url;          /* %>rd host, %>rP port, %ru URL */
    pd_str method;              /* %rm */
} pd_hdr_vars;

/* Whether an add value of this direction has %la (its address costs a system call). */
int pd_hdr_uses_local_ip(const pd_hdr_rules *r, enum pd_hdr_dir d);

/* Write the *_header_add fields whose acls match q into h, in file order. */
void pd_hdr_add_fields(const pd_hdr_rules *r, enum pd_hdr_dir d, const pd_acl_req *q,
                       const pd_hdr_vars *v, pd_head *h);

/* Whether Squid knows the header by name (`Other` covers the rest). */
int pd_hdr_known(pd_str name);

#endif
