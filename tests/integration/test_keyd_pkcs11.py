"""keyd with keys in a PKCS#11 token (SoftHSM2 through p11-kit's registry):
full TLS handshakes through tlsd with an ECDSA key generated on the token and
an RSA key imported into it, TLS 1.2 and 1.3, openssl s_client and Python
ssl; the token backend does the signatures (stats socket). A wrong PIN or a
loose PIN file stops keyd at start with a clear line, and tlsd does not
restart it (a wrong PIN is never retried)."""

import os
import re

import spfix
from test_tlsd_env import s_client, tlsd_factory  # noqa: F401
from test_keyd_env import KeydSetup, handshake, token, TOKEN  # noqa: F401

NICKS = "%s:Tok-RSA, %s:Tok-EC" % (TOKEN, TOKEN)


def token_setup(tlsd_factory, tmp_path, pki, token):
    k = KeydSetup(tlsd_factory, tmp_path, pki, token)
    k.add_token_cert("Tok-EC", "Tok-EC", token.keygen("Tok-EC", "ec", "01"))
    rsa = str(tmp_path / "imported-rsa.pem")
    spfix.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa])
    k.add_token_cert("Tok-RSA", "Tok-RSA", token.import_key("Tok-RSA", rsa, "02"))
    return k


def test_token_keys_rsa_and_ecdsa_tls12_tls13(tlsd_factory, tmp_path, pki, token):
    k = token_setup(tlsd_factory, tmp_path, pki, token)
    k.conf(NICKS)
    k.start()
    log = k.log()
    assert 'event=key_loaded nickname="Tok-EC" type=EC bits=256' in log and "placement=token" in log
    assert 'event=key_loaded nickname="Tok-RSA" type=RSA bits=2048' in log
    assert "event=p11_login" in log
    port = k.t.port
    cases = [
        (["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], "ECDSA"),
        (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "RSA-PSS"),
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], "ECDSA"),
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-sigalgs", "RSA+SHA256"], "RSA"),
    ]
    for args, sigtype in cases:
        rc, out = s_client(port, "-brief", "-CAfile", pki.ca_crt, "-verify_return_error",
                           "-verify_hostname", "localhost", *args)
        assert rc == 0, out
        assert "Verification: OK" in out, out
        assert re.search(r"^(Peer )?[Ss]ignature type: %s$" % sigtype, out, re.M), out
    for version in ("1.2", "1.3"):
        ok, _ = handshake(port, version=version, cafile=pki.ca_crt)
        assert ok
    be = k.backend("pkcs11:" + TOKEN)
    assert be["state"] == "up" and be["completed"] >= 6 and be["failed"] == 0
    soft = k.backend("soft")
    assert soft["completed"] == 0
    keys = {x["nickname"]: x for x in k.keydctl()["keys"]}
    assert keys["Tok-EC"]["placements"] == ["pkcs11:" + TOKEN]
    assert keys["Tok-RSA"]["completed"] >= 2 and keys["Tok-EC"]["completed"] >= 2


def test_wrong_pin_refused_at_start_and_not_retried(tlsd_factory, tmp_path, pki, token):
    k = token_setup(tlsd_factory, tmp_path, pki, token)
    with open(k.pinfile) as f:
        text = f.read().replace("%s:%s" % (TOKEN, "4711-sealpost"), "%s:wrong-pin" % TOKEN)
    with open(k.pinfile, "w") as f:
        f.write(text)
    k.conf(NICKS)
    k.t.start()
    k.t.tlsd.wait_log("event=keyd_config_error")
    log = k.log()
    assert "CKR_PIN_INCORRECT" in log and "not retried" in log, log
    assert "event=exit code=78" in log
    # one attempt only: the master does not restart a keyd that failed its configuration
    assert len(k.t.pids("keyd")) == 1
    assert "event=child_restart proc=keyd" not in log


def test_pin_file_with_loose_mode_refused(tlsd_factory, tmp_path, pki, token):
    k = token_setup(tlsd_factory, tmp_path, pki, token)
    os.chmod(k.pinfile, 0o644)
    k.conf(NICKS)
    k.t.start()
    k.t.tlsd.wait_log("event=keyd_config_error")
    log = k.log()
    assert "sslpassword.conf" in log and "event=exit code=78" in log, log
    # no handshake can be served, and none hangs
    ok, secs = handshake(k.t.port, cafile=pki.ca_crt)
    assert not ok and secs < 8
