"""tlsd serves a certificate that bin/tokens put in the certdb (key in the
internal token): the CLI and the daemons agree on the certdb format."""

import os
import re
import signal
import ssl
import subprocess

import pytest

import spfix
from test_tlsd_env import Tlsd, s_client  # noqa: F401


def test_tlsd_serves_cert_added_by_cli(daemons, tmp_path, pki, free_port):
    for prog in ("tlsd", "keyd", "sp_test_smtpd", "tokens"):
        spfix.bin_path(prog)  # raises (fails the test) if not built: nothing is skipped silently
    t = Tlsd(daemons, tmp_path, pki, free_port, copy_certdb=True)
    certdb = os.path.join(t.confdir, "certdb")
    r = subprocess.run([spfix.bin_path("tokens"), "add-selfsign-cert", "-d", certdb, "--name", "localhost",
                        "--org", "Sealpost CLI", "--san", "DNS:localhost,IP:127.0.0.1", "--key", "ecp256",
                        "CLI-Cert"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    show = subprocess.run([spfix.bin_path("tokens"), "show-cert", "-d", certdb, "CLI-Cert"],
                          stdout=subprocess.PIPE, text=True, timeout=60).stdout
    fp = re.search(r"Fingerprint \(SHA-256\): (\S+)", show).group(1)
    t.write_conf(nicknames="CLI-Cert")
    t.start()
    rc, out = s_client(t.port, "-servername", "localhost", "-showcerts")
    assert "O = Sealpost CLI, CN = localhost" in out or "CN = localhost" in out, out
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S).group(0)
    got = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem,
                         stdout=subprocess.PIPE, text=True).stdout.split("=", 1)[1].strip()
    assert got == fp


def test_crl_added_by_cli_then_sighup_refuses_revoked_client(daemons, tmp_path, pki, free_port):
    """The administrator's path for a revocation: `tokens crl add`, SIGHUP,
    and tlsd now reports bob's certificate as revoked (verify 23) and, where
    client certificates are required, refuses the handshake."""
    t = Tlsd(daemons, tmp_path, pki, free_port, copy_certdb=True, clientauth="request")
    certdb = os.path.join(t.confdir, "certdb")
    for f in os.listdir(os.path.join(certdb, "crls")):  # start with no CRL at all
        os.unlink(os.path.join(certdb, "crls", f))
    t.start()
    assert t.facts(cert="bob")["verify"] == "0"      # not revoked yet: verified
    r = subprocess.run([spfix.bin_path("tokens"), "crl", "add", "-d", certdb, pki.crl],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    n = t.log().count("event=reload_done")
    t.tlsd.signal(signal.SIGHUP)
    t.tlsd.wait_log("event=reload_done", count=n + 1)
    assert t.facts(cert="bob")["verify"] == "23"     # X509_V_ERR_CERT_REVOKED
    assert t.facts(cert="alice")["verify"] == "0"
    # with client certificates required, the revoked one gets no session
    t.write_conf(clientauth="require")
    n = t.log().count("event=reload_done")
    t.tlsd.signal(signal.SIGHUP)
    t.tlsd.wait_log("event=reload_done", count=n + 1)
    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
        t.facts(cert="bob")
    assert t.facts(cert="alice")["verify"] == "0"
