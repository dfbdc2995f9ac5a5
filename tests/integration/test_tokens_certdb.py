"""bin/tokens over the certificate database and the internal software token:
generate-certdb, self-signed certificates, requests signed by an openssl CA,
add-cert (server and -C), show/list/remove, PKCS#12 export and import, and
the exit codes for wrong passphrases, mismatches and unknown nicknames."""

import os
import stat
import subprocess

import pytest

import spfix

OK, USAGE, NOTFOUND, PASSWORD, TOKEN, REFUSED = 0, 1, 2, 3, 4, 5


def tokens(*args, env=None, check=None, input=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run([spfix.bin_path("tokens")] + [str(a) for a in args], input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, timeout=60)
    if check is not None:
        assert r.returncode == check, "tokens %s -> %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, args)), r.returncode, r.stdout, r.stderr)
    return r


def ossl(*args, **kw):
    return spfix.run(["openssl"] + [str(a) for a in args], **kw)


@pytest.fixture
def db(tmp_path):
    """A fresh certdb made by generate-certdb; returns (certdb dir, pinfile)."""
    d = tmp_path / "conf" / "certdb"
    tokens("generate-certdb", "-d", d, check=OK)
    return str(d), str(tmp_path / "conf" / "sslpassword.conf")


@pytest.fixture
def ca(tmp_path):
    """A test CA made with openssl: (crt, key)."""
    key, crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    ossl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-subj", "/O=Sealpost Test/CN=Tokens Test CA", "-days", "30",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", crt)
    return str(crt), str(key)


def sign_csr(ca, csr, out, days=30, extra=()):
    ossl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
         "-days", days, "-sha256", "-copy_extensions", "copy", "-out", out, *extra)
    return out


def internal_pass(pinfile):
    with open(pinfile) as f:
        for line in f:
            if line.startswith(spfix.INTERNAL_TOKEN + ":"):
                return line.rstrip("\n").split(":", 1)[1]
    raise AssertionError("no internal token line in %s" % pinfile)


def test_generate_certdb_lists_server_cert(db):
    d, pinfile = db
    assert stat.S_IMODE(os.stat(pinfile).st_mode) == 0o600
    r = tokens("list-certs", "-d", d, check=OK)
    row = [l for l in r.stdout.splitlines() if l.startswith("Server-Cert ")]
    assert row and "internal" in row[0] and "Same as issuer" in row[0], r.stdout
    assert "1 certificate found" in r.stdout
    # the key file is encrypted PKCS#8 that openssl opens with the generated passphrase
    pw = internal_pass(pinfile)
    ossl("pkey", "-in", os.path.join(d, "keys", "Server-Cert.p8"), "-passin", "pass:" + pw, "-noout")
    # generating twice is refused
    tokens("generate-certdb", "-d", d, check=REFUSED)


def test_generate_certdb_with_given_password_file(tmp_path):
    pw = tmp_path / "pw"
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"%s:my-chosen-passphrase\n" % spfix.INTERNAL_TOKEN.encode())
    os.close(fd)
    d = tmp_path / "certdb"
    r = tokens("generate-certdb", "-d", d, "-W", pw, "--key", "ecp256", "--name", "mail.example.com", check=OK)
    assert "my-chosen-passphrase" not in r.stdout + r.stderr
    ossl("pkey", "-in", d / "keys" / "Server-Cert.p8", "-passin", "pass:my-chosen-passphrase", "-noout")
    r = tokens("show-cert", "-d", d, "-W", pw, "Server-Cert", check=OK)
    assert "CN=mail.example.com" in r.stdout and "DNS:mail.example.com" in r.stdout


