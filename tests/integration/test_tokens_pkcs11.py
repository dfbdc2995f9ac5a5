"""bin/tokens with PKCS#11 tokens (SoftHSM2 in a private token directory):
a request whose key is generated on the token and which the token signs,
a PKCS#12 imported onto a token (checked with pkcs11-tool and p11tool),
refused export of a non-extractable key, wrong PINs, token init,
generate-key, list-objects, and the module list sub-commands."""

import os
import shutil
import subprocess

import pytest

import spfix
from test_tokens_certdb import OK, USAGE, NOTFOUND, PASSWORD, TOKEN, REFUSED, ossl, sign_csr, ca  # noqa: F401

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
LABEL, PIN, SOPIN = "Sealpost Test HSM", "123456", "87654321"

pytestmark = pytest.mark.skipif(not (os.path.exists(MODULE) and shutil.which("softhsm2-util")),
                                reason="SoftHSM2 is not installed (apt-get install softhsm2)")


class Hsm:
    def __init__(self, tmp_path):
        self.dir = tmp_path / "hsm"
        os.makedirs(self.dir / "tokens")
        self.conf = self.dir / "softhsm2.conf"
        self.conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                             % (self.dir / "tokens"))
        self.env = {"SOFTHSM2_CONF": str(self.conf)}
        spfix.run(["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--so-pin", SOPIN,
                   "--pin", PIN], env=dict(os.environ, **self.env))
        self.certdb = tmp_path / "conf" / "certdb"
        self.pinfile = tmp_path / "conf" / "sslpassword.conf"
        self.tokens("generate-certdb", "--key", "ecp256", check=OK)
        with open(self.pinfile, "a") as f:
            f.write("%s:%s\n" % (LABEL, PIN))

    def tokens(self, *args, check=None, p11=True):
        argv = [spfix.bin_path("tokens"), args[0]]
        rest = list(args[1:])
        if args[0] in ("crl", "module", "token"):
            argv.append(rest.pop(0))
        argv += ["-d", self.certdb]
        if p11 and args[0] not in ("generate-certdb",):
            # the module by path only, so each token is seen once
            argv += ["--no-p11kit", "--module", MODULE]
        argv += rest
        r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, **self.env), timeout=60)
        if check is not None:
            assert r.returncode == check, "%s -> %d\n%s\n%s" % (" ".join(map(str, argv)), r.returncode,
                                                                r.stdout, r.stderr)
        return r

    def pkcs11_tool(self, *args):
        return spfix.run(["pkcs11-tool", "--module", MODULE, "--token-label", LABEL, "--login", "--pin", PIN]
                         + list(args), env=dict(os.environ, **self.env)).stdout

    def p11tool_list(self):
        return spfix.run(["p11tool", "--provider", MODULE, "--login", "--list-all",
                          "pkcs11:token=" + LABEL.replace(" ", "%20")],
                         env=dict(os.environ, GNUTLS_PIN=PIN, **self.env)).stdout


def private_key_object(listing, label):
    """The block of `pkcs11-tool --list-objects` for the private key labelled label."""
    blocks, cur = [], []
    for line in listing.splitlines():
        if line and not line[0].isspace() and cur:
            blocks.append("\n".join(cur))
            cur = []
        cur.append(line)
    blocks.append("\n".join(cur))
    found = [b for b in blocks if b.startswith("Private Key Object") and "label:      %s\n" % label in b + "\n"]
    assert len(found) == 1, listing
    return found[0]


@pytest.fixture
def hsm(tmp_path):
    return Hsm(tmp_path)


