/*
 * libFuzzer target for the ICP wire format (src/icp.c). Any datagram is
 * decoded; a message that decodes is encoded again from its fields and must
 * decode to the same fields (the decoder and the encoder agree), and its URL
 * must lie inside the datagram, NUL-terminated at its last byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/icp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: a read past the datagram is an ASan report */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    pd_icp_msg m;
    if (pd_icp_decode(buf, size, &m) == PD_ICP_OK) {
        if ((const uint8_t *)m.url + m.url_len + 1 != buf + size || m.url[m.url_len] != '\0')
            abort();
        uint8_t out[PD_ICP_MAX_MSG + 64];
        size_t n = pd_icp_encode(out, sizeof out, m.opcode, m.reqnum, m.flags, m.pad, m.url,
                                 m.url_len);
        if (size <= PD_ICP_MAX_MSG) {
            pd_icp_msg m2;
            if (n != size || pd_icp_decode(out, n, &m2) != PD_ICP_OK || m2.opcode != m.opcode ||
                m2.reqnum != m.reqnum || m2.flags != m.flags || m2.pad != m.pad ||
                m2.url_len != m.url_len || memcmp(m2.url, m.url, m.url_len))
                abort();
        }
    }
    free(buf);
    return 0;
}
