"""bin/tokens crl add / crl list with CRLs made by `openssl ca -gencrl`:
checked against the CA in the certdb, replacing an older CRL of the same
issuer, refusing an older one or one no trusted CA signed."""

import os

import pytest

from test_tokens_certdb import OK, NOTFOUND, REFUSED, tokens, ossl


class OpensslCa:
    def __init__(self, d, cn):
        self.d = d
        os.makedirs(d)
        self.key, self.crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
        ossl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.key, "-subj", "/O=Sealpost Test/CN=" + cn, "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", self.crt)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "crlnumber"), "w") as f:
            f.write("1000\n")
        self.conf = os.path.join(d, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\ncrlnumber=%s/crlnumber\n"
                    "default_md=sha256\ndefault_crl_days=30\n" % (d, d))

    def leaf(self, name):
        key, csr, crt = (os.path.join(self.d, name + e) for e in (".key", ".csr", ".crt"))
        ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
             "-subj", "/CN=" + name, "-out", csr)
        ossl("x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key, "-CAcreateserial", "-days", "30",
             "-out", crt)
        return crt

    def revoke(self, crt):
        ossl("ca", "-config", self.conf, "-cert", self.crt, "-keyfile", self.key, "-revoke", crt)

    def gencrl(self, out):
        ossl("ca", "-config", self.conf, "-cert", self.crt, "-keyfile", self.key, "-gencrl", "-out", out)
        return out


@pytest.fixture
def setup(tmp_path):
    d = str(tmp_path / "conf" / "certdb")
    tokens("generate-certdb", "-d", d, "--key", "ecp256", check=OK)
    ca = OpensslCa(str(tmp_path / "ca"), "CRL Test CA")
    tokens("add-cert", "-d", d, "-C", "CRL CA", ca.crt, check=OK)
    return d, ca, tmp_path


def test_crl_add_replace_refuse_older(setup):
    d, ca, tmp = setup
    first = ca.gencrl(str(tmp / "crl1.pem"))   # number 0x1000 (crlnumber is hex), empty
    ca.revoke(ca.leaf("bob"))
    second = ca.gencrl(str(tmp / "crl2.pem"))  # number 0x1001, bob revoked
    r = tokens("crl", "add", "-d", d, first, check=OK)
    r = tokens("crl", "list", "-d", d, check=OK)
    row = [l for l in r.stdout.splitlines() if "CN=CRL Test CA" in l]
    assert len(row) == 1 and row[0].split()[-2:] == ["0", "4096"], r.stdout
    tokens("crl", "add", "-d", d, second, check=OK)
    r = tokens("crl", "list", "-d", d, check=OK)
    row = [l for l in r.stdout.splitlines() if "CN=CRL Test CA" in l]
    assert len(row) == 1 and row[0].split()[-2:] == ["1", "4097"], r.stdout  # replaced, not added
    assert "1 CRL found" in r.stdout
    r = tokens("crl", "add", "-d", d, first, check=REFUSED)
    assert "older" in r.stderr
    # what the daemons read (certdb's loader) is the newer CRL
    files = os.listdir(os.path.join(d, "crls"))
    assert len([f for f in files if f.endswith(".pem")]) == 1
    text = ossl("crl", "-in", os.path.join(d, "crls", files[0]), "-noout", "-text").stdout
    assert "Revoked Certificates:" in text and "4097" in text


def test_crl_from_unknown_or_forged_ca(setup):
    d, ca, tmp = setup
    other = OpensslCa(str(tmp / "other"), "Someone Else CA")
    r = tokens("crl", "add", "-d", d, other.gencrl(str(tmp / "o.pem")), check=NOTFOUND)
    assert "no trusted CA" in r.stderr
    # same subject as our CA, different key: the signature does not verify
    forger = OpensslCa(str(tmp / "forger"), "CRL Test CA")
    r = tokens("crl", "add", "-d", d, forger.gencrl(str(tmp / "f.pem")), check=REFUSED)
    assert "signature" in r.stderr
    tokens("crl", "add", "-d", d, str(tmp / "missing.pem"), check=NOTFOUND)
