"""Traces of bench/hitratio: what the simulator (sim) and the real-proxy replay (replay) run.

A trace is a list of requests (object id, body size in bytes); the same id always has the same
size. On disk: each request as two little-endian uint32 (id, size), which is what
simcore.c reads. Everything is drawn from random.Random(seed): the same arguments give the same
trace, byte for byte, on any machine (Python's Mersenne Twister and its lognormvariate,
paretovariate and choices are specified to be reproducible for a given seed).

Kinds:
  zipf      requests to objects 0..objects-1 with P(rank i) ~ 1 / (i+1)^alpha, sizes from
            object_size(); optionally a one-pass scan of `scan` never-repeated objects
            inserted at fraction `scan_at` of the trace.
  capacity  the issue's scenario (a): n distinct objects of 2 KB, fetched in order, twice.
  scan      the issue's scenario (b): a hot set of 300 objects fetched 4 times (4 passes in
            order), then 20,000 one-time objects, then the 300 again.

Object sizes (object_size): a lognormal body with a Pareto tail, the shape Barford and
Crovella measured for web files and used in SURGE ("Generating Representative Web Workloads
for Network and Server Performance Evaluation", SIGMETRICS 1998: lognormal body, sigma
1.318; Pareto tail with alpha 1.1 above the body). We keep SURGE's sigma and tail index but
move the body's median from SURGE's 11.6 KB (1998 files) to 4 KB, as today's responses are
dominated by small scripts, images and API responses; 7% of the objects come from the tail
(Pareto from 32 KB, about the body's 93rd percentile). Sizes are capped at the maximum object
size. These are our choices, all overridable: see SIZE_DEFAULTS.
"""
import array
import math
import os
import random
import sys

SIZE_DEFAULTS = {
    "median": 4096,        # lognormal body: median (exp(mu))
    "sigma": 1.318,        # lognormal body: sigma (SURGE)
    "tail_frac": 0.07,     # share of objects drawn from the Pareto tail
    "tail_min": 32768,     # Pareto scale k (bytes)
    "tail_alpha": 1.1,     # Pareto shape (SURGE)
    "min": 16,             # no body smaller than this
}
SCENARIO_SIZE = 2048       # the scenarios: 2 KB objects
HOT = 300
HOT_PASSES = 4
SCAN_OBJECTS = 20000


def object_sizes(n, max_size, seed, params=None):
    """Sizes of objects 0..n-1 (array of uint32)."""
    p = dict(SIZE_DEFAULTS, **(params or {}))
    rnd = random.Random(f"sizes-{seed}")
    mu = math.log(p["median"])
    out = array.array("I", bytes(4 * n))
    for i in range(n):
        if rnd.random() < p["tail_frac"]:
            s = p["tail_min"] * rnd.paretovariate(p["tail_alpha"])
        else:
            s = rnd.lognormvariate(mu, p["sigma"])
        out[i] = int(min(max(s, p["min"]), max_size))
    return out


def zipf(objects, requests, alpha, max_size, seed, scan=0, scan_at=0.5, size_params=None):
    """(ids, sizes): arrays of uint32, one element per request."""
    rnd = random.Random(f"zipf-{seed}-{alpha}")
    cum, acc = [], 0.0
    for i in range(objects):
        acc += 1.0 / (i + 1) ** alpha
        cum.append(acc)
    ids = array.array("I", rnd.choices(range(objects), cum_weights=cum, k=requests))
    osize = object_sizes(objects + scan, max_size, seed, size_params)
    if scan:
        at = int(requests * scan_at)
        ids = ids[:at] + array.array("I", range(objects, objects + scan)) + ids[at:]
    sizes = array.array("I", (osize[i] for i in ids))
    return ids, sizes


def capacity(n, size=SCENARIO_SIZE):
    ids = array.array("I", list(range(n)) * 2)
    return ids, array.array("I", [size]) * len(ids)


def scan_scenario(hot=HOT, passes=HOT_PASSES, scan=SCAN_OBJECTS, size=SCENARIO_SIZE):
    ids = array.array("I", list(range(hot)) * passes + list(range(hot, hot + scan)) +
                      list(range(hot)))
    return ids, array.array("I", [size]) * len(ids)


def write(path, ids, sizes):
    """Writes the trace as simcore.c reads it (interleaved little-endian uint32)."""
    inter = array.array("I", bytes(8 * len(ids)))
    inter[0::2] = ids
    inter[1::2] = sizes
    if sys.byteorder != "little":
        inter.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        inter.tofile(f)
    os.replace(tmp, path)


def read(path):
    inter = array.array("I")
    with open(path, "rb") as f:
        inter.frombytes(f.read())
    if sys.byteorder != "little":
        inter.byteswap()
    return inter[0::2], inter[1::2]


def describe(spec):
    """A one-line name for a trace spec (dict)."""
    k = spec["kind"]
    if k == "zipf":
        s = (f"zipf a={spec['alpha']} objects={spec['objects']} "
             f"requests={spec['requests']} seed={spec['seed']}")
        if spec.get("scan"):
            s += f" scan={spec['scan']}@{spec['scan_at']}"
        return s
    if k == "capacity":
        return f"capacity n={spec['n']} (2 KB x2)"
    return f"scan (hot {HOT} x{HOT_PASSES}, {SCAN_OBJECTS} one-time, hot again)"


def make(spec, max_size):
    """(ids, sizes, tail): tail = how many requests at the end are the measured part (the
    second pass, the hot set after the scan; 0 for zipf)."""
    k = spec["kind"]
    if k == "zipf":
        ids, sizes = zipf(spec["objects"], spec["requests"], spec["alpha"], max_size,
                          spec["seed"], spec.get("scan", 0), spec.get("scan_at", 0.5))
        return ids, sizes, 0
    if k == "capacity":
        ids, sizes = capacity(spec["n"])
        return ids, sizes, spec["n"]
    if k == "scan":
        ids, sizes = scan_scenario()
        return ids, sizes, HOT
    raise ValueError(f"unknown trace kind {k}")


def cached(spec, max_size, directory):
    """make() through a file cache in directory: (path, ids, sizes, tail)."""
    key = describe(spec).replace(" ", "_").replace("=", "").replace("(", "").replace(")", "")
    key = "".join(ch for ch in key if ch.isalnum() or ch in "._@-")
    path = os.path.join(directory, f"{key}_max{max_size}.trace")
    ids, sizes, tail = None, None, 0
    if os.path.exists(path):
        ids, sizes = read(path)
        _, _, tail = make(spec, max_size) if spec["kind"] != "zipf" else (None, None, 0)
    else:
        ids, sizes, tail = make(spec, max_size)
        write(path, ids, sizes)
    return path, ids, sizes, tail
