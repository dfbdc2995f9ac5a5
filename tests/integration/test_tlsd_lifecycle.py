"""tlsd's life: SIGHUP reloads certificates (new connections see the new one,
established ones go on) and refuses a broken configuration (the old one
stays); SIGTERM stops accepting, lets open connections finish, stops keyd
last and exits 0 with nothing left behind."""

import os
import shutil
import signal

import spfix
from test_tlsd_env import s_client, tlsd, tlsd_factory  # noqa: F401 (fixtures)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def subject_cn(t):
    rc, out = s_client(t.port, data=b"QUIT\r\n")
    assert rc == 0, out
    return "CN = other.example.com" if "CN = other.example.com" in out else \
        ("CN = localhost" if "CN = localhost" in out else out)


def test_sighup_new_certificate_keeps_established_connections(tlsd_factory):
    t = tlsd_factory(copy_certdb=True)
    t.write_conf(nicknames="Server-Cert")
    t.start()
    assert subject_cn(t) == "CN = localhost"
    s, f = t.connect()  # established before the reload
    # renew Server-Cert in place: new certificate, new key
    db = os.path.join(t.confdir, "certdb")
    shutil.copy(os.path.join(t.pki.certdb, "certs", "Other-Cert.pem"), os.path.join(db, "certs", "Server-Cert.pem"))
    shutil.copy(os.path.join(t.pki.certdb, "keys", "Other-Cert.p8"), os.path.join(db, "keys", "Server-Cert.p8"))
    t.tlsd.signal(signal.SIGHUP)
    t.tlsd.wait_log("event=reload_done")
    assert "workers_ok=2 workers_failed=0" in t.log()
    spfix.wait_for(lambda: subject_cn(t) == "CN = other.example.com", timeout=10,
                   what="the new certificate")
    # the old connection still relays
    s.sendall(b"ECHO still here\r\n")
    assert f.readline() == b"250 still here\r\n"
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221")
    s.close()


def test_sighup_broken_config_is_refused(tlsd):
    good = open(tlsd.conf).read()
    for broken in ("this is not a config line\n",
                   good + "tlsd.no_such_key = 1\n",
                   good.replace("Server-Cert, ", "No-Such-Cert, "),
                   good + "tlsd.ssladjustciphersuites = NOTACIPHER\n"):
        with open(tlsd.conf, "w") as f:
            f.write(broken)
        n = tlsd.log().count("event=reload_refused")
        tlsd.tlsd.signal(signal.SIGHUP)
        tlsd.tlsd.wait_log("event=reload_refused", count=n + 1)
        assert subject_cn(tlsd) == "CN = localhost"
    assert "event=reload_done" not in tlsd.log()
    assert "No-Such-Cert" in tlsd.log() and "NOTACIPHER" in tlsd.log()


def test_sighup_changing_listeners_is_refused(tlsd):
    text = open(tlsd.conf).read().replace("sslport = %d" % tlsd.port, "sslport = %d" % (tlsd.port + 1))
    with open(tlsd.conf, "w") as f:
        f.write(text)
    tlsd.tlsd.signal(signal.SIGHUP)
    tlsd.tlsd.wait_log("event=reload_refused")
    assert "listeners change only on restart" in tlsd.log()


def test_sigterm_graceful_stop_leaves_nothing_behind(tlsd_factory):
    t = tlsd_factory(extra="tlsd.shutdown_timeout = 20s\n").start()
    assert open(t.pidfile).read().strip() == str(t.tlsd.pid())
    s, f = t.connect()
    children = t.pids("keyd") + t.pids("worker")
    assert len(children) == 3 and all(alive(p) for p in children)
    t.tlsd.signal(signal.SIGTERM)
    t.tlsd.wait_log("event=worker_stopping", count=2)
    # no new connections ...
    spfix.wait_for(lambda: not spfix.port_open(t.port), what="the listener to close")
    # ... but the open one finishes its session (its worker and keyd are still up)
    s.sendall(b"ECHO finishing\r\n")
    assert f.readline() == b"250 finishing\r\n"
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221")
    f.close()
    s.close()
    assert t.tlsd.proc.wait(15) == 0
    log = t.log()
    assert "event=stop" in log
    # keyd went last, after the workers
    assert log.rindex("proc=keyd") > max(log.rindex("proc=worker index=0"), log.rindex("proc=worker index=1"))
    for p in children:
        spfix.wait_for(lambda: not alive(p), timeout=5, what="child %d gone" % p)
    assert not os.path.exists(t.pidfile)
    assert not os.path.exists(t.handoff)


def test_shutdown_timeout_closes_lingering_connections(tlsd_factory):
    t = tlsd_factory(extra="tlsd.shutdown_timeout = 500ms\n").start()
    s, f = t.connect()
    t.tlsd.signal(signal.SIGTERM)
    assert t.tlsd.proc.wait(15) == 0
    assert "event=shutdown_deadline" in t.log()
    assert f.read() == b""  # closed by tlsd (close_notify) at the deadline
    s.close()


def test_bad_config_at_start_exits_with_a_clear_error(tlsd_factory, tmp_path):
    t = tlsd_factory()
    with open(t.conf, "a") as f:
        f.write("service.smtp.sslnicknames = Missing-Cert\n")
    r = spfix.run([spfix.bin_path("tlsd"), "-c", t.conf, "-f"], check=False, timeout=30)
    assert r.returncode == 1
    assert "sealpost.conf" in r.stdout  # duplicate key names file and line
