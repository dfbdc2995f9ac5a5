"""testssl.sh against tlsd's implicit-TLS port and its STARTTLS path: no
SSLv2/3, TLS 1.0/1.1, no NULL/EXPORT/LOW/RC4/3DES suites, no insecure
renegotiation, no TLS compression. Gated on the JSON findings (testssl's
exit code is not pass/fail); the certificate-only findings a test CA always
draws are ignored."""

import json
import shutil

import pytest

import spfix
from test_tlsd_env import tlsd, tlsd_factory  # noqa: F401 (fixtures)

MUST_BE_OFF = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")
WEAK_CIPHERS = ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                "cipherlist_3DES_IDEA", "cipherlist_AVERAGE", "RC4")


def run_testssl(target, ca, out, *extra):
    argv = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--connect-timeout", "5",
            "--openssl-timeout", "5", "--add-ca", ca, "-p", "-s", "-S", "-f", "-R", "-C", "-4",
            "--jsonfile", str(out)] + list(extra) + [target]
    spfix.run(argv, check=False, timeout=240)
    with open(out) as f:
        return {item["id"]: item for item in json.load(f)}


def check(findings):
    for pid in MUST_BE_OFF:
        assert "not offered" in findings[pid]["finding"], findings[pid]
    assert "offered" in findings["TLS1_2"]["finding"]
    assert "offered" in findings["TLS1_3"]["finding"]
    for cid in WEAK_CIPHERS:
        assert "not offered" in findings[cid]["finding"] or "not vulnerable" in findings[cid]["finding"], \
            findings[cid]
    assert findings["secure_renego"]["severity"] in ("OK", "INFO"), findings["secure_renego"]
    assert findings["secure_client_renego"]["severity"] in ("OK", "INFO"), findings["secure_client_renego"]
    assert findings["CRIME_TLS"]["severity"] in ("OK", "INFO"), findings["CRIME_TLS"]
    ignore = ("cert_", "intermediate_cert", "chain_of_trust", "OCSP", "DNS_CAArecord",
              "scanProblem", "scanTime", "overall_grade", "engine_problem")
    bad = [(i, f["severity"], f["finding"]) for i, f in findings.items()
           if f.get("severity") in ("HIGH", "CRITICAL") and not i.startswith(ignore)]
    assert not bad, bad


@pytest.mark.skipif(shutil.which("testssl") is None, reason="testssl.sh not installed")
def test_testssl_implicit_tls(tlsd, tmp_path):
    check(run_testssl("127.0.0.1:%d" % tlsd.port, tlsd.pki.ca_crt, tmp_path / "implicit.json"))


@pytest.mark.skipif(shutil.which("testssl") is None, reason="testssl.sh not installed")
def test_testssl_starttls_smtp(tlsd, tmp_path):
    check(run_testssl("127.0.0.1:%d" % tlsd.smtp_port, tlsd.pki.ca_crt, tmp_path / "starttls.json",
                      "-t", "smtp"))
