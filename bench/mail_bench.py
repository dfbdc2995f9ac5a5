#!/usr/bin/env python3
"""Sealpost's mail benchmark (`make bench-mail`): SMTP against Postfix
(issue 7), IMAP and memory per idle connection against Dovecot (issue 8),
on the same machine in the same run, in a temp dir, servers pinned to one
CPU and the clients to another (taskset).

SMTP: Postfix's smtp-source (-d: each session keeps its connection) sends
SESSIONS x (MESSAGES / SESSIONS) messages of SIZE bytes to a local Maildir
user of mailcore, then of a private Postfix (virtual(8) to Maildir/); each
run a fresh mailbox, sides alternating. Two rates per side: accepted (N /
smtp-source's wall time, last 250 and QUIT included) and fsync-delivered
(N / time until the Maildir's new/ holds N files). mailcore answers 250
after the Maildir fsync, so its two coincide; Postfix answers 250 once the
queue file is fsynced and delivers from the queue afterwards.

IMAP: one Maildir of MAILBOX generated messages (bench/mail_corpus.py),
each server its own copy. Per cold run: fresh copy, server start, a
first SELECT INBOX (cold: the server builds its index; for Dovecot the
dovecot.index files, for mailcore its uidlist), then warm SELECTs, FETCH
1:FETCH (FLAGS UID RFC822.SIZE ENVELOPE) and FETCH 1:FETCH BODY.PEEK[],
REPS times each on one connection (bench/imap_client.py), and after
SETTLE_S seconds without a change, warm SELECTs again. The first
ENVELOPE fetch after start is reported apart: Dovecot fills its cache
file then. Idle memory: IDLE connections, each LOGIN + SELECT INBOX, then
idle; total PSS of the server's process tree before and after, / IDLE.

A side that fails (a server that does not start, fewer messages delivered
than sent, a NO/BAD, a wrong EXISTS or FETCH count) prints FAILED and the
reason, never a number, and makes the exit status 1; a side whose package
is missing prints "not available". No number is asserted.

Environment (defaults in brackets): SP_BUILDDIR, SP_SRCDIR (set by make),
BENCH_OUT [bench/results], BENCH_SERVER_CPU [0], BENCH_GEN_CPU [1],
BENCH_MAIL_SESSIONS [20], BENCH_MAIL_MESSAGES [10000], BENCH_MAIL_SIZE
[4096], BENCH_MAIL_RUNS [3], BENCH_MAIL_MAILBOX [10000], BENCH_MAIL_FETCH
[1000], BENCH_MAIL_REPS [5], BENCH_MAIL_COLD_RUNS [3], BENCH_MAIL_IDLE
[200], BENCH_MAIL_WORKERS [1] (mailcore.workers, set when the key exists),
BENCH_MAIL_ROWS [smtp,imap,idle], BENCH_QUICK=1 (small sizes, to try the
script), BENCH_KEEP=1 (keep the temp dir with the servers' logs)."""

import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_bench  # noqa: E402  (Procs, ports, the SP_* paths, spfix)
from run_bench import Unavailable, log  # noqa: E402
import mail_peers  # noqa: E402
import mail_corpus  # noqa: E402
import imap_client  # noqa: E402
from idle_memory import pss_kb, children  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"


def env_int(name, default, quick):
    return int(os.environ.get(name, quick if QUICK else default))


SESSIONS = env_int("BENCH_MAIL_SESSIONS", 20, 4)
MESSAGES = env_int("BENCH_MAIL_MESSAGES", 10000, 400)
SIZE = env_int("BENCH_MAIL_SIZE", 4096, 4096)
RUNS = env_int("BENCH_MAIL_RUNS", 3, 1)
MAILBOX = env_int("BENCH_MAIL_MAILBOX", 10000, 500)
FETCH = env_int("BENCH_MAIL_FETCH", 1000, 100)
REPS = env_int("BENCH_MAIL_REPS", 5, 2)
SETTLE_S = 3   # then SELECT again: a mailbox nothing changed in for a while
COLD_RUNS = env_int("BENCH_MAIL_COLD_RUNS", 3, 1)
IDLE = env_int("BENCH_MAIL_IDLE", 200, 20)
WORKERS = env_int("BENCH_MAIL_WORKERS", 1, 1)
ROWS = set(filter(None, os.environ.get("BENCH_MAIL_ROWS", "smtp,imap,idle").split(",")))
SERVER_CPU = run_bench.SERVER_CPU
GEN_CPU = run_bench.GEN_CPU
OUT_BASE = run_bench.OUT_BASE
POSTFIX_EXTRACTED = "/var/cache/sealpost-test/postfix"   # scripts/install-deps.sh
BOX = "box"                                             # the IMAP user's local part
DELIVERY_TIMEOUT_S = 120.0                              # after smtp-source exits
SIDES_SMTP = ("sealpost", "postfix")
SIDES_IMAP = ("sealpost", "dovecot")


