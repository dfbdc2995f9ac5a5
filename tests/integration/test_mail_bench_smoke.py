"""Mail benchmark smoke test: bench/mail_bench.py (`make bench-mail`) runs
a tiny version end to end against real servers (mailcore, a private
Postfix, a private Dovecot): 2 smtp-source sessions x 20 messages, a
50-message mailbox, 5 idle IMAP connections. It checks that the run exits
0, that its JSON holds the counts (every message delivered, EXISTS and
FETCH counts right, PSS read) and no failure, and that the table prints.
No speed is asserted: benchmarks report, tests do not judge them."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import spfix

SESSIONS, MESSAGES, MAILBOX, FETCH, IDLE = 2, 20, 50, 10, 5


def missing_peer():
    if shutil.which("postfix") is None or not os.path.exists("/usr/lib/postfix/sbin/master"):
        return "postfix not installed (scripts/install-deps.sh installs it for make bench-mail)"
    if shutil.which("dovecot") is None or not os.path.exists("/usr/lib/dovecot/imap"):
        return "dovecot-imapd not installed (scripts/install-deps.sh installs it for make bench-mail)"
    if not os.access("/usr/sbin/smtp-source", os.X_OK) and \
            not os.access("/var/cache/sealpost-test/postfix/usr/sbin/smtp-source", os.X_OK):
        return "smtp-source not found"
    return None


@pytest.fixture
def mailcore_built():
    try:
        spfix.bin_path("mailcore")
    except FileNotFoundError as e:
        pytest.fail(str(e))


@pytest.mark.skipif(missing_peer() is not None, reason=missing_peer() or "")
def test_mail_bench_tiny_run(tmp_path, mailcore_built):
    env = dict(os.environ, SP_BUILDDIR=spfix.BUILDDIR, SP_SRCDIR=spfix.SRCDIR, BENCH_OUT=str(tmp_path),
               BENCH_MAIL_SESSIONS=str(SESSIONS), BENCH_MAIL_MESSAGES=str(MESSAGES), BENCH_MAIL_SIZE="2048",
               BENCH_MAIL_RUNS="2", BENCH_MAIL_MAILBOX=str(MAILBOX), BENCH_MAIL_FETCH=str(FETCH),
               BENCH_MAIL_REPS="2", BENCH_MAIL_COLD_RUNS="2", BENCH_MAIL_IDLE=str(IDLE))
    env.pop("BENCH_QUICK", None)
    env.pop("BENCH_MAIL_ROWS", None)
    r = subprocess.run([sys.executable, os.path.join(spfix.SRCDIR, "bench", "mail_bench.py")], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert r.returncode == 0, r.stdout
    (outdir,) = [p for p in tmp_path.iterdir() if p.name.startswith("mail-")]
    with open(outdir / "results.json") as f:
        rep = json.load(f)   # raises if not well formed
    assert rep["failures"] == [], rep["failures"]
    meta = rep["meta"]
    assert (meta["sessions"], meta["messages"], meta["mailbox"], meta["idle"]) == (SESSIONS, MESSAGES, MAILBOX, IDLE)
    assert any(v.startswith("Postfix ") for v in meta["versions"]), meta["versions"]
    assert any(v.startswith("Dovecot ") for v in meta["versions"]), meta["versions"]

    for side in ("sealpost", "postfix"):
        s = rep["smtp"][side]
        assert isinstance(s, dict), "%s: %s" % (side, s)
        assert len(s["runs"]) == 2
        for run in s["runs"]:
            assert run["delivered"] == MESSAGES
            assert 0 < run["accepted_s"] <= run["delivered_s"]
        assert s["accepted_msg_per_s"] > 0 and s["delivered_msg_per_s"] > 0
    # mailcore answers 250 only once the message is fsynced into new/
    assert all(run["in_new_at_exit"] == MESSAGES for run in rep["smtp"]["sealpost"]["runs"])

    for side in ("sealpost", "dovecot"):
        s = rep["imap"][side]
        assert isinstance(s, dict), "%s: %s" % (side, s)
        assert s["exists"] == MAILBOX and s["fetches"] == FETCH
        assert s["body_bytes"] > FETCH * 500
        assert len(s["select_cold_runs_ms"]) == 2 and len(s["fetch_body_runs_ms"]) == 2
        for k in ("select_cold_ms", "select_warm_ms", "fetch_envelope_ms", "fetch_body_ms"):
            assert s[k] > 0, k
        idle = s["idle"]
        assert idle["connections"] == IDLE
        assert idle["pss_before_kb"] > 0 and idle["pss_after_kb"] > 0
        assert idle["procs_before"] >= 1
    # Dovecot serves each logged-in connection from an imap process of its own
    assert rep["imap"]["dovecot"]["idle"]["procs_after"] >= rep["imap"]["dovecot"]["idle"]["procs_before"] + IDLE

    for text in ("SMTP (issue 7)", "IMAP (issue 8)", "Memory per idle IMAP connection", "load average before",
                 "taskset -c"):
        assert text in r.stdout, text
    assert "FAILED" not in r.stdout
    assert (outdir / "results.txt").exists()
