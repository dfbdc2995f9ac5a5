"""keyd's stats socket (keyd.stats_socket, mode 0600) read with bin/keydctl:
counters per backend, key and mechanism move with handshakes; text and JSON;
an unknown command gets one error line and nothing else."""

import json
import os
import socket
import stat

import spfix
from test_tlsd_env import tlsd_factory  # noqa: F401
from test_keyd_env import KeydSetup, handshakes, token  # noqa: F401


def test_stats_socket_and_keydctl(tlsd_factory, tmp_path, pki, token):
    k = KeydSetup(tlsd_factory, tmp_path, pki, token)
    k.conf("Server-Cert, Server-Cert-EC")
    k.start()
    assert stat.S_IMODE(os.stat(k.stats).st_mode) == 0o600
    before = k.keydctl()
    failed, _ = handshakes(k.t.port, 20, pki.ca_crt, threads=2)
    assert failed == 0
    after = k.keydctl()
    soft = {b["name"]: b for b in after["backends"]}["soft"]
    soft0 = {b["name"]: b for b in before["backends"]}["soft"]
    assert soft["completed"] - soft0["completed"] == 20
    assert soft["submitted"] == soft["completed"] and soft["state"] == "up" and soft["depth"] == 0
    assert sum(soft["latency_us_log2"]) == soft["completed"]
    mech = {m["name"]: m for m in after["mechanisms"]}
    assert sum(m["completed"] for m in mech.values()) == soft["completed"]
    keys = {x["nickname"]: x for x in after["keys"]}
    assert set(keys) == {"Server-Cert", "Server-Cert-EC", "Other-Cert"}
    assert sum(x["completed"] for x in keys.values()) == soft["completed"]
    text = k.keydctl(json_out=False)
    assert 'backend "soft" state=up' in text and 'key "Server-Cert-EC"' in text
    assert "mechanism ecdsa" in text
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(k.stats)
        s.sendall(b"give me the keys\n")
        out = s.makefile("rb").read()
    assert out.startswith(b"error: unknown command") and out.count(b"\n") == 1
