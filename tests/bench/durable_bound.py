#!/usr/bin/env python3
"""What this machine's disk allows a durable hub to do (on demand).

An AA (MLLP) or a 201 (REST) is sent only after the commit that holds the
change is on disk, so each commit waits for one flush of the write-ahead
log. A client with one request in flight per connection therefore bounds
throughput at

    connections / flush latency     (commits grouped across connections)

whatever the hub's code costs. This script measures the flush latency the
way the store pays it (SQLite, WAL, synchronous=FULL, one small row per
commit, the file in DIR) and as a raw O_DSYNC 4 KiB append, then prints
the bound for the connection counts that the issues' targets name.

    python3 tests/bench/durable_bound.py [DIR] [COMMITS]

DIR defaults to the current directory (put it on the disk the store uses);
COMMITS defaults to 500. Prints medians and percentiles in microseconds.
"""
import os
import sqlite3
import sys
import tempfile
import time


def pct(sorted_us, p):
    return sorted_us[min(len(sorted_us) - 1, int(len(sorted_us) * p))]


def sqlite_commits(path, n):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
    body = os.urandom(2048)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        db.execute("BEGIN")
        db.execute("INSERT INTO t(b) VALUES(?)", (body,))
        db.execute("COMMIT")
        out.append((time.perf_counter() - t) * 1e6)
    db.close()
    return sorted(out)


def dsync_appends(path, n):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_DSYNC, 0o600)
    block = os.urandom(4096)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, block)
            out.append((time.perf_counter() - t) * 1e6)
    finally:
        os.close(fd)
    return sorted(out)


def report(name, us):
    print("%-44s median %7.0f us  p10 %7.0f  p90 %7.0f  p99 %7.0f  (n=%d)"
          % (name, pct(us, 0.5), pct(us, 0.1), pct(us, 0.9), pct(us, 0.99), len(us)))


def main():
    where = sys.argv[1] if len(sys.argv) > 1 else "."
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    if n < 10:
        sys.exit("durable_bound: COMMITS must be at least 10")
    with tempfile.TemporaryDirectory(dir=where) as d:
        commits = sqlite_commits(os.path.join(d, "bound.db"), n)
        appends = dsync_appends(os.path.join(d, "bound.log"), n)
    report("SQLite WAL synchronous=FULL commit (2 KiB)", commits)
    report("O_DSYNC append (4 KiB)", appends)
    flush = pct(commits, 0.5)
    print("load average: %.2f %.2f %.2f" % os.getloadavg())
    print("durable bound = connections x 1e6 / %.0f us (one request in flight per connection):"
          % flush)
    for conns, target, what in ((1, 4500, "MLLP 1 connection (issue 4)"),
                                (8, 30000, "MLLP 8 connections (issue 4)"),
                                (8, 5000, "mapped MLLP ingest, 8 connections (issue 7)"),
                                (32, 10000, "FHIR creates, 32 connections (issue 5)")):
        bound = conns * 1e6 / flush
        print("  %-44s at most %8.0f/s  target %6d/s  %s"
              % (what, bound, target, "reachable" if bound >= target else "NOT reachable here"))


if __name__ == "__main__":
    main()