def test_selfsign_show_renew_remove(db):
    d, _ = db
    tokens("add-selfsign-cert", "-d", d, "--name", "siroe.example.com", "--org", "comms", "--org-unit", "Messaging",
           "--city", "SantaClara", "--state", "ca", "--country", "us", "--key", "ecp256",
           "--san", "DNS:siroe.example.com,IP:127.0.0.1", "MySelfSigned-Cert", check=OK)
    r = tokens("show-cert", "-d", d, "MySelfSigned-Cert", check=OK)
    out = r.stdout
    assert "CN=siroe.example.com,OU=Messaging,O=comms,L=SantaClara,ST=ca,C=us" in out
    assert "Self-signed:         yes" in out and "IP Address:127.0.0.1" in out
    assert "Key location:        internal" in out
    crt = os.path.join(d, "certs", "MySelfSigned-Cert.pem")
    sha256 = ossl("x509", "-in", crt, "-noout", "-fingerprint", "-sha256").stdout.split("=", 1)[1].strip()
    sha1 = ossl("x509", "-in", crt, "-noout", "-fingerprint", "-sha1").stdout.split("=", 1)[1].strip()
    assert "Fingerprint (SHA-256): " + sha256 in out and "Fingerprint (SHA-1): " + sha1 in out
    # three months by default
    end = ossl("x509", "-in", crt, "-noout", "-enddate").stdout
    tokens("renew-selfsign-cert", "-d", d, "--days", "400", "MySelfSigned-Cert", check=OK)
    r2 = tokens("show-cert", "-d", d, "MySelfSigned-Cert", check=OK)
    assert "Fingerprint (SHA-256): " + sha256 not in r2.stdout
    assert ossl("x509", "-in", crt, "-noout", "-enddate").stdout != end
    # same key after renewal
    assert ossl("x509", "-in", crt, "-noout", "-pubkey").stdout
    # a nickname twice is refused; an unknown one is "not found"
    tokens("add-selfsign-cert", "-d", d, "--name", "x", "MySelfSigned-Cert", check=REFUSED)
    tokens("show-cert", "-d", d, "No-Such-Cert", check=NOTFOUND)
    tokens("remove-cert", "-d", d, "MySelfSigned-Cert", check=OK)
    assert not os.path.exists(crt)
    assert not os.path.exists(os.path.join(d, "keys", "MySelfSigned-Cert.p8"))
    tokens("remove-cert", "-d", d, "MySelfSigned-Cert", check=NOTFOUND)


def test_request_add_cert_and_ca(db, ca, tmp_path):
    d, _ = db
    csr = tmp_path / "req.pem"
    tokens("request-cert", "-d", d, "-S", "CN=aqua.example.com,OU=Messaging,O=siroe", "-F", "ascii",
           "-o", csr, "Aqua-Cert", check=OK)
    ossl("req", "-verify", "-in", csr, "-noout")
    r = tokens("list-certs", "-d", d, check=OK)
    assert "(request pending)" in r.stdout
    crt = sign_csr(ca, csr, tmp_path / "aqua.crt")
    # a certificate for another key is refused
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", tmp_path / "other.key", "-subj", "/CN=other", "-out", tmp_path / "other.csr")
    other = sign_csr(ca, tmp_path / "other.csr", tmp_path / "other.crt")
    r = tokens("add-cert", "-d", d, "Aqua-Cert", other, check=REFUSED)
    assert "mismatch" in r.stderr
    tokens("add-cert", "-d", d, "Aqua-Cert", crt, check=OK)
    r = tokens("show-cert", "-d", d, "Aqua-Cert", check=OK)
    assert "Issuer:              CN=Tokens Test CA,O=Sealpost Test" in r.stdout
    assert "Self-signed:         no" in r.stdout
    # add-cert again is refused; renew-cert replaces
    tokens("add-cert", "-d", d, "Aqua-Cert", crt, check=REFUSED)
    tokens("renew-cert", "-d", d, "Aqua-Cert", sign_csr(ca, csr, tmp_path / "aqua2.crt"), check=OK)
    tokens("renew-cert", "-d", d, "Nobody", crt, check=NOTFOUND)
    # a trusted CA
    tokens("add-cert", "-d", d, "-C", "--trust", "client", "Test CA", ca[0], check=OK)
    r = tokens("list-certs", "-C", "-d", d, check=OK)
    row = [l for l in r.stdout.splitlines() if l.startswith("Test CA ")]
    assert row and row[0].rstrip().endswith("client"), r.stdout
    r = tokens("show-cert", "-d", d, "Test CA", check=OK)
    assert "Trust flags:         client" in r.stdout
    # the index the daemons read names both
    with open(os.path.join(d, "index")) as f:
        index = f.read()
    assert "cert\tAqua-Cert\tcerts/Aqua-Cert.pem\tfile:keys/Aqua-Cert.p8" in index
    assert "ca\tTest CA\tcas/Test_CA.pem\tclient" in index


