/* libFuzzer target for the configuration parser: any text must load or fail
 * with messages, never crash or leak. Not part of the CMake build yet:
 *   clang -g -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Iinclude \
 *         src/conf.c tests/fuzz/fuzz_conf.c -o fuzz_conf && ./fuzz_conf conf/
 * "include" is defused first (the input could name any file) and name
 * resolution is stubbed out. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netdb.h>

#include "proxyd/conf.h"

/* http_port HOST:PORT resolves HOST: never let fuzz input reach the network. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)node; (void)service; (void)hints; (void)res;
    return EAI_NONAME;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *p = text; (p = strstr(p, "include")); p++)
        p[0] = 'X';
    pd_conf *c = pd_conf_load_string("fuzz.conf", text, devnull);
    pd_conf_free(c);
    free(text);
    return 0;
}
