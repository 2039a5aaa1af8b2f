/*
 * conf: proxy.conf, a subset of squid.conf (syntax and semantics).
 *
 * The parser is table driven (src/conf.c: one row per directive with its name,
 * setter, offset, default and doc string). A configuration is loaded whole
 * into a pd_conf, which is immutable afterwards: a reload builds a new one and
 * swaps it in. Directives whose meaning belongs to another module (acl,
 * http_access, cache, refresh_pattern, deny_info, logformat) are kept as raw
 * token lines with their file:line, and compiled by that module (acl.c, ...).
 */
#ifndef PROXYD_CONF_H
#define PROXYD_CONF_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>

#define PD_CONF_MAX_PORTS 16
/*
 * The most worker processes one proxyd runs: the shared cache has
 * PD_CACHE_MAX_WORKERS (64) slots and a reload runs two generations side by
 * side. The one definition that the master, the counters and `workers` use.
 */
#define PD_CONF_MAX_WORKERS 32
#define PD_CONF_MAX_NS 8

/*
 * One directive line as written, split into words (quotes removed), except:
 * in acl lines a quoted word keeps its quotes (argv holds `"/etc/x"` as
 * written, so acl.c knows it names a file), and logformat lines have argc 2:
 * argv[0] the name, argv[1] the format, the rest of the line as written.
 */
typedef struct pd_conf_line {
    char *file;     /* file the line came from (owned by the conf) */
    int line;       /* 1-based line number */
    int argc;       /* words after the directive name */
    char **argv;    /* argv[0..argc-1]; NULL-terminated */
} pd_conf_line;

typedef struct pd_conf_lines {
    pd_conf_line *v;
    size_t n, cap;
} pd_conf_lines;

/*
 * A helper program and its pool (Squid's `program` and `children` settings);
 * argv NULL when not configured. The counts are as pd_helper_cfg's.
 */
typedef struct pd_conf_helper {
    char **argv;                /* program and arguments, NULL-terminated */
    int children_max, startup, idle, concurrency, queue_size;
    char *file;                 /* where the program line is */
    int line;
} pd_conf_helper;

/* auth_param basic */
typedef struct pd_conf_auth_basic {
    pd_conf_helper helper;      /* argv NULL: no Basic authentication */
    char *realm;                /* default "Squid proxy-caching web server" */
    int credentialsttl;         /* seconds a checked user/password pair is trusted (2 h) */
    int casesensitive;          /* off: user names are lower-cased (Squid) */
    int seen;                   /* any auth_param basic line */
    char *seen_file;            /* the first one */
    int seen_line;
} pd_conf_auth_basic;

typedef struct pd_listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64];  /* "127.0.0.1:3128" as written/normalised, for logs */
    char where[256]; /* "file:line" of its line, or "(default)", for messages */
    int intercept;   /* http_port ... intercept: NAT-redirected connections */
} pd_listen_addr;

enum pd_forwarded_for {
    PD_FWD_ON = 0,      /* append client address (default) */
    PD_FWD_OFF,         /* append "unknown" */
    PD_FWD_TRANSPARENT, /* leave the header as received */
    PD_FWD_DELETE,      /* remove the header */
    PD_FWD_TRUNCATE     /* replace with client address only */
};

enum pd_log_format { PD_LOG_SQUID = 0, PD_LOG_COMMON, PD_LOG_COMBINED };

/* url_rewrite_timeout's on_timeout=, Squid's order (bypass is the default). */
enum pd_rw_timeout_action { PD_RW_BYPASS = 0, PD_RW_FAIL, PD_RW_RETRY, PD_RW_RESPONSE };

