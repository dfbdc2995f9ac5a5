"""keyd's scheduling under a failing token, through the PKCS#11 test double
(lib/p11_testdouble.so over SoftHSM2):
 - NCP placement (keyd.accelerator): the software key Server-Cert-EC is also
   a session object in the accelerator token; 2,000 handshakes while the
   double fails every 3rd operation, then every operation: none is lost (the
   software copy takes over), the accelerator is marked down, probed, and
   traffic returns to it afterwards (counters).
 - a token-only key whose token hangs or fails: each handshake ends within
   the deadline, the backend goes down, operations then fail at once; after
   the token recovers, a probe brings it back."""

import time

import spfix
from test_tlsd_env import tlsd_factory  # noqa: F401
from test_keyd_env import KeydSetup, handshake, handshakes, token, TOKEN  # noqa: F401

BE = "pkcs11:" + TOKEN
FAST = ("keyd.op_deadline = 300ms\nkeyd.down_after = 5\nkeyd.probe_interval = 200ms\n"
        "pkcs11.sessions = 4\n")


def test_ncp_fallback_loses_no_handshake(tlsd_factory, tmp_path, pki, token):
    k = KeydSetup(tlsd_factory, tmp_path, pki, token, double=True)
    k.set_double(latency_us=200)
    k.conf("Server-Cert-EC", FAST + "keyd.accelerator = %s\n" % TOKEN)
    k.start()
    assert 'nickname="Server-Cert-EC"' in k.log() and "placement=accelerator,soft" in k.log()
    keys = {x["nickname"]: x for x in k.keydctl()["keys"]}
    assert keys["Server-Cert-EC"]["placements"] == [BE, "soft"]

    phases = {300: dict(latency_us=200, fail_every=3), 900: dict(fail_all="yes"),
              1500: dict(latency_us=200)}

    def progress(done):
        if done in phases:
            k.set_double(**phases[done])

    failed, _ = handshakes(k.t.port, 2000, pki.ca_crt, threads=4, on_progress=progress)
    assert failed == 0
    log = k.log()
    assert 'event=backend_down backend="%s"' % BE in log
    k.t.tlsd.wait_log('event=backend_up backend="%s"' % BE)
    before = k.backend(BE)
    assert before["fellback"] > 0 and before["failed"] > 0
    assert k.backend("soft")["completed"] > 0
    # traffic returns to the accelerator
    failed, _ = handshakes(k.t.port, 100, pki.ca_crt, threads=2)
    assert failed == 0
    after = k.backend(BE)
    assert after["state"] == "up"
    assert after["completed"] - before["completed"] >= 95
    key = {x["nickname"]: x for x in k.keydctl()["keys"]}["Server-Cert-EC"]
    assert key["failed"] == 0 and key["fellback"] > 0


def token_only(tlsd_factory, tmp_path, pki, token):
    k = KeydSetup(tlsd_factory, tmp_path, pki, token, double=True)
    k.add_token_cert("Tok-EC", "Tok-EC", token.keygen("Tok-EC", "ec", "01"))
    k.conf("%s:Tok-EC" % TOKEN, FAST)
    return k.start()


def test_token_only_key_hung_token_fails_cleanly_then_recovers(tlsd_factory, tmp_path, pki, token):
    k = token_only(tlsd_factory, tmp_path, pki, token)
    assert handshake(k.t.port, cafile=pki.ca_crt)[0]
    k.set_double(hang="yes", hang_max_s=30)
    # each handshake fails at the deadline (300 ms), none waits for the token
    failed, slowest = handshakes(k.t.port, 12, pki.ca_crt, threads=2)
    assert failed == 12 and slowest < 3.0
    k.t.tlsd.wait_log('event=backend_down backend="%s"' % BE)
    # down: refused at once, no deadline to wait for
    ok, secs = handshake(k.t.port, cafile=pki.ca_crt)
    assert not ok and secs < 1.0
    assert k.backend(BE)["timeouts"] >= 5
    k.set_double()
    k.t.tlsd.wait_log('event=backend_up backend="%s"' % BE, timeout=20)
    assert handshake(k.t.port, cafile=pki.ca_crt)[0]


def test_token_only_key_failing_token_then_recovers(tlsd_factory, tmp_path, pki, token):
    k = token_only(tlsd_factory, tmp_path, pki, token)
    k.set_double(fail_all="yes")
    failed, slowest = handshakes(k.t.port, 10, pki.ca_crt, threads=2)
    assert failed == 10 and slowest < 3.0
    k.t.tlsd.wait_log('event=backend_down backend="%s"' % BE)
    be = k.backend(BE)
    assert be["state"] == "down" and be["probes"] >= 0
    k.set_double()
    k.t.tlsd.wait_log('event=backend_up backend="%s"' % BE, timeout=20)
    failed, _ = handshakes(k.t.port, 20, pki.ca_crt, threads=2)
    assert failed == 0
    assert k.backend(BE)["state"] == "up"