def test_request_on_token_signed_by_token(hsm, ca, tmp_path):
    csr = tmp_path / "tok.csr"
    hsm.tokens("request-cert", "--token", LABEL, "--key", "ecp256", "--name", "hsm.example.com",
               "--org", "Sealpost Test", "-F", "ascii", "-o", csr, "Hsm-Cert", check=OK)
    # the token's signature over our TBS verifies
    assert "verify OK" in ossl("req", "-verify", "-in", csr, "-noout").stdout
    der = tmp_path / "tok.der"
    hsm.tokens("request-cert", "--token", LABEL, "--key", "rsa2048", "--name", "rsa.example.com",
               "-o", der, "Hsm-RSA", check=OK)
    assert "verify OK" in ossl("req", "-verify", "-inform", "DER", "-in", der, "-noout").stdout
    # the key is on the token: sensitive, never extractable
    priv = private_key_object(hsm.pkcs11_tool("--list-objects"), "Hsm-Cert")
    assert "sensitive" in priv and "never extractable" in priv, priv
    # and it can only sign: no decrypt, unwrap or derive
    usage = [l for l in priv.splitlines() if "Usage:" in l][0]
    assert "sign" in usage and not any(u in usage for u in ("decrypt", "unwrap", "derive")), priv
    crt = sign_csr(ca, csr, tmp_path / "tok.crt")
    hsm.tokens("add-cert", "Hsm-Cert", crt, check=OK)
    r = hsm.tokens("show-cert", "Hsm-Cert", check=OK)
    assert 'Key location:        token "%s"' % LABEL in r.stdout
    r = hsm.tokens("list-certs", check=OK)
    row = [l for l in r.stdout.splitlines() if l.startswith("Hsm-Cert ")]
    assert row and row[0].rstrip().endswith(LABEL)
    with open(os.path.join(hsm.certdb, "index")) as f:
        assert "pkcs11:token=Sealpost%20Test%20HSM" in f.read()
    # a non-extractable key is not exported
    p12pw = tmp_path / "p12pw"
    p12pw.write_text("pw\n")
    r = hsm.tokens("export-cert", "-O", p12pw, "-o", tmp_path / "x.p12", "Hsm-Cert", check=REFUSED)
    assert "not extractable" in r.stderr
    assert not os.path.exists(tmp_path / "x.p12")
    # a certificate for another key does not fit Hsm-Cert's key
    other = tmp_path / "o.csr"
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         tmp_path / "o.key", "-subj", "/CN=o", "-out", other)
    r = hsm.tokens("renew-cert", "Hsm-Cert", sign_csr(ca, other, tmp_path / "o.crt"), check=REFUSED)
    assert "mismatch" in r.stderr


def test_import_pkcs12_onto_token(hsm, ca, tmp_path):
    key, csr, crt, p12 = (tmp_path / n for n in ("imp.key", "imp.csr", "imp.crt", "imp.p12"))
    ossl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-subj", "/CN=imp.example.com", "-out", csr)
    sign_csr(ca, csr, crt)
    p12pw = tmp_path / "p12pw"
    p12pw.write_text("import-me\n")
    ossl("pkcs12", "-export", "-in", crt, "-inkey", key, "-certfile", ca[0], "-name", "Imported-Cert",
         "-passout", "file:%s" % p12pw, "-out", p12)
    hsm.tokens("import-cert", "--token", LABEL, "-O", p12pw, p12, check=OK)
    objs = hsm.pkcs11_tool("--list-objects")
    assert objs.count("label:      Imported-Cert") >= 2, objs  # private key + certificate
    priv = private_key_object(objs, "Imported-Cert")
    access = [l for l in priv.splitlines() if "Access:" in l][0]
    assert "sensitive" in access and "extractable" not in access, priv
    listing = hsm.p11tool_list()
    assert "Label: Imported-Cert" in listing and "CKA_SENSITIVE" in listing
    assert "CKA_EXTRACTABLE" not in listing
    r = hsm.tokens("token", "list-objects", "--token", LABEL, check=OK)
    rows = [l for l in r.stdout.splitlines() if "Imported-Cert" in l]
    assert any(l.startswith("private-key") and "sensitive,not-extractable" in l for l in rows), r.stdout
    assert any(l.startswith("certificate") for l in rows)
    ids = {l.split()[2] for l in rows}
    assert len(ids) == 1  # same CKA_ID on key and certificate
    r = hsm.tokens("show-cert", "Imported-Cert", check=OK)
    assert 'token "%s"' % LABEL in r.stdout
    hsm.tokens("export-cert", "-O", p12pw, "-o", tmp_path / "back.p12", "Imported-Cert", check=REFUSED)


def test_wrong_pin_and_unknown_token(hsm, tmp_path):
    bad = tmp_path / "bad.conf"
    fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, ("%s:000000\n" % LABEL).encode())
    os.close(fd)
    r = hsm.tokens("request-cert", "-W", bad, "--token", LABEL, "--name", "x", "-o", tmp_path / "x", "X",
                   check=PASSWORD)
    assert "CKR_PIN_INCORRECT" in r.stderr and "000000" not in r.stderr
    hsm.tokens("request-cert", "--token", "No Such Token", "--name", "x", "-o", tmp_path / "x", "Y",
               check=NOTFOUND)