typedef struct pd_conf {
    /* Network */
    pd_listen_addr http_port[PD_CONF_MAX_PORTS];
    int n_http_port;
    pd_listen_addr admin_port[PD_CONF_MAX_PORTS]; /* filled by later issue; may be 0 */
    int n_admin_port;
    int workers;                    /* 0 = one per CPU (resolved by the master) */

    /* Cache */
    uint64_t cache_mem;             /* bytes, default 260 MB */
    uint64_t maximum_object_size;   /* bytes, default 1024 KB */
    uint64_t maximum_object_size_in_memory; /* bytes; default = maximum_object_size */
    int memory_replacement_policy;  /* enum pd_cache_policy (cache_store.h), default s3fifo */
    int max_stale;                  /* seconds a stale object may be served when the origin fails */
    int tunnel_splice;              /* CONNECT bytes relayed with splice(2) (default on) */
    int hit_sendfile;               /* long hits sent from the store with sendfile(2) (default off) */
    int collapsed_forwarding;       /* default on */
    int x_cache_header;             /* X-Cache: HIT|MISS from host (default off) */

    /* Raw lines compiled by other modules, in file order */
    pd_conf_lines acl;              /* acl NAME TYPE ... */
    pd_conf_lines http_access;      /* http_access allow|deny ... */
    pd_conf_lines cache_rules;      /* cache allow|deny ... */
    pd_conf_lines refresh_pattern;  /* refresh_pattern [-i] REGEX MIN PCT MAX [opts] */
    pd_conf_lines deny_info;        /* deny_info PAGE|URL ACL */
    pd_conf_lines logformat;        /* logformat NAME FORMAT... */
    pd_conf_lines http_reply_access; /* allow|deny ACL... (acl.c) */
    pd_conf_lines miss_access;      /* allow|deny ACL... (acl.c) */
    pd_conf_lines follow_x_forwarded_for; /* allow|deny ACL... (acl.c) */
    pd_conf_lines reply_body_max_size;    /* SIZE [UNIT] [ACL...] (acl.c) */
    pd_conf_lines tcp_outgoing_address;   /* ADDRESS [ACL...] (acl.c) */
    pd_conf_lines cache_peer;             /* HOST parent HTTP ICP [opts] (peer.c) */
    pd_conf_lines cache_peer_access;      /* NAME allow|deny ACL... (peer.c) */
    pd_conf_lines never_direct;           /* allow|deny ACL... (peer.c) */
    pd_conf_lines always_direct;          /* allow|deny ACL... (peer.c) */
    int prefer_direct;                    /* default off */
    int nonhierarchical_direct;           /* default on */
    int forward_max_tries;                /* default 25 */
    int64_t dead_peer_timeout;            /* ms, default 10 s */
    pd_conf_lines proxyd_cluster;         /* NAME [PORT] [opts] (cluster.c) */
    /* ICP (icp.c) */
    int icp_port;                         /* UDP port, 0: no ICP server (default) */
    char *udp_incoming_address;           /* address icp_port binds to, NULL: any */
    pd_conf_lines icp_access;             /* allow|deny ACL... (peer.c); none: deny all */
    int icp_query_timeout;                /* ms, 0: dynamic (default) */
    int maximum_icp_query_timeout;        /* ms, default 2000 */
    int minimum_icp_query_timeout;        /* ms, default 5 */
    int log_icp_queries;                  /* default on */
    int icp_hit_stale;                    /* ICP_HIT for stale objects too (default off) */
    char *unique_hostname;                /* Via loop detection, NULL: visible_hostname */
    pd_conf_lines request_header_access;  /* NAME allow|deny ACL... (headers.c) */
    pd_conf_lines reply_header_access;
    pd_conf_lines request_header_replace; /* NAME TEXT (argc 2: the rest of the line) */
    pd_conf_lines reply_header_replace;
    pd_conf_lines request_header_add;     /* NAME VALUE [ACL...] (headers.c) */
    pd_conf_lines reply_header_add;
    pd_conf_lines external_acl_type; /* external_acl_type NAME [options] FORMAT... /helper (acl.c) */
    /* Authentication */
    pd_conf_auth_basic auth_basic;  /* auth_param basic ... */
    /* URL rewriting */
    pd_conf_helper url_rewrite;     /* url_rewrite_program, url_rewrite_children */
    pd_conf_lines url_rewrite_access; /* url_rewrite_access allow|deny ... (acl.c) */
    int url_rewrite_bypass;         /* on: the rewriter's failure leaves the URL as it is */
    int url_rewrite_cache_ttl;      /* seconds an answer is reused for the same line; 0: off */
    int64_t url_rewrite_timeout;    /* ms an answer may take; 0: none */
    int url_rewrite_on_timeout;     /* enum pd_rw_timeout_action */
    char *url_rewrite_timeout_response; /* use_configured_response's reply line */
    int url_rewrite_cache_size;     /* entries of that cache, per worker */
    /* Store ID */
    pd_conf_helper store_id;        /* store_id_program, store_id_children */
    pd_conf_lines store_id_access;  /* store_id_access allow|deny ... (acl.c) */
    int store_id_bypass;            /* on (Squid's default): a full queue leaves the URL as key */

    /* Logging */
    char *access_log;               /* path, "stdout", "stderr" or NULL for none */
    enum pd_log_format access_log_format;
    char *access_log_format_name;   /* logformat name when not a builtin, or NULL */
    char *access_log_file;          /* where the access_log line is (NULL: the default) */
    int access_log_line;
    char *cache_log;                /* NULL = stderr */
    char *pid_filename;             /* NULL = none */

    /* DNS */
    char *dns_nameservers[PD_CONF_MAX_NS]; /* "1.2.3.4" or "1.2.3.4:53"; empty = resolv.conf */
    int n_dns_nameservers;
    char *hosts_file;               /* default /etc/hosts; "none" disables */
    int positive_dns_ttl;           /* seconds, cap on a positive answer's TTL (6 h) */
    int negative_dns_ttl;           /* seconds a failure is cached (60 s) */
    int dns_timeout;                /* seconds (30 s) */

    /* Headers */
    char *visible_hostname;         /* default: gethostname() */
    int via;                        /* default on */
    enum pd_forwarded_for forwarded_for;
    size_t request_header_max_size; /* bytes, default 64 KB */
    size_t reply_header_max_size;   /* bytes, default 64 KB */
    uint64_t request_body_max_size; /* bytes, 0 = no limit */

    /* Timeouts, in milliseconds (config values carry Squid's units) */
    int64_t connect_timeout;        /* 1 minute */
    int64_t read_timeout;           /* 15 minutes */
    int64_t write_timeout;          /* 15 minutes */
    int64_t request_timeout;        /* 5 minutes: time to receive a request head */
    int64_t client_idle_pconn_timeout; /* 2 minutes */
    int64_t pconn_timeout;          /* 1 minute: idle origin connections */
    int64_t client_lifetime;        /* 1 day */
    int64_t shutdown_lifetime;      /* 30 seconds: drain deadline */
    int64_t forward_timeout;        /* 4 minutes */

    /* Limits and persistence */
    int client_persistent_connections; /* on */
    int server_persistent_connections; /* on */
    int max_client_connections;     /* per worker, default 16384 (proxyd) */
    int server_pconn_max_idle;      /* idle origin conns kept per worker (proxyd), 256 */
    int server_pconn_max_per_host;  /* idle origin conns per host:port (proxyd), 32 */

    /* The file this configuration was loaded from. */
    char *path;
    /* Number of warnings emitted while loading. */
    int n_warnings;
} pd_conf;

