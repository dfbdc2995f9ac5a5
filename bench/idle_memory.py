#!/usr/bin/env python3
"""Memory per idle established TLS connection in a tlsd worker.

    SP_BUILDDIR=build/plain python3 bench/idle_memory.py [N]

Starts tlsd with one worker (key in software) as make bench does, opens N
(default 500) TLS 1.3 connections that complete the handshake and then sit
idle, and reports the worker's proportional set size (PSS, from
/proc/PID/smaps_rollup) before and after, divided by N. The backend
(sp_test_smtpd) runs in its own process and is not counted. A measurement,
not a test: nothing is asserted."""

import os
import socket
import ssl
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench  # noqa: E402  (the same setup as make bench)


def pss_kb(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError("no Pss for %d" % pid)


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def worker_of(master):
    for c in children(master):
        with open("/proc/%d/cmdline" % c, "rb") as f:
            if os.path.basename(f.read().split(b"\0")[0]) == b"tlsd":
                return c
    raise RuntimeError("no worker under tlsd %d" % master)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    tmp = tempfile.mkdtemp(prefix="sp-idlemem-")
    procs = run_bench.Procs(tmp)
    try:
        world = run_bench.World(tmp, procs)
        port, ps = run_bench.start_tlsd(world, "tlsd-soft", "soft")
        master = ps[0].pid
        # taskset wraps tlsd when pinning: find the tlsd master under it
        for c in [master] + children(master):
            with open("/proc/%d/cmdline" % c, "rb") as f:
                if os.path.basename(f.read().split(b"\0")[0]) == b"tlsd":
                    master = c
                    break
        ctx = ssl.create_default_context(cafile=world.pki.ca_crt)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # one connection first, so lazily built state (SSL_CTX caches,
        # keyd channel buffers) is not charged to the idle ones
        warm = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        worker = worker_of(master)
        before = pss_kb(worker)
        conns = []
        for _ in range(n):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
            conns.append(s)
        after = pss_kb(worker)
        print("tlsd worker PSS: %d kB before, %d kB with %d more idle TLS 1.3 connections" % (before, after, n))
        print("per idle connection: %.1f kB" % ((after - before) / n))
        for s in conns + [warm]:
            s.close()
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