class Failed(Exception):
    """A side that ran and went wrong: no number from it."""


def smtp_source():
    """(argv prefix, env) of smtp-source: the installed package's, else the
    extracted one the queue tests use."""
    if os.access("/usr/sbin/smtp-source", os.X_OK):
        return ["/usr/sbin/smtp-source"], None
    path = os.path.join(POSTFIX_EXTRACTED, "usr/sbin/smtp-source")
    if os.access(path, os.X_OK):
        return [path], dict(os.environ, LD_LIBRARY_PATH=os.path.join(POSTFIX_EXTRACTED, "usr/lib/postfix"))
    raise Unavailable("smtp-source not found (scripts/install-deps.sh)")


def pinned(argv, cpu):
    return (["taskset", "-c", str(cpu)] if cpu < (os.cpu_count() or 1) else []) + list(argv)


def count_files(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- SMTP

def smtp_args(rcpt, port):
    return ["-d", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", str(SIZE), "-f", "sender@example.org",
            "-t", rcpt, "127.0.0.1:%d" % port]


def smtp_once(server, local, port):
    """One smtp-source run into local's Maildir; returns the timings."""
    prefix, env = smtp_source()
    new = os.path.join(server.maildir(local), "new")
    argv = pinned(prefix + smtp_args("%s@%s" % (local, mail_peers.DOMAIN), port), GEN_CPU)
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                       timeout=max(600, MESSAGES / 5))
    t_acc = time.perf_counter() - t0
    if r.returncode != 0:
        raise Failed("smtp-source exited %d: %s" % (r.returncode, run_bench.tail(r.stdout, 2)))
    at_accept = count_files(new)
    n = at_accept
    deadline = time.perf_counter() + DELIVERY_TIMEOUT_S
    while n < MESSAGES and time.perf_counter() < deadline:
        time.sleep(0.01)
        n = count_files(new)
    t_del = time.perf_counter() - t0
    if n != MESSAGES:
        why = "%d of %d messages in %s after %.0f s" % (n, MESSAGES, new, DELIVERY_TIMEOUT_S)
        if isinstance(server, mail_peers.Postfix):
            why += "; in the queue: %d; %s" % (server.queue_count(), server.delivery_problems())
        raise Failed(why)
    return {"accepted_s": t_acc, "delivered_s": t_del, "in_new_at_exit": at_accept, "delivered": n}


def bench_smtp(tmp, procs):
    """{side: result dict | "not available: ..." | "FAILED: ..."}."""
    out, servers = {}, {}
    locals_ = ["u%d" % i for i in range(1, RUNS + 1)]
    try:
        smtp_source()
    except Unavailable as e:
        return {s: "not available: %s" % e for s in SIDES_SMTP}, {}
    for side in SIDES_SMTP:
        try:
            if side == "sealpost":
                srv = mail_peers.Mailcore(procs, run_bench.BUILDDIR, os.path.join(tmp, "smtp-sealpost"), locals_,
                                          workers=WORKERS if workers_key() else None, cpu=SERVER_CPU)
                srv.port = srv.smtp_port
            else:
                srv = mail_peers.Postfix(procs, os.path.join(tmp, "smtp-postfix"), locals_, cpu=SERVER_CPU)
            servers[side] = srv.start()
        except Unavailable as e:
            out[side] = "not available: %s" % e
    runs = {s: [] for s in servers}
    try:
        for i, local in enumerate(locals_):
            order = list(servers) if i % 2 == 0 else list(reversed(list(servers)))
            for side in order:
                if side in out:
                    continue
                try:
                    res = smtp_once(servers[side], local, servers[side].port)
                except (Failed, subprocess.TimeoutExpired) as e:
                    out[side] = "FAILED: run %d: %s" % (i + 1, e)
                    log("smtp %s: FAILED: %s" % (side, e))
                    continue
                runs[side].append(res)
                log("smtp %s run %d: accepted %.1f msg/s, delivered %.1f msg/s" % (
                    side, i + 1, MESSAGES / res["accepted_s"], MESSAGES / res["delivered_s"]))
                shutil.rmtree(servers[side].maildir(local), ignore_errors=True)   # disk, not timed
    finally:
        for srv in servers.values():
            srv.stop()
    for side, rs in runs.items():
        if side in out:
            continue
        out[side] = {
            "accepted_msg_per_s": statistics.median(MESSAGES / r["accepted_s"] for r in rs),
            "delivered_msg_per_s": statistics.median(MESSAGES / r["delivered_s"] for r in rs),
            "in_new_at_exit": statistics.median(r["in_new_at_exit"] for r in rs),
            "runs": rs, "messages": MESSAGES}
    versions = {"postfix": servers["postfix"].version()} if "postfix" in servers else {}
    return out, versions


