"""A real slapd for mailcore's LDAP tests: an unprivileged instance in a temp
dir (cn=config in slapd.d with mdb; core, cosine, nis, inetorgperson and
docs/ldap/cn=sealpost.ldif), LDAP and LDAPS on loopback ports with a server
certificate for 127.0.0.1 issued by the test CA, and the test directory:
two hosted domains, users with aliases and quotas, an inactive user, users
mapped by certificate (userCertificate;binary for verifycert), one barred
from smtp by mailAllowedServiceAccess, one homed on another store host
(mailHost: other.example), and three more domains: inactive.example
(inetDomainStatus: inactive), gone.example (mailDomainStatus: deleted) and
imaponly.example (mailDomainAllowedServiceAccess: +imap:ALL)."""

# the extra hosted domains: (name, objectClass, status / filter attribute)
DOMAIN_ATTRS = {
    "inactive.example": "objectClass: inetDomain\ninetDomainStatus: inactive\n",
    "gone.example": "objectClass: mailDomain\nmailDomainStatus: deleted\n",
    "imaponly.example": "objectClass: mailDomain\nmailDomainAllowedServiceAccess: +imap:ALL\n",
}

import base64
import os
import shutil
import subprocess
import tempfile

import spfix

SUFFIX = "o=sealpost"
ROOTDN = "cn=admin,o=sealpost"
ROOTPW = "admin-secret"
PASSWORD = "ldap-secret"


def ssha(password):
    return subprocess.run(["slappasswd", "-h", "{SSHA}", "-s", password], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def der_b64(crt):
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         stdout=subprocess.PIPE).stdout
    return base64.b64encode(der).decode()


def issue_client(pki, d, name, email):
    """A client certificate for name from the test CA (tlsd trusts it)."""
    key = os.path.join(d, "client-%s.key" % name)
    csr = os.path.join(d, "client-%s.csr" % name)
    crt = os.path.join(d, "client-%s.crt" % name)
    ext = os.path.join(d, "client-%s.ext" % name)
    spfix.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-out", key])
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\nsubjectAltName=email:%s\n" % email)
    spfix.run(["openssl", "req", "-new", "-key", key, "-subj",
               "/O=Sealpost Test/CN=%s/emailAddress=%s" % (name, email), "-out", csr])
    spfix.run(["openssl", "x509", "-req", "-in", csr, "-CA", pki.p("ca.crt"), "-CAkey",
               pki.p("ca.key"), "-CAcreateserial", "-days", "400", "-sha256", "-extfile", ext,
               "-out", crt])
    return crt, key


