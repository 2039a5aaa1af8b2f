/*
 * http_parse: the only user of llhttp. Turns bytes into a pd_http_msg head and,
 * for chunked bodies, into decoded body data. Always strict: no lenient flag is
 * ever set, and on top of llhttp it refuses obs-fold, bare LF and control bytes
 * in the head, oversized heads, and unsupported versions.
 *
 * Use: pd_http_parser_init, then feed bytes to pd_http_parse_head until it
 * returns PD_PARSE_DONE (msg->body tells how the body is framed). Bodies framed
 * by length or by EOF are moved by the caller without the parser; chunked ones
 * are fed to pd_http_parse_body. Then pd_http_parser_next for the next message.
 */
#ifndef PROXYD_HTTP_PARSE_H
#define PROXYD_HTTP_PARSE_H

#include <stddef.h>
#include "proxyd/http_msg.h"

typedef struct pd_http_parser pd_http_parser;

enum pd_parse_status {
    PD_PARSE_AGAIN = 0, /* all input consumed, need more */
    PD_PARSE_DONE,      /* head (or chunked body) complete; *consumed says where */
    PD_PARSE_ERROR      /* see pd_http_parser_error */
};

/* Called with decoded chunk data; return 0 to go on, -1 to stop with an error. */
typedef int (*pd_body_cb)(void *arg, const char *data, size_t len);

/*
 * is_request: parse requests (1) or responses (0). max_head: limit of the
 * head in bytes; a request over it is 414 when its target does not end within
 * it (the request line is what is long), 431 otherwise.
 */
pd_http_parser *pd_http_parser_new(int is_request, size_t max_head);
void pd_http_parser_free(pd_http_parser *p);

/*
 * Prepare for the next message, to be stored in msg (reset by this call).
 * For a response, request_method_id is the method of the request it answers
 * (HEAD and CONNECT change the framing).
 */
void pd_http_parser_next(pd_http_parser *p, pd_http_msg *msg, int request_method_id);

enum pd_parse_status pd_http_parse_head(pd_http_parser *p, const char *data, size_t len,
                                        size_t *consumed);

/* Decode chunked body bytes; cb gets the data. DONE once the last chunk and trailers end. */
enum pd_parse_status pd_http_parse_body(pd_http_parser *p, const char *data, size_t len,
                                        size_t *consumed, pd_body_cb cb, void *arg);

/* After ERROR: the HTTP status to answer with (400, 414, 431, 501, 505 ...) and a short reason. */
int pd_http_parser_error(const pd_http_parser *p, const char **reason);

#endif