# ---------------------------------------------------------------- IMAP

def tree_pss(pid):
    """(total PSS in kB, process count) of pid and all its descendants."""
    total, n, pending = 0, 0, [pid]
    while pending:
        p = pending.pop()
        try:
            total += pss_kb(p)
            n += 1
            pending += children(p)
        except (OSError, RuntimeError):
            pass   # exited meanwhile
    return total, n


def settled_pss(pid, tries=25):
    """PSS of the tree once two readings 0.2 s apart agree within 0.5 %
    (processes forked for the last logins have finished starting)."""
    last = tree_pss(pid)
    for _ in range(tries):
        time.sleep(0.2)
        cur = tree_pss(pid)
        if cur[1] == last[1] and abs(cur[0] - last[0]) <= 0.005 * max(cur[0], 1):
            return cur
        last = cur
    return last


def imap_server(side, tmp, procs, run, corpus):
    """A started server of side with a fresh copy of the corpus."""
    d = os.path.join(tmp, "imap-%s-%d" % (side, run))
    if side == "sealpost":
        srv = mail_peers.Mailcore(procs, run_bench.BUILDDIR, d, [BOX], workers=WORKERS if workers_key() else None,
                                  imap=True, cpu=SERVER_CPU)
        md = srv.maildir(BOX)
        srv.port = srv.imap_port
    else:
        md = os.path.join(d, "home", "Maildir")
        srv = mail_peers.Dovecot(procs, d, "%s@%s" % (BOX, mail_peers.DOMAIN), md, IDLE, cpu=SERVER_CPU)
    os.makedirs(os.path.dirname(md), exist_ok=True)
    shutil.copytree(corpus, md)
    return srv.start()


def login(port):
    c = imap_client.ImapClient(port)
    c.login("%s@%s" % (BOX, mail_peers.DOMAIN), mail_peers.PASSWORD)
    return c


def check_select(r):
    if r.exists != MAILBOX:
        raise Failed("SELECT INBOX: EXISTS %s, expected %d" % (r.exists, MAILBOX))


def check_fetch(r, literals):
    if r.fetches != FETCH or r.literals != literals:
        raise Failed("FETCH 1:%d: %d FETCH responses, %d literals (expected %d, %d)" % (
            FETCH, r.fetches, r.literals, FETCH, literals))


def imap_timings(srv, first_run, acc):
    """Appends this server's timings to acc (lists of seconds)."""
    c = login(srv.port)
    try:
        r = c.command("SELECT INBOX")
        check_select(r)
        acc["select_cold"].append(r.wall_s)
        acc["exists"] = r.exists
        if not first_run:
            return
        for _ in range(REPS):
            r = c.command("SELECT INBOX")
            check_select(r)
            acc["select_warm"].append(r.wall_s)
        for i in range(REPS + 1):
            r = c.command("FETCH 1:%d (FLAGS UID RFC822.SIZE ENVELOPE)" % FETCH)
            check_fetch(r, 0)
            acc["fetches"] = r.fetches
            acc["fetch_envelope_first" if i == 0 else "fetch_envelope"].append(r.wall_s)
            acc["client_cpu"].append((r.client_cpu_s, r.wall_s))
        for _ in range(REPS):
            r = c.command("FETCH 1:%d BODY.PEEK[]" % FETCH)
            check_fetch(r, FETCH)
            acc["fetch_body"].append(r.wall_s)
            acc["client_cpu"].append((r.client_cpu_s, r.wall_s))
            acc["body_bytes"] = r.literal_bytes
        # the usual case of a real mailbox: nothing changed for a while
        # (mailcore trusts an unchanged directory only after 2 s)
        time.sleep(SETTLE_S)
        for _ in range(REPS):
            r = c.command("SELECT INBOX")
            check_select(r)
            acc["select_settled"].append(r.wall_s)
    finally:
        c.close()


