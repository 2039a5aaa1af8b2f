#!/usr/bin/env python3
"""Summary of a JMeter result file (CSV .jtl) of bench/jmeter/study.jmx, with loadgen's
definitions: time per request = each thread's elapsed time (first start to last end) / its
samples, averaged over the threads (the study's metric); latency percentiles of the successful
samples; errors = unsuccessful samples.

    summary.py FILE.jtl [--json]

The .jtl must have a header line (run jmeter with
-Jjmeter.save.saveservice.print_field_names=true -Jjmeter.save.saveservice.output_format=csv).
Python standard library only.
"""
import csv
import json
import math
import sys


def pct(xs, q):
    if not xs:
        return float("nan")
    return xs[max(0, math.ceil(q / 100.0 * len(xs)) - 1)]


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.stderr.write(__doc__)
        return 2
    threads = {}
    lat, errors, n = [], 0, 0
    with open(argv[0], newline="") as f:
        for row in csv.DictReader(f):
            try:
                start, elapsed = int(row["timeStamp"]), int(row["elapsed"])
            except (KeyError, ValueError):
                sys.stderr.write("summary.py: no timeStamp/elapsed columns: see --help\n")
                return 2
            n += 1
            t = threads.setdefault(row.get("threadName", ""), [start, start + elapsed, 0])
            t[0] = min(t[0], start)
            t[1] = max(t[1], start + elapsed)
            t[2] += 1
            if row.get("success", "true") == "true":
                lat.append(float(elapsed))
            else:
                errors += 1
    lat.sort()
    per_thread = [(t[1] - t[0]) / t[2] for t in threads.values() if t[2]]
    res = {
        "threads": len(threads), "samples": n, "errors": errors,
        "time_per_req_ms": sum(per_thread) / len(per_thread) if per_thread else float("nan"),
        "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
        "max_ms": lat[-1] if lat else float("nan"),
    }
    if "--json" in argv:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:16} {v:.3f}" if isinstance(v, float) else f"{k:16} {v}")
    return 0 if errors == 0 and n > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
