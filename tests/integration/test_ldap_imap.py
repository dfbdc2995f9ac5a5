"""IMAP and POP against a real slapd (ldapfix.py), as SMTP already is: an
LDAP user logs in with LOGIN, AUTHENTICATE PLAIN, USER/PASS and AUTH PLAIN;
slapd stopped gives NO [UNAVAILABLE] / -ERR [SYS/TEMP] (never "wrong
password"), then recovery; a user whose mailAllowedServiceAccess excludes
imap is refused over IMAP and allowed over POP; IMAPS through tlsd with a
certificate that certmap.conf maps (verifycert against userCertificate)
gets * PREAUTH, and * OK while LDAP is down."""

import base64
import imaplib
import os
import poplib
import ssl

import pytest

import spfix
from ldapfix import PASSWORD, ROOTDN, ROOTPW, Slapd, ldap_mailcore
from test_certmap_smtp import CERTMAP
from test_tlsd_env import tlsd_factory  # noqa: F401 (fixture)

# judy may use smtp and pop, not imap
JUDY = """dn: uid=judy,ou=People,o=example.com,o=sealpost
objectClass: inetOrgPerson
objectClass: inetUser
objectClass: inetMailUser
uid: judy
cn: judy
sn: judy
mail: judy@example.com
userPassword: %s
mailAllowedServiceAccess: +smtp,pop:ALL
""" % PASSWORD


@pytest.fixture
def slapd(daemons, free_port, pki, tmp_path):
    s = Slapd(daemons, free_port, pki, tmp_path / "ldap")
    try:
        yield s.start()
    finally:
        s.cleanup()


def make_mc(daemons, build, free_port, d, slapd, extra=""):
    return ldap_mailcore(daemons, build, free_port, d, slapd, extra=extra)


def imap_login(mc, user, pw):
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=20)
    try:
        typ, data = m._simple_command("LOGIN", user, m._quote(pw))
        return typ, b" ".join(x for x in data if isinstance(x, bytes))
    except imaplib.IMAP4.error as e:
        return "NO", str(e).encode()
    finally:
        m.shutdown()


def imap_plain(mc, user, pw):
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=20)
    try:
        ir = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
        typ, data = m._simple_command("AUTHENTICATE", "PLAIN", ir)  # SASL-IR
        return typ
    except imaplib.IMAP4.error:
        return "NO"
    finally:
        m.shutdown()


def pop_login(mc, user, pw):
    p = poplib.POP3("127.0.0.1", mc.pop_port, timeout=20)
    try:
        p.user(user)
        return p.pass_(pw)
    except poplib.error_proto as e:
        return e.args[0]
    finally:
        p.sock.close()


def pop_plain(mc, user, pw):
    p = poplib.POP3("127.0.0.1", mc.pop_port, timeout=20)
    try:
        ir = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
        return p._shortcmd("AUTH PLAIN " + ir)
    except poplib.error_proto as e:
        return e.args[0]
    finally:
        p.sock.close()


def test_ldap_login_tempfail_and_recovery(daemons, build, free_port, tmp_path, slapd):
    # one worker: each worker's LDAP pool notices the outage and the
    # recovery on its own (with its own backoff)
    mc = ldap_mailcore(daemons, build, free_port, tmp_path / "mailcore", slapd, workers=1)
    assert imap_login(mc, "carol@example.com", PASSWORD)[0] == "OK"
    assert imap_login(mc, "henry@example.net", PASSWORD)[0] == "OK"
    assert imap_plain(mc, "carol@example.com", PASSWORD) == "OK"
    assert imap_login(mc, "carol@example.com", "wrong")[0] == "NO"
    assert imap_login(mc, "dave@example.com", PASSWORD)[0] == "NO"  # inactive
    assert pop_login(mc, "carol@example.com", PASSWORD).startswith(b"+OK")
    assert pop_plain(mc, "henry@example.net", PASSWORD).startswith(b"+OK")
    assert pop_login(mc, "carol@example.com", "wrong").startswith(b"-ERR [AUTH]")

    slapd.stop()
    typ, text = imap_login(mc, "carol@example.com", PASSWORD)
    assert typ == "NO" and b"UNAVAILABLE" in text, text
    assert pop_login(mc, "carol@example.com", PASSWORD).startswith(b"-ERR [SYS/TEMP]")
    assert pop_plain(mc, "carol@example.com", PASSWORD).startswith(b"-ERR [SYS/TEMP]")
    mc.proc.wait_log("event=imap_login")
    mc.proc.wait_log("result=tempfail")

    slapd.start()
    spfix.wait_for(lambda: imap_login(mc, "carol@example.com", PASSWORD)[0] == "OK", 10,
                   "LDAP recovery (imap)")
    assert pop_login(mc, "carol@example.com", PASSWORD).startswith(b"+OK")