/*
 * Load a configuration file. On success returns a new pd_conf (release it with
 * pd_conf_free). On error returns NULL and writes "file:line: message" lines to
 * err_out (may be NULL for stderr). Warnings (known Squid directives that proxyd
 * does not implement) go to err_out too, prefixed "file:line: warning:".
 */
pd_conf *pd_conf_load(const char *path, FILE *err_out);

/*
 * The same, but the configuration is returned even when it has errors
 * (*n_errors > 0), so that the checks that need a whole configuration (acls)
 * can report their errors in the same pass. A configuration with errors is
 * for reporting only: free it, never serve with it. NULL only when out of
 * memory or path is NULL.
 */
pd_conf *pd_conf_load_all(const char *path, FILE *err_out, int *n_errors);

/* Same as pd_conf_load but from a string; "name" stands for the file name. */
pd_conf *pd_conf_load_string(const char *name, const char *text, FILE *err_out);

void pd_conf_free(pd_conf *conf);

/* A whole non-negative decimal number up to max (an option's value in
 * cache_peer, proxyd_cluster...), or -1. */
long pd_conf_number(const char *s, long max);

/* Print the directive table as Markdown (docs/configuration.md generator). */
void pd_conf_print_reference(FILE *out);

/* Print every Squid directive as Markdown table rows `| name | status |`, sorted: implemented
 * (or under which name), an error with what to do, or a warning (the migration guide's list). */
void pd_conf_print_squid_directives(FILE *out);

#endif