def idle_memory(srv):
    """Total PSS of the server's tree with one warm connection, then with
    IDLE more idle ones (LOGIN + SELECT INBOX each)."""
    warm = login(srv.port)   # lazily built state is not charged to the idle ones
    check_select(warm.command("SELECT INBOX"))
    before = settled_pss(srv.proc.pid)
    conns = []
    try:
        for _ in range(IDLE):
            c = login(srv.port)
            conns.append(c)
            check_select(c.command("SELECT INBOX"))
        after = settled_pss(srv.proc.pid)
        # all still there: a server that dropped idle clients would look cheap
        for c in conns:
            c.command("NOOP")
    finally:
        for c in conns + [warm]:
            c.close()
    return {"connections": IDLE, "pss_before_kb": before[0], "pss_after_kb": after[0],
            "procs_before": before[1], "procs_after": after[1],
            "per_connection_kb": (after[0] - before[0]) / IDLE}


def bench_imap(tmp, procs):
    out, versions = {}, {}
    want_imap, want_idle = "imap" in ROWS, "idle" in ROWS
    corpus = os.path.join(tmp, "corpus")
    log("writing the %d-message Maildir" % MAILBOX)
    total = mail_corpus.make_maildir(corpus, MAILBOX, rcpt="%s@%s" % (BOX, mail_peers.DOMAIN))
    versions["dovecot"] = mail_peers.Dovecot.version() if shutil.which("dovecot") else None
    for side in SIDES_IMAP:
        acc = {k: [] for k in ("select_cold", "select_warm", "select_settled", "fetch_envelope_first",
                               "fetch_envelope", "fetch_body", "client_cpu")}
        res = {"mailbox": MAILBOX, "mailbox_bytes": total}
        try:
            for run in range(COLD_RUNS if want_imap else 1):
                srv = imap_server(side, tmp, procs, run, corpus)
                try:
                    if want_imap:
                        imap_timings(srv, run == 0, acc)
                    if want_idle and run == 0:
                        res["idle"] = idle_memory(srv)
                        log("idle %s: %.1f kB per connection" % (side, res["idle"]["per_connection_kb"]))
                finally:
                    srv.stop()
            if want_imap:
                for k in ("select_cold", "select_warm", "select_settled", "fetch_envelope_first",
                          "fetch_envelope", "fetch_body"):
                    res[k + "_ms"] = statistics.median(acc[k]) * 1000
                    res[k + "_runs_ms"] = [v * 1000 for v in acc[k]]
                for k in ("body_bytes", "exists", "fetches"):
                    res[k] = acc.get(k)
                res["client_cpu_share"] = max(cpu / wall for cpu, wall in acc["client_cpu"] if wall > 0)
                log("imap %s: select cold %.1f ms warm %.1f ms, fetch envelope %.1f ms, body %.1f ms" % (
                    side, res["select_cold_ms"], res["select_warm_ms"], res["fetch_envelope_ms"],
                    res["fetch_body_ms"]))
            out[side] = res
        except Unavailable as e:
            out[side] = "not available: %s" % e
        except (Failed, imap_client.ImapError, OSError) as e:
            out[side] = "FAILED: %s" % e
            log("imap %s: FAILED: %s" % (side, e))
    return out, versions


# ---------------------------------------------------------------- report

_workers_key = None


def workers_key():
    global _workers_key
    if _workers_key is None:
        _workers_key = mail_peers.mailcore_has_workers_key(run_bench.SRCDIR)
    return _workers_key


def command_line():
    env = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(os.environ.items())
                   if k.startswith("BENCH_") or k in ("SP_BUILDDIR", "SP_SRCDIR"))
    return (env + " " if env else "") + " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv)


def cell(v, fmt="%.1f"):
    return "-" if v is None else fmt % v


def ratio(a, b):
    return a / b if a is not None and b else None


