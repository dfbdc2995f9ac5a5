#!/usr/bin/env python3
"""Sealpost's handshake benchmark and peer comparison (`make bench`).

In one run, in a temp dir: a test PKI, a SoftHSM2 token holding the same
keys, then full-handshake throughput measured by bin/hsbench for
  tlsd, key in software        tlsd, key in SoftHSM2     tlsd, key behind the
  PKCS#11 test double (2 ms, 8 engines)   nginx, key in a file
  nginx, key in SoftHSM2 through the libp11 pkcs11 engine
against `openssl speed` sign/s as the ceiling, for RSA-2048 (TLS 1.3 and
1.2) and ECDSA P-256 (TLS 1.3). Server on one core (taskset), generator on
another, medians of several runs; then a concurrency sweep against the test
double, drawn with gnuplot. A row that cannot run says "not available: why";
no number is ever made up. Results go to $BENCH_OUT (default bench/results/).

Environment: SP_BUILDDIR, SP_SRCDIR (set by make), BENCH_OUT, BENCH_RUNS (5),
BENCH_SECONDS (5), BENCH_CONCURRENCY (64), BENCH_SWEEP_SECONDS (3),
BENCH_SWEEP_LEVELS (1,2,...,256), BENCH_SERVER_CPU (0), BENCH_GEN_CPU (1),
BENCH_QUICK=1 (1 run of 1 s, short sweep: to try the script, not to quote),
BENCH_KEEP=1 (keep the temp dir with the servers' logs),
BENCH_ROWS (comma-separated subset of row ids: speed, nginx-file,
nginx-softhsm, tlsd-soft, tlsd-softhsm, tlsd-double, sweep).

The SoftHSM2 PIN and the nginx configuration that carries it
(`...?pin-value=`) exist only inside this run's temp dir (mode 0700),
which is removed at the end: acceptable for a throwaway benchmark token,
never for a real one."""

import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SRCDIR = os.path.abspath(os.environ.get("SP_SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")))
BUILDDIR = os.path.abspath(os.environ.get("SP_BUILDDIR", SRCDIR))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
import spfix  # noqa: E402  (the test PKI laid out as a certdb)

QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = int(os.environ.get("BENCH_RUNS", "1" if QUICK else "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1" if QUICK else "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
SWEEP_SECONDS = float(os.environ.get("BENCH_SWEEP_SECONDS", "1" if QUICK else "3"))
SWEEP_LEVELS = [int(x) for x in os.environ.get(
    "BENCH_SWEEP_LEVELS", "1,4,16,64,256" if QUICK else "1,2,4,8,16,32,64,128,256").split(",")]
SERVER_CPU = int(os.environ.get("BENCH_SERVER_CPU", "0"))
GEN_CPU = int(os.environ.get("BENCH_GEN_CPU", "1"))
ROWS = set(filter(None, os.environ.get("BENCH_ROWS", "").split(",")))
OUT_BASE = os.environ.get("BENCH_OUT", os.path.join(SRCDIR, "bench", "results"))

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
ENGINE_PATHS = ["/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so", "/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so",
                "/usr/lib/engines-3/pkcs11.so"]
TOKEN_LABEL = "bench"
TOKEN_PIN = "bench-pin-4711"      # throwaway token in the temp dir
DOUBLE_LATENCY_US = 2000
DOUBLE_ENGINES = 8
GEN_BOUND_CORE = 0.95             # the generator's core this busy: it may be the limit

# (id, title, hsbench flags, openssl speed algorithm)
SCENARIOS = [
    ("rsa13", "RSA-2048 TLS 1.3", ["--tls1.3", "--sigalgs", "rsa_pss_rsae_sha256"], "rsa2048"),
    ("rsa12", "RSA-2048 TLS 1.2", ["--tls1.2", "--sigalgs", "rsa_pss_rsae_sha256"], "rsa2048"),
    ("ec13", "ECDSA P-256 TLS 1.3", ["--tls1.3", "--sigalgs", "ecdsa_secp256r1_sha256"], "ecdsap256"),
]
SERVERS = [
    ("nginx-file", "nginx, key in file"),
    ("nginx-softhsm", "nginx, key in SoftHSM2 (libp11 engine)"),
    ("tlsd-soft", "tlsd, key in software"),
    ("tlsd-softhsm", "tlsd, key in SoftHSM2"),
    ("tlsd-double", "tlsd, test double 2ms x8"),
]


class Unavailable(Exception):
    """A row that cannot be measured; the message says why."""


def want(row):
    return not ROWS or row in ROWS


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def run(argv, timeout=120, env=None, check=True):
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise Unavailable("%s failed (%d): %s" % (os.path.basename(str(argv[0])), r.returncode, tail(r.stdout, 3)))
    return r


def tail(text, n=3):
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_times():
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                out[int(m.group(1))] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def core_busy(before, after, cpu):
    if cpu not in before or cpu not in after:
        return None
    db = after[cpu][0] - before[cpu][0]
    dt = after[cpu][1] - before[cpu][1]
    return db / dt if dt > 0 else None


class Procs:
    """Processes of the run, each in its own session, stopped by group."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, argv, env=None, cpu=None):
        logpath = os.path.join(self.tmp, name + ".log")
        lf = open(logpath, "ab")
        if cpu is not None and cpu < (os.cpu_count() or 1):
            argv = ["taskset", "-c", str(cpu)] + list(argv)
        p = subprocess.Popen([str(a) for a in argv], stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
        p.name, p.logpath, p.logfile = name, logpath, lf
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.wait(5)
        p.logfile.close()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p)


def read_log(p, n=4, grep=None):
    try:
        with open(p.logpath, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    lines = text.splitlines()
    if grep:
        lines = [ln for ln in lines if re.search(grep, ln)]
    return tail("\n".join(lines), n)


def wait_port(port, p, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Unavailable("%s exited (%s) at start: %s" % (p.name, p.returncode, read_log(p)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Unavailable("%s did not listen on %d within %.0fs: %s" % (p.name, port, timeout, read_log(p)))


# ---------------------------------------------------------------- the world

class World:
    def __init__(self, tmp, procs):
        self.tmp = tmp
        self.procs = procs
        self.pki = spfix.PKI(os.path.join(tmp, "pki"))
        self.keys = {"rsa": self.pki.p("server-rsa.key"), "ec": self.pki.p("server-ec.key")}
        self.certs = {"rsa": self.pki.server_rsa, "ec": self.pki.server_ec}
        self.token = None

    def softhsm(self):
        """A SoftHSM2 token holding the same two keys (imported, not new)."""
        if self.token is not None:
            return self.token
        if not os.path.exists(SOFTHSM_MODULE):
            raise Unavailable("SoftHSM2 not installed (%s)" % SOFTHSM_MODULE)
        d = os.path.join(self.tmp, "softhsm")
        os.makedirs(os.path.join(d, "tokens"))
        conf = os.path.join(d, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n" % d)
        env = dict(os.environ, SOFTHSM2_CONF=conf)
        run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", TOKEN_PIN + "-so",
             "--pin", TOKEN_PIN], env=env)
        for i, (kind, label) in enumerate((("rsa", "bench-rsa"), ("ec", "bench-ec")), 1):
            p8 = os.path.join(d, kind + ".p8")
            run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", self.keys[kind], "-out", p8])
            run(["softhsm2-util", "--import", p8, "--token", TOKEN_LABEL, "--label", label, "--id", "%02x" % i,
                 "--pin", TOKEN_PIN], env=env)
            os.unlink(p8)
            # certificates on the token too, as an administrator would put them
            der = os.path.join(d, kind + ".der")
            run(["openssl", "x509", "-in", self.certs[kind], "-outform", "DER", "-out", der])
            run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", TOKEN_LABEL, "--login", "--pin",
                 TOKEN_PIN, "--write-object", der, "--type", "cert", "--label", label, "--id", "%02x" % i],
                env=env)
        self.token = {"conf": conf, "objects": {"rsa": "bench-rsa", "ec": "bench-ec"}}
        return self.token

    def double_conf(self):
        path = os.path.join(self.tmp, "p11double.conf")
        with open(path, "w") as f:
            f.write("# PKCS#11 test double for the benchmark (pkcs11/p11_testdouble_module.c)\n"
                    "module = %s\nlatency_us = %d\nengines = %d\n" % (SOFTHSM_MODULE, DOUBLE_LATENCY_US,
                                                                      DOUBLE_ENGINES))
        return path


# ---------------------------------------------------------------- servers

def start_nginx(world, name, token_module=None):
    """nginx, one worker, on SERVER_CPU. token_module: None (keys in files),
    or the PKCS#11 module the libp11 engine loads the keys from."""
    if shutil.which("nginx") is None:
        raise Unavailable("nginx not installed (Debian: nginx-light)")
    d = os.path.join(world.tmp, name)
    os.makedirs(os.path.join(d, "logs"))
    port = free_port()
    env = dict(os.environ)
    main, keys = "", {}
    if token_module is None:
        keys = dict(world.keys)
    else:
        engine = next((p for p in ENGINE_PATHS if os.path.exists(p)), None)
        if engine is None:
            raise Unavailable("libp11 pkcs11 engine not installed (Debian: libengine-pkcs11-openssl)")
        tok = world.softhsm()
        ossl = os.path.join(d, "openssl.cnf")
        with open(ossl, "w") as f:
            f.write("openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n"
                    "[pkcs11]\nengine_id = pkcs11\ndynamic_path = %s\nMODULE_PATH = %s\ninit = 0\n"
                    % (engine, token_module))
        env.update(OPENSSL_CONF=ossl, SOFTHSM2_CONF=tok["conf"])
        if token_module != SOFTHSM_MODULE:
            env["SP_P11DOUBLE_CONF"] = world.double_conf()
        main = "ssl_engine pkcs11;\nenv OPENSSL_CONF;\nenv SOFTHSM2_CONF;\nenv SP_P11DOUBLE_CONF;\n"
        for kind, obj in tok["objects"].items():
            # the PIN sits in this conf only: inside the run's 0700 temp dir
            keys[kind] = '"engine:pkcs11:pkcs11:token=%s;object=%s;type=private?pin-value=%s"' % (
                TOKEN_LABEL, obj, TOKEN_PIN)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("worker_processes 1;\nuser root root;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/logs/error.log warn;\n"
                "%s"
                "events { worker_connections 8192; }\n"
                "http {\n  access_log off;\n  client_body_temp_path %s/tmp_body;\n  proxy_temp_path %s/tmp_proxy;\n"
                "  fastcgi_temp_path %s/tmp_fcgi;\n  uwsgi_temp_path %s/tmp_uwsgi;\n  scgi_temp_path %s/tmp_scgi;\n"
                "  server {\n    listen 127.0.0.1:%d ssl;\n"
                "    ssl_certificate %s;\n    ssl_certificate_key %s;\n"
                "    ssl_certificate %s;\n    ssl_certificate_key %s;\n"
                "    ssl_protocols TLSv1.2 TLSv1.3;\n"
                "    location / { return 200 \"ok\\n\"; }\n  }\n}\n"
                % (d, d, main, d, d, d, d, d, port, world.certs["rsa"], keys["rsa"], world.certs["ec"], keys["ec"]))
    p = world.procs.start(name, ["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "logs", "error.log")],
                          env=env, cpu=SERVER_CPU)
    p.errlog = os.path.join(d, "logs", "error.log")
    try:
        wait_port(port, p)
    except Unavailable as e:
        raise Unavailable("%s; error.log: %s" % (e, tail(open(p.errlog, errors="replace").read()
                                                          if os.path.exists(p.errlog) else "", 2)))
    return port, [p]


def start_tlsd(world, name, placement):
    """tlsd (1 worker) and its keyd on SERVER_CPU, sp_sink as the backend
    on the generator's CPU (one epoll loop that reads until EOF: nginx has
    no backend, and a forking one made the rows measure its fork on the
    generator's core). placement: soft | softhsm | double."""
    for prog in ("tlsd", "keyd", "sp_sink"):
        try:
            spfix.bin_path(prog)
        except FileNotFoundError:
            raise Unavailable("%s not built in %s" % (prog, BUILDDIR))
    d = os.path.join(world.tmp, name)
    os.makedirs(d)
    confdir = os.path.join(d, "conf")
    shutil.copytree(world.pki.certdb, os.path.join(confdir, "certdb"))
    env = dict(os.environ)
    extra = ""
    if placement == "soft":
        shutil.copy2(world.pki.pinfile, os.path.join(confdir, "sslpassword.conf"))
    else:
        tok = world.softhsm()
        module = SOFTHSM_MODULE
        env["SOFTHSM2_CONF"] = tok["conf"]
        if placement == "double":
            module = os.path.join(BUILDDIR, "lib", "p11_testdouble.so")
            if not os.path.exists(module):
                raise Unavailable("%s not built" % module)
            env["SP_P11DOUBLE_CONF"] = world.double_conf()
        with open(os.path.join(confdir, "pkcs11-modules.conf"), "w") as f:
            f.write("bench = %s\n" % module)
        # the certdb's key locators point at the token (certdb/certdb.h format)
        idx = os.path.join(confdir, "certdb", "index")
        lines = []
        for line in open(idx).read().splitlines():
            f_ = line.split("\t")
            if f_[0] == "cert" and f_[1] in ("Server-Cert", "Server-Cert-EC"):
                obj = tok["objects"]["rsa" if f_[1] == "Server-Cert" else "ec"]
                f_[3] = "pkcs11:token=%s;object=%s;type=private" % (TOKEN_LABEL, obj)
            lines.append("\t".join(f_))
        with open(idx, "w") as f:
            f.write("\n".join(lines) + "\n")
        fd = os.open(os.path.join(confdir, "sslpassword.conf"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("%s:%s\n%s:%s\n" % (spfix.INTERNAL_TOKEN, spfix.PKI.PASSPHRASE, TOKEN_LABEL, TOKEN_PIN))
        extra = "pkcs11.p11kit_modules = no\n"
    os.chmod(os.path.join(confdir, "sslpassword.conf"), 0o600)
    port, backend_port = free_port(), free_port()
    conf = os.path.join(d, "sealpost.conf")
    with open(conf, "w") as f:
        f.write("confdir = %s\nuser = root\ngroup = root\nlog.level = warn\n"
                "tlsd.workers = 1\nkeyd.threads = 1\ntlsd.pidfile = %s/tlsd.pid\n"
                "tlsd.handoff_socket = %s/handoff.sock\n"
                "service.smtp.sslport = %d\nservice.smtp.listen = 127.0.0.1\n"
                "service.smtp.backend = 127.0.0.1:%d\n"
                "service.smtp.sslnicknames = Server-Cert, Server-Cert-EC\n%s"
                % (confdir, d, d, port, backend_port, extra))
    smtpd = world.procs.start(name + "-backend", [spfix.bin_path("sp_sink"), "-P", backend_port],
                              cpu=GEN_CPU)
    wait_port(backend_port, smtpd)
    p = world.procs.start(name, [spfix.bin_path("tlsd"), "-c", conf, "-f"], env=env, cpu=SERVER_CPU)
    wait_port(port, p)
    return port, [p, smtpd]


# ---------------------------------------------------------------- measuring

def hsbench(world, port, scen_flags, conc, seconds, label, count=None):
    """One hsbench run. A probe (count given) verifies the server's chain and
    name; measured runs do not (--no-verify): the probe already checked the
    same server, and the generator's CPU is the scarcer side on 2 cores."""
    out = os.path.join(world.tmp, "hsbench-%s.json" % label.replace(" ", "_").replace("/", "_"))
    argv = [spfix.bin_path("hsbench"), "-q", "-c", conc, "--json", out,
            "--sni", "localhost", "--groups", "X25519", "--label", label, "--timeout", "10000"]
    if count:
        argv += ["-n", count, "-t", "30", "--cafile", world.pki.ca_crt]
    else:
        argv += ["-t", seconds, "--no-verify"]
    if GEN_CPU is not None and os.cpu_count() and os.cpu_count() > GEN_CPU:
        argv += ["--cpu", GEN_CPU]
    argv += list(scen_flags) + ["127.0.0.1:%d" % port]
    before = cpu_times()
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=(seconds if not count else 30) + 60)
    after = cpu_times()
    if not os.path.exists(out):
        raise Unavailable("hsbench wrote no report (rc %d): %s" % (r.returncode, tail(r.stdout)))
    with open(out) as f:
        rep = json.load(f)
    os.unlink(out)
    rep["server_core_busy"] = core_busy(before, after, SERVER_CPU)
    rep["gen_core_busy"] = core_busy(before, after, GEN_CPU)
    return rep


def top_failure(rep):
    by = rep["failures"]["by_reason"]
    if not by:
        return "no handshake and no failure?"
    k = max(by, key=by.get)
    return "%s (%d of %d)" % (k, by[k], rep["failures"]["total"])


def measure(world, port, scen, procs_of_row):
    """Probe, then RUNS x SECONDS; medians."""
    sid, title, flags, _ = scen
    probe = hsbench(world, port, flags, 1, None, "probe " + sid, count=4)
    if probe["handshakes"] == 0:
        why = "handshakes fail: " + top_failure(probe)
        logs = "; ".join(filter(None, (read_log(p, 2, r" (err|crit|alert|emerg) ") or read_log(p, 2, r" warn ")
                                       for p in procs_of_row)))
        raise Unavailable(why + (("; log: " + logs) if logs else ""))
    # the row must measure what it says: the key type and version asked for
    want_key = "EC-256" if sid.startswith("ec") else "RSA-2048"
    want_ver = "TLSv1.2" if sid.endswith("12") else "TLSv1.3"
    neg = probe["negotiated"] or {}
    if neg.get("server_key") != want_key or neg.get("version") != want_ver:
        raise Unavailable("server negotiated %s with a %s key, not %s with %s" % (
            neg.get("version"), neg.get("server_key"), want_ver, want_key))
    reps = [hsbench(world, port, flags, CONCURRENCY, SECONDS, "%s run %d" % (sid, i)) for i in range(RUNS)]
    return summarise(reps)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(reps):
    return {
        "hs_per_s": med([r["handshakes_per_s"] for r in reps]),
        "runs_hs_per_s": [r["handshakes_per_s"] for r in reps],
        "p50_ms": med([r["latency_ms"]["total"]["p50"] for r in reps]),
        "p99_ms": med([r["latency_ms"]["total"]["p99"] for r in reps]),
        "failures": sum(r["failures"]["total"] for r in reps),
        "failure_reasons": sorted({k for r in reps for k in r["failures"]["by_reason"]}),
        "gen_cpu": med([r["cpu"]["utilisation"] for r in reps]),
        "gen_bound": any(r["cpu"]["generator_bound"] for r in reps),
        "gen_core_busy_flag": any((r["gen_core_busy"] or 0) > GEN_BOUND_CORE for r in reps),
        "server_core_busy": med([r["server_core_busy"] for r in reps]),
        "gen_core_busy": med([r["gen_core_busy"] for r in reps]),
        "negotiated": reps[0]["negotiated"],
    }


def openssl_speed(alg):
    """sign/s of one core, `openssl speed -seconds 3 ALG` on SERVER_CPU."""
    r = run(["taskset", "-c", SERVER_CPU, "openssl", "speed", "-seconds", "3", alg], timeout=60)
    if alg == "rsa2048":
        m = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", r.stdout, re.M)
    else:
        m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", r.stdout)
    if not m:
        raise Unavailable("cannot parse openssl speed %s: %s" % (alg, tail(r.stdout)))
    return float(m.group(1))


# ---------------------------------------------------------------- the run

def fmt(v, f="%.1f"):
    return "-" if v is None else f % v


def table(results, ceilings, meta):
    lines = []
    lines.append("Sealpost handshake benchmark, %s" % meta["date"])
    lines.append("host: %s; load before: %s, after the rows: %s (the rows' own server and hsbench count "
                 "there); server on CPU %s, hsbench on CPU %s" % (
                     meta["host"], meta["load"], meta.get("load_after", "-"), SERVER_CPU, GEN_CPU))
    # both pinned cores are busy during the rows, so the load after them is
    # mostly the benchmark itself: the load found before says other work ran
    if float(meta["load"].split()[0]) > 1.0:
        lines.append("WARNING: the machine was busy with other work before the run (1-min load > 1 on the "
                     "benchmark's 2 cores): the rows are noisy; run again on a quiet machine before quoting them")
    lines.append("full handshakes (no resumption), X25519, %d connections in flight, median of %d x %.0f s; "
                 "latency: TCP connect start to handshake done" % (CONCURRENCY, RUNS, SECONDS))
    lines.append("ceiling: `openssl speed -seconds 3` private-key sign/s on one core (a full handshake needs one)")
    lines.append("the client verifies the chain and name in a probe before each row, not in the measured runs")
    lines.append("")
    hdr = "%-20s %-40s %9s %8s %8s %6s %8s %8s %6s %6s" % (
        "scenario", "server", "hs/s", "p50 ms", "p99 ms", "fails", "/nginx", "/ceiling", "srv%", "gen%")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    said = set()
    for sid, title, _, alg in SCENARIOS:
        ceil = ceilings.get(alg)
        if isinstance(ceil, float):
            lines.append("%-20s %-40s %9.1f" % (title, "openssl speed %s sign/s" % alg, ceil))
        elif ceil is not None:
            lines.append("%-20s %-40s not available: %s" % (title, "openssl speed %s" % alg, ceil))
        base = results.get(("nginx-file", sid))
        base_v = base["hs_per_s"] if isinstance(base, dict) else None
        first = ceil is None
        for rid, rtitle in SERVERS:
            res = results.get((rid, sid))
            if res is None:
                continue
            stitle, first = (title if first else ""), False
            if isinstance(res, str):
                if res in said:
                    res = "(as above)"
                else:
                    said.add(res)
                    res = res if len(res) < 240 else res[:237] + "..."
                lines.append("%-20s %-40s not available: %s" % (stitle, rtitle, res))
                continue
            v = res["hs_per_s"]
            lines.append("%-20s %-40s %9.1f %8s %8s %6d %8s %8s %6s %6s%s" % (
                stitle, rtitle, v, fmt(res["p50_ms"], "%.2f"), fmt(res["p99_ms"], "%.2f"), res["failures"],
                fmt(v / base_v if base_v else None, "%.2f"),
                fmt(v / ceil if isinstance(ceil, float) and ceil else None, "%.2f"),
                fmt(res["server_core_busy"] * 100 if res["server_core_busy"] is not None else None, "%.0f"),
                fmt(res["gen_cpu"] * 100 if res["gen_cpu"] is not None else None, "%.0f"),
                "  GENERATOR-BOUND" if res["gen_bound"] else
                "  GEN-CORE-BUSY" if res["gen_core_busy_flag"] else ""))
    lines.append("")
    lines.append("srv%: busy share of the server's CPU; gen%: hsbench's own CPU time / wall (one core).")
    lines.append("tlsd relays every connection to a backend (sp_sink, one epoll loop reading to EOF, on the")
    lines.append("generator's CPU, PROXY v2);")
    lines.append("nginx answers by itself. Both send TLS 1.3 session tickets; no client resumes.")
    if any(r == "nginx-softhsm" for r, _ in results):
        lines.append("nginx + SoftHSM2: the token PIN is in nginx.conf (pin-value=) because the libp11 engine")
        lines.append("takes it there; that file lives only in this run's 0700 temp dir, removed at the end:")
        lines.append("acceptable for the benchmark's throwaway token, never for a real one.")
    bound = [(r, s) for (r, s), v in results.items() if isinstance(v, dict) and v["gen_bound"]]
    busy = [(r, s) for (r, s), v in results.items() if isinstance(v, dict) and v["gen_core_busy_flag"]
            and not v["gen_bound"]]
    if bound:
        lines.append("GENERATOR-BOUND (hsbench used > 90%% of its core): %s. Those rates are the generator's "
                     "limit, a lower bound for the server: compare them with care." % ", ".join("%s/%s" % x for x in bound))
    if busy:
        lines.append("GEN-CORE-BUSY (hsbench's core > %.0f%% busy: hsbench, the kernel's loopback work for it, "
                     "or other processes): %s. The generator may have been the limit; on a quiet machine "
                     "this means the generator side of loopback TCP+TLS is as costly as the server's." % (
                         GEN_BOUND_CORE * 100, ", ".join("%s/%s" % x for x in busy)))
    measured = [v for v in results.values() if isinstance(v, dict)]
    if measured and not bound and not busy:
        lines.append("generator check: hsbench stayed below 90%% of its core and its core below %.0f%% busy "
                     "in every row: the servers were the limit." % (GEN_BOUND_CORE * 100))
    return "\n".join(lines) + "\n"


def sweep(world, procs, outdir):
    """hs/s and p99 against connections in flight, RSA-2048 TLS 1.3, keys
    behind the test double (2 ms per sign, 8 engines): tlsd (async key
    operations) and nginx (libp11 engine, a blocking sign per handshake)."""
    scen = SCENARIOS[0]
    series, notes = {}, []
    double = os.path.join(BUILDDIR, "lib", "p11_testdouble.so")
    for sid, start in (("tlsd", lambda: start_tlsd(world, "sweep-tlsd", "double")),
                       ("nginx", lambda: start_nginx(world, "sweep-nginx", token_module=double))):
        try:
            if not os.path.exists(double):
                raise Unavailable("%s not built" % double)
            port, ps = start()
            try:
                probe = hsbench(world, port, scen[2], 1, None, "probe sweep " + sid, count=4)
                if probe["handshakes"] == 0:
                    raise Unavailable("handshakes fail: " + top_failure(probe))
                pts = []
                for c in SWEEP_LEVELS:
                    rep = hsbench(world, port, scen[2], c, SWEEP_SECONDS, "sweep %s c=%d" % (sid, c))
                    pts.append((c, rep["handshakes_per_s"], rep["latency_ms"]["total"]["p99"],
                                rep["failures"]["total"], rep["cpu"]["generator_bound"]))
                    log("sweep %s c=%d: %.1f hs/s p99 %.1f ms" % (sid, c, pts[-1][1], pts[-1][2]))
                series[sid] = pts
            finally:
                for p in ps:
                    procs.stop(p)
        except Unavailable as e:
            notes.append("sweep %s: not available: %s" % (sid, e))
    if not series:
        return [""] + notes, None
    dat = os.path.join(outdir, "sweep.dat")
    with open(dat, "w") as f:
        f.write("# connections tlsd_hs_s tlsd_p99_ms nginx_hs_s nginx_p99_ms ('?' = not measured)\n")
        for c in SWEEP_LEVELS:
            row = [str(c)]
            for sid in ("tlsd", "nginx"):
                pt = next((p for p in series.get(sid, []) if p[0] == c), None)
                row += ["%.1f" % pt[1], "%.2f" % pt[2]] if pt else ["?", "?"]
            f.write(" ".join(row) + "\n")
    lines = ["", "Concurrency sweep, %s, key behind the PKCS#11 test double (%d us per sign, %d engines; "
             "ceiling %d signs/s), %.0f s per point:" % (scen[1], DOUBLE_LATENCY_US, DOUBLE_ENGINES,
                                                        DOUBLE_ENGINES * 1000000 // DOUBLE_LATENCY_US, SWEEP_SECONDS),
             "%12s %14s %12s %14s %12s" % ("in flight", "tlsd hs/s", "tlsd p99", "nginx hs/s", "nginx p99")]
    for c in SWEEP_LEVELS:
        cells = ["%12d" % c]
        for sid in ("tlsd", "nginx"):
            pt = next((p for p in series.get(sid, []) if p[0] == c), None)
            cells += ["%14.1f" % pt[1], "%12.2f" % pt[2]] if pt else ["%14s" % "-", "%12s" % "-"]
        lines.append(" ".join(cells))
    png = None
    if shutil.which("gnuplot"):
        gp = os.path.join(outdir, "sweep.gp")
        plots = []
        col = {"tlsd": (2, 3, "#1f60b4"), "nginx": (4, 5, "#c0392b")}
        ceiling = DOUBLE_ENGINES * 1000000 // DOUBLE_LATENCY_US
        for sid in ("tlsd", "nginx"):
            if sid in series:
                plots.append("'sweep.dat' using 1:%d axes x1y1 with linespoints lw 3 pt 7 lc rgb '%s' "
                             "title '%s handshakes/s'" % (col[sid][0], col[sid][2], sid))
                plots.append("'sweep.dat' using 1:%d axes x1y2 with linespoints lw 1 pt 4 lc rgb '%s' "
                             "title '%s p99 latency (ms, right axis)'" % (col[sid][1], col[sid][2], sid))
        top = max(p[1] for pts in series.values() for p in pts)
        if top > ceiling / 3:   # otherwise the line only flattens the curves
            plots.append("%d axes x1y1 with lines lw 1 lc rgb '#888888' title 'test double ceiling (%d engines / %d us)'"
                         % (ceiling, DOUBLE_ENGINES, DOUBLE_LATENCY_US))
            yrange = "[0:%d]" % (ceiling * 1.15)
        else:
            yrange = "[0:*]"
        with open(gp, "w") as f:
            f.write("set terminal png size 1000,600\nset output 'sweep.png'\nset datafile missing '?'\n"
                    "set title \"%s full handshakes vs connections in flight\\nkey behind the PKCS#11 test double (%d us per sign, %d engines)\"\n"
                    "set logscale x 2\nset xlabel 'connections in flight'\nset ylabel 'handshakes/s'\n"
                    "set y2label 'p99 latency (ms)'\nset y2tics\nset ytics nomirror\nset yrange %s\n"
                    "set y2range [0:*]\nset key top left\nset grid\nplot %s\n" % (scen[1], DOUBLE_LATENCY_US, DOUBLE_ENGINES, yrange,
                                                                ", \\\n  ".join(plots)))
        r = subprocess.run(["gnuplot", "sweep.gp"], cwd=outdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        if r.returncode == 0 and os.path.exists(os.path.join(outdir, "sweep.png")):
            png = os.path.join(outdir, "sweep.png")
            lines.append("chart: %s" % png)
        else:
            lines.append("chart: not drawn: gnuplot failed: %s" % tail(r.stdout))
    else:
        lines.append("chart: not drawn: gnuplot not installed (Debian: gnuplot-nox)")
    return lines[:2] + notes + lines[2:], series


def main():
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        log("only %d CPU: server and generator share it; the numbers are not comparable" % ncpu)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(OUT_BASE, stamp)
    os.makedirs(outdir, exist_ok=True)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    meta = {"date": stamp, "host": "%s, %d CPUs, %s" % (os.uname().nodename, ncpu,
                                                         run(["openssl", "version"]).stdout.strip()),
            "load": load, "runs": RUNS, "seconds": SECONDS, "concurrency": CONCURRENCY,
            "server_cpu": SERVER_CPU, "gen_cpu": GEN_CPU, "quick": QUICK}
    if float(load.split()[0]) > 0.5 * ncpu:
        log("the machine is busy (load %s): numbers will be noisy" % load)
    tmp = tempfile.mkdtemp(prefix="sp-bench-")
    os.chmod(tmp, 0o700)
    procs = Procs(tmp)
    results, ceilings, notes = {}, {}, []
    try:
        try:
            spfix.bin_path("hsbench")
        except FileNotFoundError as e:
            log(str(e))
            return 1
        log("making the test PKI in %s" % tmp)
        world = World(tmp, procs)
        if want("speed"):
            for alg in sorted({s[3] for s in SCENARIOS}):
                log("openssl speed %s on CPU %d" % (alg, SERVER_CPU))
                try:
                    ceilings[alg] = openssl_speed(alg)
                except Unavailable as e:
                    ceilings[alg] = str(e)
        starters = {
            "nginx-file": lambda: start_nginx(world, "nginx-file"),
            "nginx-softhsm": lambda: start_nginx(world, "nginx-softhsm", token_module=SOFTHSM_MODULE),
            "tlsd-soft": lambda: start_tlsd(world, "tlsd-soft", "soft"),
            "tlsd-softhsm": lambda: start_tlsd(world, "tlsd-softhsm", "softhsm"),
            "tlsd-double": lambda: start_tlsd(world, "tlsd-double", "double"),
        }
        for rid, rtitle in SERVERS:
            if not want(rid):
                continue
            log("%s" % rtitle)
            try:
                port, ps = starters[rid]()
            except Unavailable as e:
                for scen in SCENARIOS:
                    results[(rid, scen[0])] = str(e)
                continue
            try:
                for scen in SCENARIOS:
                    try:
                        results[(rid, scen[0])] = measure(world, port, scen, ps)
                        r = results[(rid, scen[0])]
                        log("  %s: %.1f hs/s (runs %s)" % (scen[1], r["hs_per_s"],
                                                            ", ".join("%.0f" % v for v in r["runs_hs_per_s"])))
                    except Unavailable as e:
                        results[(rid, scen[0])] = str(e)
                        log("  %s: not available: %s" % (scen[1], e))
            finally:
                for p in ps:
                    procs.stop(p)
        with open("/proc/loadavg") as f:
            meta["load_after"] = " ".join(f.read().split()[:3])
        text = table(results, ceilings, meta)
        if want("sweep"):
            log("concurrency sweep")
            sweep_lines, series = sweep(world, procs, outdir)
            text += "\n".join(sweep_lines) + "\n"
        else:
            series = None
        sys.stdout.write(text)
        with open(os.path.join(outdir, "results.txt"), "w") as f:
            f.write(text)
        with open(os.path.join(outdir, "results.json"), "w") as f:
            json.dump({"meta": meta, "ceilings_sign_per_s": ceilings,
                       "rows": [{"server": r, "scenario": s, "result": v} for (r, s), v in results.items()],
                       "sweep": series}, f, indent=2)
        print("results: %s" % outdir)
        return 0
    finally:
        procs.stop_all()
        if os.environ.get("BENCH_KEEP") == "1":
            log("kept %s (BENCH_KEEP=1; it holds the benchmark token's PIN: remove it)" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