def test_expired_certificate_warns(db, ca, tmp_path):
    d, _ = db
    csr = tmp_path / "old.csr"
    tokens("request-cert", "-d", d, "--name", "old.example.com", "-F", "ascii", "-o", csr, "Old-Cert", check=OK)
    crt = tmp_path / "old.crt"
    # -days -1: not after one day before now (openssl 3.0's x509 has no -not_after)
    ossl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "-1", "-out", crt)
    r = tokens("add-cert", "-d", d, "Old-Cert", crt, check=OK)
    assert "expired" in r.stderr


def test_export_import_roundtrip(db, tmp_path):
    d, _ = db
    p12pw = tmp_path / "p12pw"
    p12pw.write_text("export-password\n")
    out = tmp_path / "server.p12"
    tokens("export-cert", "-d", d, "-O", p12pw, "-o", out, "Server-Cert", check=OK)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    info = ossl("pkcs12", "-info", "-noout", "-in", out, "-passin", "file:%s" % p12pw).stdout
    assert "AES-256-CBC" in info and "PBKDF2" in info
    tokens("import-cert", "-d", d, "-O", p12pw, "-n", "Copy-Cert", out, check=OK)
    fp = lambda n: [l for l in tokens("show-cert", "-d", d, n, check=OK).stdout.splitlines()
                    if l.startswith("Fingerprint (SHA-256)")][0]
    assert fp("Copy-Cert") == fp("Server-Cert")
    # the friendly name is the default nickname: Server-Cert exists, so it is refused
    tokens("import-cert", "-d", d, "-O", p12pw, out, check=REFUSED)
    # a wrong PKCS#12 password
    bad = tmp_path / "bad"
    bad.write_text("nope\n")
    tokens("import-cert", "-d", d, "-O", bad, "-n", "X", out, check=PASSWORD)


def test_wrong_passphrase_and_usage(db, tmp_path):
    d, _ = db
    pw = tmp_path / "wrong.conf"
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"%s:not-the-passphrase\n" % spfix.INTERNAL_TOKEN.encode())
    os.close(fd)
    p12pw = tmp_path / "p12pw"
    p12pw.write_text("x\n")
    r = tokens("export-cert", "-d", d, "-W", pw, "-O", p12pw, "-o", tmp_path / "x.p12", "Server-Cert",
               check=PASSWORD)
    assert "wrong passphrase" in r.stderr and "not-the-passphrase" not in r.stderr
    tokens("add-selfsign-cert", "-d", d, "-W", pw, "--name", "a", "A", check=OK)  # writes with -W's passphrase
    os.chmod(pw, 0o644)
    r = tokens("list-certs", "-d", d, "-W", pw, check=OK)  # list needs no secret
    tokens("export-cert", "-d", d, "-W", pw, "-O", p12pw, "A", check=PASSWORD)  # group-readable: refused
    r = tokens("no-such-subcommand", check=USAGE)
    r = tokens("--help", check=OK)
    assert "Exit codes" in r.stdout and "3 wrong" in r.stdout
    r = tokens("list-certs", "--bogus", check=USAGE)
    r = tokens("show-cert", "--help", check=OK)
    assert "Usage: tokens show-cert" in r.stdout
    tokens("list-certs", "-d", tmp_path / "nothing-here", check=NOTFOUND)