def test_token_init_generate_key_list(hsm, tmp_path):
    with open(hsm.pinfile, "a") as f:
        f.write("Second:2222\nSecond (SO):99999999\n")
    hsm.tokens("token", "init", "--label", "Second", check=OK)
    out = spfix.run(["softhsm2-util", "--show-slots"], env=dict(os.environ, **hsm.env)).stdout
    assert "Second" in out
    hsm.tokens("token", "init", "--label", "Second", check=REFUSED)
    r = hsm.tokens("token", "generate-key", "--token", "Second", "--key", "ecp256", "Gen-Key", check=OK)
    r = hsm.tokens("token", "list-objects", "--token", "Second", check=OK)
    assert any(l.startswith("private-key") and "Gen-Key" in l and "never-extractable" in l
               for l in r.stdout.splitlines()), r.stdout
    r = hsm.tokens("list-certs", check=OK)
    assert "Gen-Key" in r.stdout and "(request pending)" in r.stdout
    newpin = tmp_path / "newpin"
    newpin.write_text("3333\n")
    hsm.tokens("token", "set-pin", "--token", "Second", "--new-pin-file", newpin, check=OK)
    spfix.run(["pkcs11-tool", "--module", MODULE, "--token-label", "Second", "--login", "--pin", "3333", "-O"],
              env=dict(os.environ, **hsm.env))
    hsm.tokens("remove-cert", "Gen-Key", check=OK)


def test_module_add_list_mechanisms(hsm, tmp_path):
    modfile = tmp_path / "conf" / "pkcs11-modules.conf"
    hsm.tokens("module", "add", "softhsm", MODULE, p11=False, check=OK)
    assert "softhsm = %s" % MODULE in modfile.read_text()
    hsm.tokens("module", "add", "softhsm", MODULE, p11=False, check=REFUSED)
    hsm.tokens("module", "add", "nothing", "/no/such/module.so", p11=False, check=NOTFOUND)
    r = hsm.tokens("module", "list", "--no-p11kit", p11=False, check=OK)
    assert "Module softhsm: %s" % MODULE in r.stdout
    line = [l for l in r.stdout.splitlines() if '"%s"' % LABEL in l][0]
    slot = line.split()[1].rstrip(":")
    assert "login-required" in line
    r = hsm.tokens("module", "mechanisms", "--no-p11kit", "softhsm", p11=False, check=OK)
    assert "CKM_ECDSA" in r.stdout and "CKM_RSA_PKCS" in r.stdout and "keypair" in r.stdout
    hsm.tokens("module", "mechanisms", "--no-p11kit", "nosuch", p11=False, check=NOTFOUND)
    hsm.tokens("module", "disable", "softhsm", slot, p11=False, check=OK)
    assert "disable softhsm %s" % slot in modfile.read_text()
    r = hsm.tokens("module", "list", "--no-p11kit", p11=False, check=OK)
    assert "[disabled]" in [l for l in r.stdout.splitlines() if '"%s"' % LABEL in l][0]
    # a disabled slot's token is not used
    hsm.tokens("token", "list-objects", "--no-p11kit", "--token", LABEL, p11=False, check=NOTFOUND)
    hsm.tokens("module", "enable", "softhsm", slot, p11=False, check=OK)
    hsm.tokens("token", "list-objects", "--no-p11kit", "--token", LABEL, p11=False, check=OK)
    hsm.tokens("module", "remove", "softhsm", p11=False, check=OK)
    assert "softhsm =" not in modfile.read_text()
    hsm.tokens("module", "remove", "softhsm", p11=False, check=NOTFOUND)


def test_module_known_to_p11kit_and_named_again_is_seen_once(tmp_path):
    """SoftHSM2 is in p11-kit's registry; naming it again with --module must
    not show its tokens twice (which made --token ambiguous). Regression:
    the duplicate check compared CK_INFO with memcmp, padding included."""
    hsm = Hsm(tmp_path)
    argv = [spfix.bin_path("tokens"), "token", "list-objects", "-d", hsm.certdb, "-W", hsm.pinfile,
            "--module", MODULE, "--token", LABEL]
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, **hsm.env), timeout=60)
    assert r.returncode == OK, r.stdout + r.stderr
    r = subprocess.run([str(spfix.bin_path("tokens")), "module", "list", "-d", str(hsm.certdb),
                        "--module", MODULE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, **hsm.env), timeout=60)
    assert r.returncode == OK, r.stdout + r.stderr
    assert r.stdout.count('token "%s"' % LABEL) == 1, r.stdout
