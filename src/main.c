/*
 * proxyd: a caching HTTP/1.1 forward proxy. Command line entry point.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/master.h"
#include "proxyd/stats.h"

#ifndef PROXYD_DEFAULT_CONF
#define PROXYD_DEFAULT_CONF PROXYD_SYSCONFDIR "/proxy.conf"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: proxyd [-c FILE] [-t] [-v] [-h]\n"
            "A caching HTTP/1.1 forward proxy that reads squid.conf syntax.\n\n"
            "  -c FILE   configuration file (default " PROXYD_DEFAULT_CONF ")\n"
            "  -t        check the configuration and exit (0 when good)\n"
            "  -v        print the version and exit\n"
            "  --print-metrics  print the metrics table (Markdown) and exit\n"
            "  -h        this help\n\n"
            "Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT drain and stop,\n"
            "SIGUSR1 reopens the log files.\n");
}

int main(int argc, char **argv)
{
    const char *conf = PROXYD_DEFAULT_CONF;
    int check = 0;
    int opt;
    static const struct option longopts[] = { { "print-metrics", no_argument, NULL, 'M' },
                                              { NULL, 0, NULL, 0 } };
    while ((opt = getopt_long(argc, argv, "c:tvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'M':
            pd_stats_print_metrics(stdout);
            return 0;
        case 'c':
            conf = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'v':
            printf("proxyd %s\n", PROXYD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "proxyd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return check ? pd_master_check(conf) : pd_master_run(conf);
}
