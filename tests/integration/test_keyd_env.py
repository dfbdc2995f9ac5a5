"""Shared setup for keyd's integration tests (imported by test_keyd_*.py):
SoftHSM2 tokens in temp dirs with keys generated on the token (non-extractable)
or imported, certificates for them from the test CA, certdb entries with
pkcs11: locators, the PKCS#11 test double (lib/p11_testdouble.so) driven by
rewriting its configuration file (by rename), a bounded parallel handshake
driver, and the stats socket read through bin/keydctl."""

import concurrent.futures
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import spfix
from test_tlsd_env import Tlsd

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "Sealpost Demo"
PIN = "4711-sealpost"
SO_PIN = "12345678"
URI_TOKEN = TOKEN.replace(" ", "%20")


def p11tool(*args, check=True):
    return spfix.run(["pkcs11-tool", "--module", SOFTHSM, "--token-label", TOKEN, "--login",
                      "--pin", PIN] + list(args), check=check)


class Token:
    """A SoftHSM2 token in DIR/tokens, SOFTHSM2_CONF set for this test (the
    daemons started afterwards inherit it)."""

    def __init__(self, d, monkeypatch):
        self.dir = str(d)
        os.makedirs(os.path.join(self.dir, "tokens"))
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s/tokens\n" % self.dir)
        monkeypatch.setenv("SOFTHSM2_CONF", self.conf)
        os.environ["SOFTHSM2_CONF"] = self.conf
        spfix.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN,
                   "--pin", PIN])

    def p(self, *n):
        return os.path.join(self.dir, *n)

    def keygen(self, label, kind, id_hex):
        """A key pair generated on the token (private half never extractable);
        returns the public key as PEM."""
        kt = "EC:prime256v1" if kind == "ec" else "rsa:2048"
        p11tool("--keypairgen", "--key-type", kt, "--label", label, "--id", id_hex)
        der = self.p(label + ".pub.der")
        p11tool("--read-object", "--type", "pubkey", "--label", label, "-o", der)
        pem = self.p(label + ".pub.pem")
        spfix.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", der, "-out", pem])
        return pem

    def import_key(self, label, key_pem, id_hex):
        """A key made by openssl, written into the token (pkcs11-tool)."""
        p11tool("--write-object", key_pem, "--type", "privkey", "--usage-sign", "--label", label,
                "--id", id_hex)
        pem = self.p(label + ".pub.pem")
        spfix.run(["openssl", "pkey", "-in", key_pem, "-pubout", "-out", pem])
        der = self.p(label + ".pub.der")
        spfix.run(["openssl", "pkey", "-in", key_pem, "-pubout", "-outform", "DER", "-out", der])
        # an EC private key object carries no public point: keyd finds it by CKA_ID
        p11tool("--write-object", der, "--type", "pubkey", "--label", label, "--id", id_hex)
        return pem


def issue_for_pubkey(pki, name, pub_pem, outdir):
    """A server certificate (CN=localhost) from the test CA for a public key
    whose private half is on a token: a CSR from a throwaway key, then
    openssl x509 -force_pubkey."""
    tmpkey = os.path.join(outdir, name + ".tmp.key")
    csr = os.path.join(outdir, name + ".csr")
    ext = os.path.join(outdir, name + ".ext")
    crt = os.path.join(outdir, name + ".crt")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    spfix.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-out", tmpkey])
    spfix.run(["openssl", "req", "-new", "-key", tmpkey, "-subj", "/O=Sealpost Test/CN=localhost",
               "-out", csr])
    ca = pki.ca_crt[:-len(".crt")]
    spfix.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca + ".crt", "-CAkey", ca + ".key",
               "-CAcreateserial", "-days", "400", "-sha256", "-extfile", ext,
               "-force_pubkey", pub_pem, "-out", crt])
    return crt


