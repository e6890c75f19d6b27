#!/usr/bin/python3
"""bench/trace_states.py TRACE [TRACE...] — reads engine traces written with
HETEE_ENGINE_TRACE=FILE (src/host/infer.c) and prints where one run's wall
time went on its CPUs:

  * time in each state (pool items running, enclave call in progress);
  * "idle CPU-s": the integral of threads - min(threads, items + call),
    i.e. CPU time the run left unused if a call in progress keeps one CPU
    busy (the enclave computing, or the host writing / reading its bytes);
  * per item kind: count, total and median duration (wall time of the item
    on its pool thread, including any time it was preempted);
  * per enclave call (request, stage): count, wall time, and the part of it
    during which no pool item was running (the host had nothing to do).
"""
import statistics
import sys


def load(path):
    hdr, ev = {}, []
    for line in open(path):
        if line.startswith("# hetee engine trace:"):
            p = line.split(":", 1)[1].split()
            hdr = {p[i]: float(p[i + 1]) for i in range(0, len(p) - 1, 2)}
            continue
        if line.startswith("#") or not line.strip():
            continue
        k, who, a, b = line.split()
        ev.append((k, int(who), float(a), float(b)))
    return hdr, ev


ITEMS = ("products", "serialize", "load")


def report(path):
    hdr, ev = load(path)
    T = int(hdr.get("threads", 1))
    total = hdr.get("total_s", max(e[3] for e in ev))
    items = [e for e in ev if e[0] in ITEMS]
    calls = [e for e in ev if e[0] not in ITEMS]
    pts = []
    for e in items:
        pts += [(e[2], 0, 1), (e[3], 0, -1)]
    for e in calls:
        pts += [(e[2], 1, 1), (e[3], 1, -1)]
    pts.sort()
    h = c = 0
    last = 0.0
    occ = {}
    idle = 0.0
    for t, k, d in pts + [(total, 0, 0)]:
        dt = max(0.0, t - last)
        occ[(h, c)] = occ.get((h, c), 0.0) + dt
        idle += dt * (T - min(T, h + min(c, 1)))
        last = max(last, t)
        if k == 0:
            h += d
        else:
            c += d
    print("%s: threads %d, pipelines %d, total %.4f s" % (path, T, int(hdr.get("pipelines", 0)), total))
    for k in sorted(occ):
        print("  %d items running, %s: %.4f s (%.1f%%)" % (k[0], "call in the enclave" if k[1] else "no call", occ[k],
                                                          100 * occ[k] / total))
    print("  idle CPU-s %.4f of %.4f (%.1f%%)" % (idle, T * total, 100 * idle / (T * total)))
    for kind in ITEMS:
        d = [e[3] - e[2] for e in items if e[0] == kind]
        if d:
            print("  item %-9s n %5d  sum %.4f s  median %.1f us" % (kind, len(d), sum(d), 1e6 * statistics.median(d)))
    for tid in sorted({e[1] for e in items}):
        print("  pool thread %d busy %.4f s" % (tid, sum(e[3] - e[2] for e in items if e[1] == tid)))
    keys = sorted({(e[0], e[1]) for e in calls})
    for key in keys:
        cs = [e for e in calls if (e[0], e[1]) == key]
        wall = sum(e[3] - e[2] for e in cs)
        alone = 0.0
        for e in cs:
            segs = sorted((max(i[2], e[2]), min(i[3], e[3])) for i in items if i[3] > e[2] and i[2] < e[3])
            cov, cur = 0.0, e[2]
            for a, b in segs:
                if b > cur:
                    cov += b - max(a, cur)
                    cur = b
            alone += (e[3] - e[2]) - cov
        print("  call %-9s stage %d: n %3d  wall %.4f s  host without items %.4f s" % (key[0], key[1], len(cs), wall,
                                                                                       alone))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    for p in sys.argv[1:]:
        report(p)
