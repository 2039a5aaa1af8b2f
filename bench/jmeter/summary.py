#!/usr/bin/env python3
"""Summary of a JMeter result file (CSV .jtl) of bench/jmeter/study.jmx, with loadgen's
definitions: time per request = each thread's elapsed time (first start to last end) / its
samples, averaged over the threads (the study's metric); latency percentiles of the successful
samples; errors = unsuccessful samples.

    summary.py FILE.jtl [--json]
    summary.py FILE.jtl --loadgen PREFIX --clients C --requests R

With --loadgen it writes what bench/run reads from loadgen instead: PREFIX.json (loadgen's
--json line: clients, ok, errors, not_run = the requests JMeter never sent, bytes, total_s
from the first sample's start to the last one's end, time_per_req_ms, percentiles) and
PREFIX.csv (loadgen's --csv rows, result "ok" for a successful sample). That is how
`bench/run --client jmeter` uses JMeter.

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


def opt(argv, name):
    if name in argv and argv.index(name) + 1 < len(argv):
        return argv[argv.index(name) + 1]
    return None


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.stderr.write(__doc__)
        return 2
    threads = {}
    lat, errors, n = [], 0, 0
    rows, nbytes, first, last = [], 0, None, None
    with open(argv[0], newline="") as f:
        for row in csv.DictReader(f):
            try:
                start, elapsed = int(row["timeStamp"]), int(row["elapsed"])
            except (KeyError, ValueError):
                sys.stderr.write("summary.py: no timeStamp/elapsed columns: see --help\n")
                return 2
            n += 1
            ok = row.get("success", "true") == "true"
            tname = row.get("threadName", "")
            rows.append((tname, start, elapsed, row.get("responseCode", ""), row.get("bytes", "0"), ok))
            try:
                nbytes += int(row.get("bytes") or 0) if ok else 0
            except ValueError:
                pass
            first = start if first is None else min(first, start)
            last = start + elapsed if last is None else max(last, start + elapsed)
            t = threads.setdefault(tname, [start, start + elapsed, 0])
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
    prefix = opt(argv, "--loadgen")
    if prefix:
        clients, requests = int(opt(argv, "--clients") or 0), int(opt(argv, "--requests") or 0)
        if clients <= 0 or requests <= 0:
            sys.stderr.write("summary.py: --loadgen needs --clients C --requests R\n")
            return 2
        total_s = (last - first) / 1000.0 if rows else 0.0
        okn = n - errors
        mean = sum(lat) / len(lat) if lat else float("nan")
        lg = {"clients": clients, "requests_per_client": requests, "via": "proxy",
              "client": "jmeter", "requests": n, "ok": okn, "errors": errors,
              "not_run": max(0, clients * requests - n), "bytes": nbytes, "total_s": total_s,
              "req_per_s": okn / total_s if total_s > 0 else 0.0,
              "mb_per_s": nbytes / 1e6 / total_s if total_s > 0 else 0.0,
              "time_per_req_ms": res["time_per_req_ms"] if okn else 0.0,
              "mean_ms": mean if lat else 0.0, "min_ms": lat[0] if lat else 0.0,
              "p50_ms": pct(lat, 50) if lat else 0.0, "p90_ms": pct(lat, 90) if lat else 0.0,
              "p99_ms": pct(lat, 99) if lat else 0.0, "max_ms": lat[-1] if lat else 0.0}
        with open(prefix + ".json", "w") as f:
            f.write(json.dumps(lg, separators=(",", ":")) + "\n")  # as loadgen: no blanks
        names = {}
        with open(prefix + ".csv", "w") as f:
            f.write("client,seq,start_us,latency_us,status,bytes,result\n")
            seqs = {}
            for tname, start, elapsed, code, b, ok in rows:
                c = names.setdefault(tname, len(names))
                seqs[c] = seqs.get(c, -1) + 1
                status = code if code.isdigit() else "0"
                f.write(f"{c},{seqs[c]},{(start - first) * 1000},{elapsed * 1000},{status},"
                        f"{b if b.isdigit() else 0},{'ok' if ok else 'error'}\n")
    if "--json" in argv:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:16} {v:.3f}" if isinstance(v, float) else f"{k:16} {v}")
    return 0 if errors == 0 and n > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
