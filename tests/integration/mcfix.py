"""Helpers for mailcore's integration tests: a configured instance (config,
users file, store) started as a real daemon, and readers for its Maildirs."""

import os
import socket
import subprocess

import spfix

DOMAIN = "example.com"
PASSWORD = "secret"


def crypt_hash(password):
    """A SHA-512 crypt(3) hash, made by openssl (no Python crypt module)."""
    return subprocess.run(["openssl", "passwd", "-6", password], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


class Mailcore:
    """mailcore with its own config, users file, store and spools under d."""

    def __init__(self, daemons, build, free_port, d, extra_conf="", mappings=None, aliases=None,
                 backend=False, queue_delivery=False, workers=None):
        self.d = str(d)
        self.smtp_port = free_port()
        self.sub_port = free_port()
        self.store = os.path.join(self.d, "store")
        self.queue = os.path.join(self.d, "queue")
        self.hold = os.path.join(self.d, "hold")
        self.backend = os.path.join(self.d, "smtp-backend.sock") if backend else None
        h = crypt_hash(PASSWORD)
        with open(os.path.join(self.d, "users"), "w") as f:
            f.write("alice@example.com:%s:quota=10m\n" % h)
            f.write("bob@example.com:%s:\n" % h)
            f.write("postmaster@example.com:*:\n")
        conf = [
            # the tests run as root and own their temp dirs: no drop
            "user = root",
            "group = root",
            "service.smtp.port = %d" % self.smtp_port,
            "service.submission.port = %d" % self.sub_port,
            "mailcore.listenaddr = 127.0.0.1",
            "mailcore.hostname = mx.example.com",
            "mailcore.domains = example.com",
            "mailcore.store = %s" % self.store,
            "mailcore.queue = %s" % self.queue,
            "mailcore.hold = %s" % self.hold,
            "mailcore.users = %s" % os.path.join(self.d, "users"),
            "log.level = debug",
        ]
        if not queue_delivery:
            # hermetic by default: no queue manager looking up the test
            # domains in the DNS (tests/integration/test_queue_*.py turn it on)
            conf.append("mailcore.queue.delivery = no")
        if workers is not None:
            conf.append("mailcore.workers = %d" % workers)
        if self.backend:
            conf.append("service.smtp.backend = %s" % self.backend)
        if mappings is not None:
            path = os.path.join(self.d, "mappings")
            with open(path, "w") as f:
                f.write(mappings)
            conf.append("mailcore.mappings = %s" % path)
        if aliases is not None:
            path = os.path.join(self.d, "aliases")
            with open(path, "w") as f:
                f.write(aliases)
            conf.append("mailcore.aliases = %s" % path)
        self.conf = os.path.join(self.d, "sealpost.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n" + extra_conf)
        self.argv = [build.bin("mailcore"), "-c", self.conf]
        self.daemons = daemons
        self.proc = None

    def start(self):
        self.proc = self.daemons("mailcore", self.argv).start(
            ready_port=[self.smtp_port, self.sub_port], ready_log="event=ready")
        return self

    def maildir_new(self, local):
        return os.path.join(self.store, DOMAIN, local, "Maildir", "new")

    def messages(self, local):
        """Contents of the messages in local's new/, as bytes, by file name."""
        d = self.maildir_new(local)
        if not os.path.isdir(d):
            return {}
        out = {}
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                out[name] = f.read()
        return out


def child_pids(pid):
    """The pids whose parent is pid (mailcore's workers), from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold blanks, so split after ")"
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(name))
    return sorted(out)


def _socket_inodes(pid):
    inodes = set()
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return inodes
    for n in names:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def server_pid_of(sock, pids):
    """Which of pids holds the server end of the connected TCP socket sock
    (its accepting worker), found through /proc/net/tcp; None if none."""
    cport = sock.getsockname()[1]
    sport = sock.getpeername()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == sport and int(remote.split(":")[1], 16) == cport:
                inode = int(fields[9])
    if inode is None:
        return None
    for pid in pids:
        if inode in _socket_inodes(pid):
            return pid
    return None


def recv_reply(sock, buf=b""):
    """Reads one complete (possibly multi-line) SMTP reply. Returns (reply, rest)."""
    while True:
        lines = buf.split(b"\r\n")
        for i, line in enumerate(lines[:-1]):
            if len(line) >= 4 and line[3:4] == b" ":
                reply = b"\r\n".join(lines[:i + 1]) + b"\r\n"
                return reply, buf[len(reply):]
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed; have %r" % buf)
        buf += chunk


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    greeting, rest = recv_reply(s)
    assert greeting.startswith(b"220 "), greeting
    assert rest == b""
    return s


__all__ = ["Mailcore", "recv_reply", "connect", "spfix", "PASSWORD", "DOMAIN", "child_pids",
           "server_pid_of"]