def rows_for(results, side_a, side_b, items, unit):
    """Table lines for two sides and (label, key[, count format]) items; a side that is a
    string (not available / FAILED) prints its reason, no number."""
    lines = []
    a, b = results.get(side_a), results.get(side_b)
    for side, v in ((side_a, a), (side_b, b)):
        if isinstance(v, str):
            lines.append("  %s: %s" % (side, v if len(v) < 400 else v[:397] + "..."))
    hdr = "  %-52s %12s %12s %10s" % ("", side_a + " " + unit, side_b + " " + unit, "%s/%s" % (side_a, side_b))
    lines.append(hdr)
    lines.append("  " + "-" * (len(hdr) - 2))
    for label, key, *count_fmt in items:
        va = a.get(key) if isinstance(a, dict) else None
        vb = b.get(key) if isinstance(b, dict) else None
        f = count_fmt[0] if count_fmt else "%.1f"
        r = None if count_fmt else ratio(va, vb)   # a count, not a figure of merit
        lines.append("  %-52s %12s %12s %10s" % (label, cell(va, f), cell(vb, f), cell(r, "%.2f")))
    return lines


def table(meta, smtp, imap):
    L = ["Sealpost mail benchmark, %s%s" % (meta["date"], " (BENCH_QUICK: not for quoting)" if QUICK else ""),
         "command: %s" % meta["command"],
         "host: %s; load average before: %s, after: %s (after: the benchmark's own servers and clients "
         "count too)" % (meta["host"], meta["load"], meta["load_after"]),
         "servers pinned to CPU %d (taskset -c %d), clients (smtp-source, the IMAP client) to CPU %d" % (
             SERVER_CPU, SERVER_CPU, GEN_CPU),
         "versions: %s" % "; ".join(meta["versions"]),
         "mailcore.workers = %s" % meta["workers"]]
    # the load after the run is mostly the run itself (20 SMTP sessions, the
    # servers' fsyncs): only the load found before it says other work ran
    if float(meta["load"].split()[0]) > 1.0:
        L.append("WARNING: the machine was busy with other work (1-min load > 1 before the run, on the "
                 "benchmark's 2 cores): the figures are noisy; run again on a quiet machine before quoting them")
    if smtp is not None:
        L += ["", "SMTP (issue 7): %s, median of %d runs, a fresh mailbox each run, sides alternating" % (
            "smtp-source " + " ".join(smtp_args("uN@%s" % mail_peers.DOMAIN, 0)[:-1]) + " 127.0.0.1:PORT", RUNS)]
        L += rows_for(smtp, "sealpost", "postfix", [
            ("accepted msg/s (smtp-source wall time)", "accepted_msg_per_s"),
            ("fsync-delivered msg/s (Maildir new/ count = N)", "delivered_msg_per_s"),
            ("messages in new/ when smtp-source exited (of %d)" % MESSAGES, "in_new_at_exit", "%.0f")],
            "msg/s")
        L.append("  (ratio > 1: Sealpost faster. Sealpost answers 250 after the Maildir fsync; Postfix after the")
        L.append("  queue-file fsync, then virtual(8) fsyncs each Maildir file before linking it into new/.)")
    if imap is not None:
        sp = imap.get("sealpost") if isinstance(imap.get("sealpost"), dict) else {}
        L += ["", "IMAP (issue 8): one %d-message Maildir (%.1f MB, bench/mail_corpus.py), a copy per server;" % (
            MAILBOX, (sp.get("mailbox_bytes") or 0) / 1e6),
            "  cold = first SELECT after start on a fresh copy (median of %d); others: median of %d on one "
            "connection" % (COLD_RUNS, REPS)]
        if "imap" in ROWS:
            L += rows_for(imap, "sealpost", "dovecot", [
                ("SELECT INBOX, cold (index built)", "select_cold_ms"),
                ("SELECT INBOX, warm", "select_warm_ms"),
                ("SELECT INBOX, warm, nothing changed for %d s" % SETTLE_S, "select_settled_ms"),
                ("FETCH 1:%d (FLAGS UID RFC822.SIZE ENVELOPE), 1st" % FETCH, "fetch_envelope_first_ms"),
                ("FETCH 1:%d (FLAGS UID RFC822.SIZE ENVELOPE)" % FETCH, "fetch_envelope_ms"),
                ("FETCH 1:%d BODY.PEEK[]" % FETCH, "fetch_body_ms")], "ms")
            L.append("  (times: ratio < 1: Sealpost faster)")
            for side in SIDES_IMAP:
                v = imap.get(side)
                c = v.get("client_cpu_share") if isinstance(v, dict) else None
                if c is not None:
                    L.append("  client CPU / wall against %s, worst FETCH: %.0f %%%s" % (
                        side, c * 100, " - the Python client may be the limit there" if c > 0.5 else
                        " (the server, not the client, set the pace)"))
        if "idle" in ROWS:
            L += ["", "Memory per idle IMAP connection: %d connections, LOGIN + SELECT INBOX each, then idle; "
                  "total PSS of the server's processes" % IDLE]
            for side in SIDES_IMAP:
                v = imap.get(side)
                if isinstance(v, dict) and "idle" in v:
                    m = v["idle"]
                    L.append("  %-9s %9d kB before (%d procs), %9d kB after (%d procs): %8.1f kB per connection" % (
                        side, m["pss_before_kb"], m["procs_before"], m["pss_after_kb"], m["procs_after"],
                        m["per_connection_kb"]))
                elif isinstance(v, str):
                    L.append("  %-9s %s" % (side, v))
            a, b = (imap.get(s) for s in SIDES_IMAP)
            if isinstance(a, dict) and isinstance(b, dict) and "idle" in a and "idle" in b:
                L.append("  sealpost/dovecot per connection: %s" % cell(ratio(
                    a["idle"]["per_connection_kb"], b["idle"]["per_connection_kb"]), "%.2f"))
            L.append("  (Dovecot: Debian's defaults, one imap process per connection; Sealpost: the mailcore "
                     "master and its workers)")
    return "\n".join(L) + "\n"


