"""tlsd against bad input and failing parts: garbage and truncated records
instead of a ClientHello, a client that stalls mid-handshake, more
connections than the cap, keyd killed with handshakes in flight. In every
case tlsd logs it, closes only that connection, and keeps serving."""

import os
import signal
import socket
import subprocess
import time

import spfix
from test_tlsd_env import s_client, tlsd, tlsd_factory  # noqa: F401 (fixtures)


def client_hello_bytes(port_unused=None):
    """A real ClientHello, captured from Python's ssl through memory BIOs."""
    import ssl
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def ok_handshake(t):
    rc, out = s_client(t.port, "-CAfile", t.pki.ca_crt, "-verify_return_error", data=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0 and "221 2.0.0 bye" in out, out


def test_garbage_instead_of_client_hello(tlsd):
    for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\xff\xff" + b"A" * 300, os.urandom(2000)):
        c = socket.create_connection(("127.0.0.1", tlsd.port), timeout=10)
        c.sendall(junk)
        try:
            while c.recv(4096):
                pass
        except ConnectionResetError:
            pass
        c.close()
    tlsd.tlsd.wait_log("event=handshake_failed", count=3)
    ok_handshake(tlsd)
    assert "event=child_exit" not in tlsd.log()


def test_truncated_record(tlsd):
    hello = client_hello_bytes()
    for cut in (3, 20, len(hello) // 2):
        c = socket.create_connection(("127.0.0.1", tlsd.port), timeout=10)
        c.sendall(hello[:cut])
        c.shutdown(socket.SHUT_WR)
        try:
            while c.recv(4096):  # an alert or nothing, then EOF
                pass
        except ConnectionResetError:
            pass
        c.close()
    tlsd.tlsd.wait_log("reason=handshake_failed", count=3)
    ok_handshake(tlsd)


def test_stalled_handshake_times_out_while_the_worker_serves_others(tlsd_factory):
    t = tlsd_factory(workers=1, extra="tlsd.handshake_timeout = 1s\ntlsd.keyop_timeout = 500ms\n").start()
    hello = client_hello_bytes()
    stalled = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    stalled.sendall(hello[:len(hello) // 2])  # and then nothing
    ok_handshake(t)  # the one worker is not stuck on the stalled client
    t.tlsd.wait_log("event=handshake_timeout")
    try:
        assert stalled.recv(100) == b""
    except ConnectionResetError:
        pass
    stalled.close()
    ok_handshake(t)


def test_connection_cap(tlsd_factory):
    # debug: connections closed before a ClientHello (the start-up port
    # probe, the idle ones below) log their close only at that level
    t = tlsd_factory(workers=1, extra="tlsd.max_connections = 4\nlog.level = debug\n").start()
    t.tlsd.wait_log("event=conn_close", count=1)  # the start-up port probe is gone
    idle = [socket.create_connection(("127.0.0.1", t.port), timeout=10) for _ in range(4)]
    # the 5th is closed at once (the worker accepts in arrival order)
    extra = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    try:
        assert extra.recv(100) == b""
    except ConnectionResetError:
        pass
    extra.close()
    t.tlsd.wait_log("event=conn_limit")
    assert "max_connections=4" in t.log()
    for c in idle:
        c.close()
    t.tlsd.wait_log("event=conn_close", count=5)
    ok_handshake(t)


def test_keyd_killed_mid_handshake_then_restarted(tlsd_factory):
    t = tlsd_factory(workers=1, extra="tlsd.keyop_timeout = 20s\ntlsd.handshake_timeout = 30s\n").start()
    ok_handshake(t)
    keyd = t.pids("keyd")[-1]
    os.kill(keyd, signal.SIGSTOP)  # key operations now wait
    started = time.monotonic()
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % t.port, "-ign_eof"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # the handshake is in flight once tlsd has the ClientHello: the
    # established socket shows it
    spfix.wait_for(lambda: ":%d " % t.port in subprocess.run(
        ["ss", "-Htn", "state", "established"], stdout=subprocess.PIPE, text=True).stdout,
        what="the client's connection")
    os.kill(keyd, signal.SIGKILL)
    out, _ = p.communicate(b"QUIT\r\n", timeout=15)
    assert p.returncode != 0, out  # failed, promptly (not at the 20 s keyop timeout)
    assert time.monotonic() - started < 15
    assert b"221" not in out
    # the master restarts keyd and hands every worker a new channel
    spfix.wait_for(lambda: len(t.pids("keyd")) == 2, what="keyd restarted")
    t.tlsd.wait_log("event=keyd_channel worker=0 state=new")
    spfix.wait_for(lambda: _handshake_ok(t), timeout=10, what="a handshake after the restart")
    assert "proc=keyd" in t.log() and "event=child_restart proc=keyd" in t.log()


def _handshake_ok(t):
    rc, out = s_client(t.port, data=b"QUIT\r\n")
    return rc == 0 and "221 2.0.0 bye" in out


def test_worker_killed_is_restarted(tlsd):
    w = tlsd.pids("worker")[0]
    os.kill(w, signal.SIGKILL)
    spfix.wait_for(lambda: len(tlsd.pids("worker")) == 3, what="worker restarted")
    assert "event=child_restart proc=worker" in tlsd.log()
    tlsd.tlsd.wait_log("event=worker_start", count=3)
    ok_handshake(tlsd)


def test_port_probe_is_not_logged_as_a_failed_handshake(tlsd):
    """A connect and close without a byte (load balancers, readiness
    probes) is not a failed handshake; garbage still is, and its log line
    tells us the probe before it has been handled."""
    before = tlsd.log().count("event=handshake_failed")
    socket.create_connection(("127.0.0.1", tlsd.port), timeout=10).close()
    c = socket.create_connection(("127.0.0.1", tlsd.port), timeout=10)
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        c.shutdown(socket.SHUT_WR)  # tlsd may have refused and closed already
        while c.recv(4096):
            pass
    except (ConnectionResetError, OSError):
        pass
    c.close()
    tlsd.tlsd.wait_log("event=handshake_failed", count=before + 1)
    ok_handshake(tlsd)
    assert tlsd.log().count("event=handshake_failed") == before + 1
    assert "closed_before_hello" not in tlsd.log()  # debug level only
