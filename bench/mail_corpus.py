"""A reproducible Maildir for the IMAP benchmark (bench/mail_bench.py): N
messages of a few KB with real headers (Received, From, To, Cc, Subject,
Date, Message-ID, MIME), a third of them multipart (text + HTML, some with
a small base64 attachment), 70 % seen, a few flagged. Same seed, same
bytes: both servers get a copy of the same files."""

import email.utils
import os
import random

WORDS = ("the mail server queue message delivery store folder index select fetch envelope header body "
         "quota user domain relay report meeting budget draft review release schedule invoice customer "
         "support ticket update project team plan notes please thanks regards tomorrow today week month "
         "attached below above question answer change issue fixed version build test result").split()
NAMES = ["Alice Martin", "Bob Chen", "Carol Diaz", "Dan Evans", "Erin Fox", "Frank Gupta", "Grace Hall",
         "Heidi Ito", "Ivan Jones", "Judy Kim", "Mallory Lee", "Niaj Moore", "Olivia Novak", "Peggy Ortiz"]
T0 = 1700000000   # 2023-11-14: message dates count up from here


def _addr(rng, domain=None):
    name = rng.choice(NAMES)
    local = name.lower().replace(" ", ".")
    return email.utils.formataddr((name, "%s@%s" % (local, domain or rng.choice(
        ["example.org", "example.net", "mail.example.com", "lists.example.org"]))))


def _text(rng, nbytes):
    out, n, line = [], 0, []
    while n < nbytes:
        w = rng.choice(WORDS)
        line.append(w)
        n += len(w) + 1
        if sum(len(x) + 1 for x in line) > 66:
            out.append(" ".join(line))
            line = []
            if rng.random() < 0.12:
                out.append("")
    out.append(" ".join(line))
    return "\n".join(out) + "\n"


def _b64(rng, nbytes):
    import base64
    raw = bytes(rng.getrandbits(8) for _ in range(nbytes))
    enc = base64.b64encode(raw).decode()
    return "\n".join(enc[i:i + 76] for i in range(0, len(enc), 76)) + "\n"


def message(rng, i, rcpt):
    """One message as bytes with LF line ends (Maildir's convention)."""
    when = T0 + i * 97
    size = int(min(12000, max(700, rng.lognormvariate(8.2, 0.5))))   # median about 3.6 KB
    sender = _addr(rng)
    hdr = [
        "Return-Path: <%s>" % email.utils.parseaddr(sender)[1],
        "Received: from mail.example.org (mail.example.org [192.0.2.%d])\n\tby mx.bench.test with ESMTPS id "
        "%08X\n\tfor <%s>; %s" % (i % 250 + 1, i, rcpt, email.utils.formatdate(when + 2)),
        "Received: from [198.51.100.%d] by mail.example.org with ESMTPSA; %s" % (
            i % 200 + 1, email.utils.formatdate(when)),
        "From: %s" % sender,
        "To: %s" % email.utils.formataddr(("Bench Box", rcpt)),
    ]
    if rng.random() < 0.3:
        hdr.append("Cc: %s, %s" % (_addr(rng), _addr(rng)))
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize()
    hdr += ["Subject: %s%s" % ("Re: " if rng.random() < 0.3 else "", subject),
            "Date: %s" % email.utils.formatdate(when),
            "Message-ID: <%d.%d@mail.example.org>" % (when, i)]
    if i > 0 and rng.random() < 0.3:
        hdr.append("In-Reply-To: <%d.%d@mail.example.org>" % (when - 97, i - 1))
    hdr.append("MIME-Version: 1.0")
    kind = rng.random()
    if kind < 0.67:
        hdr += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        body = _text(rng, size)
    else:
        b = "=_bench_%d" % i
        text = _text(rng, size // 2)
        parts = ["--%s\nContent-Type: text/plain; charset=utf-8\n\n%s" % (b, text)]
        if kind < 0.9:
            html = "<html><body><p>%s</p></body></html>\n" % text.replace("\n\n", "</p><p>")
            hdr.append('Content-Type: multipart/alternative; boundary="%s"' % b)
            parts.append("--%s\nContent-Type: text/html; charset=utf-8\n\n%s" % (b, html))
        else:
            hdr.append('Content-Type: multipart/mixed; boundary="%s"' % b)
            parts.append('--%s\nContent-Type: application/octet-stream; name="r%d.bin"\n'
                         'Content-Disposition: attachment; filename="r%d.bin"\nContent-Transfer-Encoding: base64\n\n%s'
                         % (b, i, i, _b64(rng, size // 3)))
        body = "This is a multi-part message in MIME format.\n\n" + "\n".join(parts) + "--%s--\n" % b
    return ("\n".join(hdr) + "\n\n" + body).encode()


def make_maildir(path, count, rcpt="box@bench.test", seed=1):
    """Writes count messages into path/cur (and empty new/ and tmp/);
    returns the total size in bytes. File names carry S= (file size) and
    W= (size with CRLF line ends) the way Dovecot and Courier write them."""
    rng = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    total = 0
    for i in range(count):
        data = message(rng, i, rcpt)
        r = rng.random()
        flags = "FS" if r < 0.05 else "S" if r < 0.7 else ""
        name = "%d.M%dP1.bench,S=%d,W=%d:2,%s" % (T0 + i * 97, i, len(data), len(data) + data.count(b"\n"), flags)
        with open(os.path.join(path, "cur", name), "wb") as f:
            f.write(data)
        total += len(data)
    return total