class KeydSetup:
    """A tlsd (test_tlsd_env.Tlsd, own copy of the certdb) whose keyd uses a
    SoftHSM2 token, directly (p11-kit's registry) or through the test double."""

    def __init__(self, tlsd_factory, tmp_path, pki, token, double=False, workers=1):
        self.t = tlsd_factory(copy_certdb=True, workers=workers)
        self.tmp = tmp_path
        self.pki = pki
        self.token = token
        self.confdir = self.t.confdir
        self.certdb = os.path.join(self.confdir, "certdb")
        self.pinfile = os.path.join(self.confdir, "sslpassword.conf")
        self.stats = str(tmp_path / "keyd-stats.sock")
        self.double_conf = str(tmp_path / "p11double.conf")
        self.double = double
        with open(self.pinfile, "a") as f:
            f.write("%s:%s\n" % (TOKEN, PIN))
        if double:
            self.set_double()
            with open(os.path.join(self.confdir, "pkcs11-modules.conf"), "w") as f:
                f.write("double = %s\n" % os.path.join(spfix.BUILDDIR, "lib", "p11_testdouble.so"))
            os.environ["SP_P11DOUBLE_CONF"] = self.double_conf

    def set_double(self, **kv):
        """Rewrites the test double's file by rename: it sees the change at
        its next operation."""
        tmp = self.double_conf + ".tmp"
        with open(tmp, "w") as f:
            f.write("module = %s\n" % SOFTHSM)
            for k, v in kv.items():
                f.write("%s = %s\n" % (k, v))
        os.rename(tmp, self.double_conf)

    def add_token_cert(self, nick, label, pub_pem, uri=True):
        crt = issue_for_pubkey(self.pki, nick, pub_pem, str(self.tmp))
        with open(crt) as f, open(os.path.join(self.certdb, "certs", nick + ".pem"), "w") as g:
            g.write(f.read())
        loc = "pkcs11:token=%s;object=%s;type=private" % (URI_TOKEN, label)
        with open(os.path.join(self.certdb, "index"), "a") as f:
            f.write("cert\t%s\tcerts/%s.pem\t%s\n" % (nick, nick, loc))
        return crt

    def conf(self, nicknames, extra=""):
        base = ("keyd.stats_socket = %s\npkcs11.p11kit_modules = %s\n"
                % (self.stats, "no" if self.double else "yes"))
        self.t.write_conf(base + extra, nicknames=nicknames)

    def start(self):
        self.t.start()
        self.t.tlsd.wait_log("event=ready keys=")  # keyd has its keys
        return self

    def log(self):
        return self.t.log()

    def keydctl(self, json_out=True):
        argv = [spfix.bin_path("keydctl"), "-s", self.stats, "stats"] + (["--json"] if json_out else [])
        r = spfix.run(argv)
        return json.loads(r.stdout) if json_out else r.stdout

    def backend(self, name):
        for b in self.keydctl()["backends"]:
            if b["name"] == name:
                return b
        raise KeyError(name)


def handshake(port, version=None, timeout=10, cafile=None):
    """One TLS handshake with Python's ssl; returns (ok, seconds)."""
    c = ssl.create_default_context(cafile=cafile)
    if version == "1.2":
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        c.minimum_version = ssl.TLSVersion.TLSv1_3
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            with c.wrap_socket(raw, server_hostname="localhost"):
                return True, time.monotonic() - t0
    except (OSError, ssl.SSLError):
        return False, time.monotonic() - t0


def handshakes(port, n, cafile, threads=4, on_progress=None, version=None):
    """n handshakes on a small thread pool; on_progress(done) is called after
    each (from the pool threads, serialised). Returns (failures, max seconds)."""
    lock = threading.Lock()
    state = {"done": 0, "failed": 0, "max": 0.0}

    def one(_):
        ok, secs = handshake(port, version=version, cafile=cafile)
        with lock:
            state["done"] += 1
            state["failed"] += 0 if ok else 1
            state["max"] = max(state["max"], secs)
            if on_progress:
                on_progress(state["done"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as ex:
        list(ex.map(one, range(n)))
    return state["failed"], state["max"]


@pytest.fixture
def token(tmp_path, monkeypatch):
    d = tmp_path / "softhsm"
    os.makedirs(d)
    yield Token(d, monkeypatch)
    os.environ.pop("SP_P11DOUBLE_CONF", None)
