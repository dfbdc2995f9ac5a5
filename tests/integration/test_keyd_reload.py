"""tlsd's SIGHUP reloads keyd in place (KEYD_CTL_RELOAD) instead of
restarting it: handshakes in flight during reloads all complete; a key added
to the certdb is served after the reload; a broken key is refused with a log
line and the running key set stays."""

import signal
import threading

import spfix
from test_tlsd_env import tlsd_factory  # noqa: F401
from test_keyd_env import KeydSetup, handshake, handshakes, token, TOKEN  # noqa: F401


def test_sighup_during_handshakes_loses_none(tlsd_factory, tmp_path, pki, token):
    k = KeydSetup(tlsd_factory, tmp_path, pki, token)
    k.add_token_cert("Tok-EC", "Tok-EC", token.keygen("Tok-EC", "ec", "01"))
    k.conf("Server-Cert, Server-Cert-EC, %s:Tok-EC" % TOKEN)
    k.start()
    sent = []

    def progress(done):
        if done in (100, 250, 400):
            k.t.tlsd.signal(signal.SIGHUP)
            sent.append(done)

    failed, _ = handshakes(k.t.port, 600, pki.ca_crt, threads=4, on_progress=progress)
    assert failed == 0 and len(sent) == 3
    k.t.tlsd.wait_log("event=keys_reload_done", count=3)
    k.t.tlsd.wait_log("event=reload_done", count=3)
    # the same keyd all along
    assert len(k.t.pids("keyd")) == 1
    assert "retired=yes" not in k.log()


def test_reload_adds_a_token_key_and_refuses_a_broken_one(tlsd_factory, tmp_path, pki, token):
    k = KeydSetup(tlsd_factory, tmp_path, pki, token)
    k.conf("Server-Cert-EC")
    k.start()
    assert "event=pkcs11_init" not in k.log()  # no token key yet: PKCS#11 untouched
    k.add_token_cert("Tok-EC", "Tok-EC", token.keygen("Tok-EC", "ec", "01"))
    k.conf("%s:Tok-EC" % TOKEN)
    k.t.tlsd.signal(signal.SIGHUP)
    k.t.tlsd.wait_log("event=keys_reload_done")
    k.t.tlsd.wait_log("event=reload_done")
    assert handshake(k.t.port, cafile=pki.ca_crt)[0]
    assert k.backend("pkcs11:" + TOKEN)["completed"] >= 1
    # a certificate whose key is not on the token: refused, old set stays
    stray = str(tmp_path / "stray.key")
    spfix.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-out", stray])
    spfix.run(["openssl", "pkey", "-in", stray, "-pubout", "-out", stray + ".pub"])
    k.add_token_cert("Broken", "Nope", stray + ".pub")
    k.t.tlsd.signal(signal.SIGHUP)
    k.t.tlsd.wait_log("event=keys_reload_refused")
    assert "no private key" in k.log()
    assert handshake(k.t.port, cafile=pki.ca_crt)[0]
    assert len(k.t.pids("keyd")) == 1