def test_allowed_services_imap_pop(daemons, build, free_port, tmp_path, slapd, pki):
    spfix.run(["ldapadd", "-x", "-H", "ldap://127.0.0.1:%d" % slapd.port, "-D", ROOTDN,
               "-w", ROOTPW], input=JUDY)
    mc = make_mc(daemons, build, free_port, tmp_path / "mailcore", slapd)
    # judy: smtp and pop only; the right password over IMAP is refused like a wrong one
    typ, text = imap_login(mc, "judy@example.com", PASSWORD)
    assert typ == "NO" and b"AUTHENTICATIONFAILED" in text, text
    assert imap_plain(mc, "judy@example.com", PASSWORD) == "NO"
    mc.proc.wait_log("why=\"service not allowed for user\"")
    assert pop_login(mc, "judy@example.com", PASSWORD).startswith(b"+OK")
    # gina: imap and pop only
    assert imap_login(mc, "gina@example.com", PASSWORD)[0] == "OK"


def imaps_tlsd(free_port, tlsd_factory):  # noqa: F811
    """tlsd (not started) taking IMAPS with an optional client certificate
    and relaying it to a backend port: (tlsd, imaps port, backend port).
    Skips when tlsd or keyd is not built."""
    try:
        spfix.bin_path("tlsd")
        spfix.bin_path("keyd")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    imaps, imap_be = free_port(), free_port()
    t = tlsd_factory(extra="service.imap.sslport = %d\nservice.imap.listen = 127.0.0.1\n"
                           "service.imap.backend = 127.0.0.1:%d\n"
                           "service.imap.sslnicknames = Server-Cert\n"
                           "service.imap.sslclientauth = request\n" % (imaps, imap_be))
    return t, imaps, imap_be


def test_imaps_preauth_certmap_ldap(daemons, build, free_port, tmp_path, pki, slapd,
                                    tlsd_factory):  # noqa: F811
    t, imaps, imap_be = imaps_tlsd(free_port, tlsd_factory)
    d = tmp_path / "mailcore"
    certmap = str(tmp_path / "certmap.conf")
    with open(certmap, "w") as f:
        f.write(CERTMAP)
    os.chmod(certmap, 0o644)
    mc = make_mc(daemons, build, free_port, d, slapd,
                 extra="tlsd.handoff_socket = %s\nmailcore.certmapfile = %s\n"
                       "service.imap.backend = 127.0.0.1:%d\n" % (t.handoff, certmap, imap_be))
    t.start(backend=False)

    def ctx(cert):
        c = ssl.create_default_context(cafile=t.pki.ca_crt)
        c.load_cert_chain(*cert)
        return c

    # erin's certificate is the one in her entry (verifycert): PREAUTH
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx(slapd.certs["erin"]), timeout=20)
    assert m.welcome.startswith(b"* PREAUTH"), m.welcome
    assert b"erin@example.com" in m.welcome
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    # frank's entry holds another certificate: * OK, and EXTERNAL is refused
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx(slapd.certs["frank"]), timeout=20)
    assert m.welcome.startswith(b"* OK"), m.welcome
    assert "AUTH=EXTERNAL" in m.capabilities
    typ, _ = m._simple_command("AUTHENTICATE", "EXTERNAL", "=")
    assert typ == "NO"
    assert m.login("frank@example.com", PASSWORD)[0] == "OK"
    m.logout()
    # LDAP down: * OK (the client may still log in another way), logged
    slapd.stop()
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx(slapd.certs["erin"]), timeout=20)
    assert m.welcome.startswith(b"* OK"), m.welcome
    m.shutdown()
    mc.proc.wait_log("event=imap_preauth")
