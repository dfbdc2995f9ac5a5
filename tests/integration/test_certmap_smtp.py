"""SMTP AUTH EXTERNAL through tlsd's STARTTLS with certmap.conf: a section
for the test CA with verifycert on, against LDAP (userCertificate;binary)
and against the users file (certsha256=). The certificate must be verified
by tlsd, map to exactly one active user, and (verifycert) be the one stored
for that user."""

import hashlib
import os
import smtplib
import ssl
import subprocess

import pytest

from ldapfix import Slapd, issue_client
from mcfix import Mailcore
from test_tlsd_env import tlsd_factory  # noqa: F401 (fixture)

import spfix

CERTMAP = """# the test CA's certificates: by e-mail address, and the certificate must
# be the one in the user's entry
certmap default default
default:DNComps
default:FilterComps e=mail

certmap testca O=Sealpost Test, CN=Sealpost Test CA
testca:DNComps
testca:FilterComps e=mail
testca:verifycert on
"""


def cert_sha256(crt):
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         stdout=subprocess.PIPE).stdout
    return hashlib.sha256(der).hexdigest()


def external(t, mc, cert):
    ctx = ssl.create_default_context(cafile=t.pki.ca_crt)
    ctx.load_cert_chain(*cert)
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.starttls(context=ctx)
        s.ehlo("c.example")
        assert "EXTERNAL" in s.esmtp_features.get("auth", "")
        return s.docmd("AUTH", "EXTERNAL =")[0]


def start_pair(daemons, build, free_port, tmp_path, t, extra, users=None):
    d = tmp_path / "mailcore"
    d.mkdir()
    path = str(d / "certmap.conf")
    with open(path, "w") as f:
        f.write(CERTMAP)
    os.chmod(path, 0o644)
    mc = Mailcore(daemons, build, free_port, d,
                  extra_conf="tlsd.handoff_socket = %s\nmailcore.certmapfile = %s\n%s"
                             % (t.handoff, path, extra))
    if users is not None:
        with open(os.path.join(mc.d, "users"), "a") as f:
            f.write(users)
    try:
        spfix.bin_path("tlsd")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    mc.start()
    t.start(backend=False)
    return mc


def test_external_ldap_verifycert(daemons, build, free_port, tmp_path, pki, tlsd_factory):  # noqa: F811
    slapd = Slapd(daemons, free_port, pki, tmp_path / "ldap")
    try:
        slapd.start()
        t = tlsd_factory()
        mc = start_pair(daemons, build, free_port, tmp_path, t, slapd.conf())
        assert external(t, mc, slapd.certs["erin"]) == 235       # the stored certificate
        assert external(t, mc, slapd.certs["frank"]) == 535      # entry holds another one
        assert external(t, mc, pki.clients["alice"]) == 535      # no such entry in LDAP
        mc.proc.wait_log("event=certmap_verifycert_failed")
        slapd.stop()
        assert external(t, mc, slapd.certs["erin"]) == 454       # LDAP down: temporary
    finally:
        slapd.cleanup()


def test_external_users_file_verifycert(daemons, build, free_port, tmp_path, pki, tlsd_factory):  # noqa: F811
    t = tlsd_factory()
    certs = {n: issue_client(pki, str(tmp_path), n, "%s@example.com" % n) for n in ("erin", "frank")}
    h = subprocess.run(["openssl", "passwd", "-6", "x"], check=True, stdout=subprocess.PIPE,
                       text=True).stdout.strip()
    users = ("erin@example.com:%s:certsha256=%s\n" % (h, cert_sha256(certs["erin"][0])) +
             "frank@example.com:%s:certsha256=%s\n" % (h, cert_sha256(certs["erin"][0])))
    mc = start_pair(daemons, build, free_port, tmp_path, t, "", users=users)
    assert external(t, mc, certs["erin"]) == 235
    assert external(t, mc, certs["frank"]) == 535   # not frank's certificate
    assert external(t, mc, pki.clients["alice"]) == 535  # verifycert on, no certsha256=