def main():
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        log("only %d CPU: servers and clients share it; the numbers are not comparable" % ncpu)
    elif GEN_CPU < ncpu:
        os.sched_setaffinity(0, {GEN_CPU})   # this script is the IMAP client and the Maildir watcher
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(OUT_BASE, "mail-" + stamp)
    os.makedirs(outdir, exist_ok=True)
    meta = {"date": stamp, "command": command_line(), "load": loadavg(),
            "host": "%s, %d CPUs" % (os.uname().nodename, ncpu), "server_cpu": SERVER_CPU, "gen_cpu": GEN_CPU,
            "workers": WORKERS if workers_key() else "default (no mailcore.workers key in this tree)",
            "quick": QUICK, "sessions": SESSIONS, "messages": MESSAGES, "size": SIZE, "runs": RUNS,
            "mailbox": MAILBOX, "fetch": FETCH, "reps": REPS, "cold_runs": COLD_RUNS, "idle": IDLE}
    if float(meta["load"].split()[0]) > 0.5 * ncpu:
        log("the machine is busy (load %s): numbers will be noisy" % meta["load"])
    tmp = tempfile.mkdtemp(prefix="sp-mailbench-")
    # Postfix's and Dovecot's unprivileged processes reach their queue and
    # mail below it; nothing secret lives here (a throwaway password)
    os.chmod(tmp, 0o755)
    procs = run_bench.Procs(tmp)
    smtp = imap = None
    versions = {}
    try:
        if "smtp" in ROWS:
            log("SMTP: %d sessions x %d messages of %d bytes, %d runs" % (SESSIONS, MESSAGES // SESSIONS, SIZE, RUNS))
            smtp, v = bench_smtp(tmp, procs)
            versions.update(v)
        if ROWS & {"imap", "idle"}:
            log("IMAP: %d-message mailbox" % MAILBOX)
            imap, v = bench_imap(tmp, procs)
            versions.update(v)
    finally:
        procs.stop_all()
        if os.environ.get("BENCH_KEEP") == "1":
            log("kept %s (BENCH_KEEP=1)" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["load_after"] = loadavg()
    rev = subprocess.run(["git", "-C", run_bench.SRCDIR, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    meta["versions"] = ["Sealpost mailcore %s (%s)" % (rev or "?", run_bench.BUILDDIR)] + \
        [v for v in (versions.get("postfix"), versions.get("dovecot")) if v]
    text = table(meta, smtp, imap)
    sys.stdout.write(text)
    failed = [("smtp", s, v) for s, v in (smtp or {}).items() if isinstance(v, str) and v.startswith("FAILED")] + \
             [("imap", s, v) for s, v in (imap or {}).items() if isinstance(v, str) and v.startswith("FAILED")]
    with open(os.path.join(outdir, "results.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "smtp": smtp, "imap": imap,
                   "failures": ["%s %s: %s" % x for x in failed]}, f, indent=2)
    print("results: %s" % outdir)
    if failed:
        log("%d side(s) FAILED: no figure from them" % len(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
