#!/usr/bin/env python3
"""The v2 parse benchmark's workload for python3-hl7 (Debian package
python3-hl7): parse each message, read PID-3, PID-5 and every OBX-5.
Single thread, median of RUNS, timed in process CPU time (so that a busy
shared machine does not inflate it; wall time is printed too).  Prints one
JSON line.  Run it with Debian's interpreter (/usr/bin/python3), which is
where python3-hl7 is installed.

    python3 v2_parse.py CORPUS [MAX_MESSAGES] [RUNS]
"""
import json
import statistics
import sys
import time

import hl7


def main():
    if len(sys.argv) < 2:
        print("usage: v2_parse.py CORPUS [MAX_MESSAGES] [RUNS]", file=sys.stderr)
        sys.exit(2)
    corpus = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    with open(corpus, "r", encoding="latin-1", newline="") as f:
        msgs = [line for line in f.read().split("\n") if line]
    if limit:
        msgs = msgs[:limit]
    nbytes = sum(len(m) for m in msgs)
    times = []
    walls = []
    check = 0
    for _ in range(runs):
        t0 = time.process_time()
        w0 = time.perf_counter()
        c = 0
        for text in msgs:
            m = hl7.parse(text)
            try:
                pid = m.segment("PID")
                c += len(str(pid[3])) + len(str(pid[5]))
            except KeyError:
                pass
            try:
                for obx in m.segments("OBX"):
                    c += len(str(obx[5]))
            except KeyError:
                pass
        times.append(time.process_time() - t0)
        walls.append(time.perf_counter() - w0)
        check = c
    med = statistics.median(times)
    print(json.dumps({"parser": "python3-hl7", "messages": len(msgs), "bytes": nbytes,
                      "seconds": med,
                      "wall_seconds": statistics.median(walls), "mb_s": nbytes / 1e6 / med,
                      "msg_s": len(msgs) / med, "check": check}))


if __name__ == "__main__":
    main()
