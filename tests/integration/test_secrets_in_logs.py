"""Planted secrets never reach a log: keyd with a wrong passphrase (and a
PIN line for a token that does not exist) fails with a clear message that
names no secret, and a normal run logs neither the passphrase nor the PIN."""

import os

import spfix
from test_tlsd_env import Tlsd  # noqa: F401

WRONG = "planted-WRONG-passphrase-8841"
PIN = "planted-token-PIN-5519"


def write_pins(t, internal):
    path = os.path.join(t.confdir, "sslpassword.conf")
    with open(path, "w") as f:
        f.write("Internal (Software) Token:%s\nNo Such Token:%s\n" % (internal, PIN))
    os.chmod(path, 0o600)


def test_wrong_passphrase_fails_without_echoing_it(daemons, tmp_path, pki, free_port):
    t = Tlsd(daemons, tmp_path, pki, free_port, copy_certdb=True)
    write_pins(t, WRONG)
    # started by hand: Tlsd.start() would wait for workers that cannot serve
    t.tlsd = daemons("tlsd", [spfix.bin_path("tlsd"), "-c", t.conf, "-f"])
    t.tlsd.start(ready_port=t.port)
    t.tlsd.wait_log("event=keyd_config_error")
    log = t.tlsd.log()
    assert "passphrase" in log.lower() or "decrypt" in log.lower(), log  # a clear reason
    assert WRONG not in log and PIN not in log


def test_normal_run_logs_no_secret(daemons, tmp_path, pki, free_port):
    t = Tlsd(daemons, tmp_path, pki, free_port, copy_certdb=True, extra="log.level = debug\n")
    write_pins(t, pki.PASSPHRASE)
    t.start()
    assert t.facts(cert="alice")["verify"] == "0"
    log = t.log() + t.smtpd.log()
    assert pki.PASSPHRASE not in log and PIN not in log
