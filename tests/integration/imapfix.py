"""Helpers for the IMAP and POP integration tests: a mailcore (mcfix) with
the IMAP and POP listeners on, skipped while mailcore_main.c does not yet
register their keys and start their servers."""

import subprocess

import pytest

from mcfix import Mailcore, PASSWORD  # noqa: F401


def imap_mailcore(daemons, build, free_port, d, extra_conf=""):
    imap_port, pop_port = free_port(), free_port()
    mc = Mailcore(daemons, build, free_port, d,
                  extra_conf="service.imap.port = %d\nservice.pop.port = %d\n%s"
                             % (imap_port, pop_port, extra_conf))
    check = subprocess.run(mc.argv + ["-t"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check.returncode != 0 and "service.imap" in check.stdout:
        pytest.skip("IMAP/POP not wired into mailcore yet: " + check.stdout.strip())
    mc.imap_port, mc.pop_port = imap_port, pop_port
    mc.start()
    spfix_wait(imap_port)
    return mc


def spfix_wait(port):
    import spfix
    spfix.wait_for(lambda: spfix.port_open(port), what="port %d" % port)


def idle_see(m, action, timeout=15):
    """Puts the selected imaplib session m in IDLE, runs action(), and
    returns the first untagged line the server sends; then ends the IDLE."""
    tag = m._new_tag().decode()
    m.send(("%s IDLE\r\n" % tag).encode())
    assert m.readline().startswith(b"+ ")
    action()
    m.sock.settimeout(timeout)
    seen = m.readline()
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if line.startswith(tag.encode()):
            assert b"OK" in line, line
            return seen