class Slapd:
    def __init__(self, daemons, free_port, pki, d):
        # slapd drops to nobody before it reads slapd.d, and pytest's temp
        # dirs are root-only (0700): the instance lives in a dir of its own
        # under /tmp, owned by nobody; cleanup() removes it
        self.d = tempfile.mkdtemp(prefix="sp-slapd-")
        os.chmod(self.d, 0o755)
        self.pwdir = str(d)
        os.makedirs(self.pwdir, exist_ok=True)
        self.daemons = daemons
        self.pki = pki
        self.port = free_port()
        self.sport = free_port()
        self.proc = None
        self.ca = os.path.join(self.d, "ca.crt")
        shutil.copy(pki.p("ca.crt"), self.ca)
        self.confdir = os.path.join(self.d, "slapd.d")
        self.dbdir = os.path.join(self.d, "db")
        self._server_cert()
        self.certs = {name: issue_client(pki, self.d, name, "%s@example.com" % name)
                      for name in ("erin", "frank")}
        self._config()
        self._data()

    # ---- setup ----
    def _server_cert(self):
        self.key = os.path.join(self.d, "ldap.key")
        self.crt = os.path.join(self.d, "ldap.crt")
        csr = os.path.join(self.d, "ldap.csr")
        ext = os.path.join(self.d, "ldap.ext")
        spfix.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-out", self.key])
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
        spfix.run(["openssl", "req", "-new", "-key", self.key, "-subj",
                   "/O=Sealpost Test/CN=127.0.0.1", "-out", csr])
        spfix.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.pki.p("ca.crt"), "-CAkey",
                   self.pki.p("ca.key"), "-CAcreateserial", "-days", "400", "-sha256",
                   "-extfile", ext, "-out", self.crt])
        os.chmod(self.key, 0o644)  # slapd runs as nobody; a throwaway test key

    def _config(self):
        schema = "/etc/ldap/schema"
        parts = ["""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: %(d)s/slapd.pid
olcTLSCACertificateFile: %(ca)s
olcTLSCertificateFile: %(crt)s
olcTLSCertificateKeyFile: %(key)s

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema
""" % {"d": self.d, "ca": self.ca, "crt": self.crt, "key": self.key}]
        for name in ("core", "cosine", "nis", "inetorgperson"):
            with open(os.path.join(schema, name + ".ldif")) as f:
                parts.append(f.read())
        with open(os.path.join(spfix.SRCDIR, "docs", "ldap", "cn=sealpost.ldif")) as f:
            parts.append(f.read())
        parts.append("""
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,cn=config

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: %s
olcRootDN: %s
olcRootPW: %s
olcDbDirectory: %s
olcDbIndex: objectClass eq
olcDbIndex: uid,mail,mailAlternateAddress,sunPreferredDomain,associatedDomain eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by dn.exact="%s" read by * none
olcAccess: {1}to * by * read
""" % (SUFFIX, ROOTDN, ROOTPW, self.dbdir, ROOTDN))
        path = os.path.join(self.d, "config.ldif")
        # each included schema file starts with a comment and its own dn block
        with open(path, "w") as f:
            f.write("\n".join(p if p.endswith("\n") else p + "\n" for p in parts))
        os.makedirs(self.confdir)
        os.makedirs(self.dbdir)
        spfix.run(["slapadd", "-n0", "-F", self.confdir, "-l", path])

    def _data(self):
        pw = ssha(PASSWORD)
        erin_der = der_b64(self.certs["erin"][0])
        bob_der = der_b64(self.pki.clients["bob"][0])
        user = """dn: uid=%(uid)s,ou=People,o=%(dom)s,o=sealpost
objectClass: inetOrgPerson
objectClass: inetUser
objectClass: inetMailUser
uid: %(uid)s
cn: %(uid)s
sn: %(uid)s
mail: %(uid)s@%(dom)s
userPassword: %(pw)s
%(extra)s
"""
        entries = ["""dn: o=sealpost
objectClass: organization
o: sealpost
""", """dn: cn=admin,o=sealpost
objectClass: organizationalRole
cn: admin
"""]
        for dom in ("example.com", "example.net") + tuple(DOMAIN_ATTRS):
            entries.append("""dn: o=%s,o=sealpost
objectClass: organization
objectClass: sunManagedOrganization
o: %s
sunPreferredDomain: %s
""" % (dom, dom, dom) + DOMAIN_ATTRS.get(dom, ""))
            entries.append("dn: ou=People,o=%s,o=sealpost\nobjectClass: organizationalUnit\n"
                           "ou: People\n" % dom)
        users = [
            ("carol", "example.com", pw, "mailAlternateAddress: c.smith@example.com\n"
             "mailAlternateAddress: carol.smith@example.com\nmailQuota: 1048576\n"
             "mailUserStatus: active\nmailHost: mx.example.com"),
            ("dave", "example.com", pw, "mailUserStatus: inactive"),
            ("erin", "example.com", pw, "userCertificate;binary:: %s" % erin_der),
            # frank's entry holds bob's certificate: verifycert must refuse frank's own
            ("frank", "example.com", pw, "userCertificate;binary:: %s" % bob_der),
            ("gina", "example.com", pw, "mailAllowedServiceAccess: +imap,pop:ALL"),
            # a cleartext value: the compare method compares the stored form
            ("ivan", "example.com", PASSWORD, "inetUserStatus: active"),
            ("henry", "example.net", pw, ""),
            # homed on another store host: mail is queued there, logins referred
            ("olga", "example.com", pw, "mailHost: Other.Example"),
            ("ian", "inactive.example", pw, "mailUserStatus: active"),
            ("gus", "gone.example", pw, ""),
            ("quinn", "imaponly.example", pw, ""),
        ]
        for uid, dom, upw, extra in users:
            entries.append(user % {"uid": uid, "dom": dom, "pw": upw, "extra": extra})
        path = os.path.join(self.d, "data.ldif")
        with open(path, "w") as f:
            f.write("\n".join(e.strip() + "\n" for e in entries))
        spfix.run(["slapadd", "-n1", "-F", self.confdir, "-l", path])
        for root, dirs, files in os.walk(self.d):
            for n in dirs + files:
                shutil.chown(os.path.join(root, n), "nobody", "nogroup")
        shutil.chown(self.d, "nobody", "nogroup")

    # ---- running ----
    def start(self):
        self.proc = self.daemons("slapd", ["slapd", "-d", "0", "-u", "nobody", "-g", "nogroup",
                                           "-F", self.confdir, "-h",
                                           "ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/"
                                           % (self.port, self.sport)])
        self.proc.start(ready_port=[self.port, self.sport])
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.d, ignore_errors=True)

    def search(self, filt, *attrs, ldaps=False):
        """ldapsearch as the admin; returns its LDIF output."""
        uri = "ldaps://127.0.0.1:%d" % self.sport if ldaps else "ldap://127.0.0.1:%d" % self.port
        r = spfix.run(["ldapsearch", "-LLL", "-x", "-H", uri, "-D", ROOTDN, "-w", ROOTPW,
                       "-b", SUFFIX, filt] + list(attrs),
                      env=dict(os.environ, LDAPTLS_CACERT=self.pki.p("ca.crt")))
        return r.stdout

    def conf(self, method="bind", tls="ldaps", extra=""):
        """mailcore's ldap.* keys for this server."""
        pwfile = os.path.join(self.pwdir, "bindpw")
        with open(pwfile, "w") as f:
            f.write(ROOTPW + "\n")
        os.chmod(pwfile, 0o600)
        lines = ["ldap.host = 127.0.0.1",
                 "ldap.basedn = %s" % SUFFIX,
                 "ldap.binddn = %s" % ROOTDN,
                 "ldap.bindpasswordfile = %s" % os.path.abspath(pwfile),
                 "ldap.cafile = %s" % self.pki.p("ca.crt"),
                 "ldap.authmethod = %s" % method,
                 "ldap.timeout = 2s",
                 "ldap.retry_min = 100ms",
                 "ldap.retry_max = 200ms",
                 "ldap.cache_ttl = 0"]
        if tls == "ldaps":
            lines += ["ldap.usessl = yes", "ldap.port = %d" % self.sport]
        elif tls == "starttls":
            lines += ["ldap.starttls = yes", "ldap.port = %d" % self.port]
        else:
            lines += ["ldap.port = %d" % self.port]
        return "\n".join(lines) + "\n" + extra


def ldap_mailcore(daemons, build, free_port, d, slapd, domains="example.com, example.net",
                  extra="", **mc_kw):
    """A started mailcore (mcfix.Mailcore) with slapd as its directory, the
    hosted domains as mailcore.domains, and IMAP and POP on their own ports
    (mc.imap_port, mc.pop_port). mc_kw goes to Mailcore (queue_delivery=...)."""
    from mcfix import Mailcore

    d.mkdir()
    imap_port, pop_port = free_port(), free_port()
    mc = Mailcore(daemons, build, free_port, d, **mc_kw,
                  extra_conf=slapd.conf() + "mailcore.domains = %s\n" % domains +
                  "service.imap.port = %d\nservice.pop.port = %d\n%s"
                  % (imap_port, pop_port, extra))
    # one mailcore.domains line: ours, with the hosted domains
    conf = open(mc.conf).read().replace("mailcore.domains = example.com\n", "")
    with open(mc.conf, "w") as f:
        f.write(conf)
    mc.imap_port, mc.pop_port = imap_port, pop_port
    mc.start()
    spfix.wait_for(lambda: spfix.port_open(imap_port), what="imap port")
    return mc

