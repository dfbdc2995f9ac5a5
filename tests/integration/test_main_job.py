"""The README's main job in background mode: `scripts/instance.sh start`
creates an instance and returns once every service accepts connections;
every command of its cheat sheet is run as printed and must print what it
promises; `stop` must leave no process of the instance behind."""

import json
import os
import pwd
import subprocess

import spfix


def instance(action, d, *extra):
    return spfix.run(["sh", os.path.join(spfix.SRCDIR, "scripts", "instance.sh"), action, d] + list(extra),
                     env=dict(os.environ, SP_BUILDDIR=spfix.BUILDDIR), timeout=180, check=False)


def procs_of(d):
    """pids whose command line mentions the instance directory."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if d in cmd and state != "Z" and int(pid) != os.getpid():
            found.append((pid, cmd))
    return found


def daemon_procs(d):
    """(pid, uid, command) of every process in the daemons' process groups
    (each daemon is started in its own session; its pid file names it)."""
    groups = set()
    piddir = os.path.join(d, "pids")
    for f in os.listdir(piddir):
        with open(os.path.join(piddir, f)) as fh:
            groups.add(int(fh.read().strip()))
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/status" % pid) as fh:
                uid = int([l for l in fh if l.startswith("Uid:")][0].split()[2])  # effective
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if int(fields[3]) in groups and fields[0] != "Z":
            out.append((int(pid), uid, cmd))
    return out


def test_main_job_background_cheatsheet_and_clean_stop(tmp_path):
    # pytest's temp dirs are 0700; the daemons drop to sealpost, who must be
    # able to reach the instance (as in a normal checkout)
    for p in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        if str(p).startswith("/tmp/"):
            os.chmod(p, 0o755)
    d = str(tmp_path / "inst")
    r = instance("start", d)
    try:
        assert r.returncode == 0, r.stdout
        env = {}
        with open(os.path.join(d, "instance.env")) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v
        for k in ("SMTP_PORT", "SUBMISSION_PORT", "SMTPS_PORT", "IMAP_PORT", "IMAPS_PORT", "POP_PORT",
                  "POPS_PORT", "HTTPS_PORT", "HOST", "CA_FILE", "USER1", "PASS1", "USER2", "PASS2",
                  "CLIENT_CERT", "CLIENT_KEY", "CLIENT_CERT_USER", "TOKEN_LABEL", "TOKEN_PIN",
                  "SOFTHSM2_CONF", "PKCS11_MODULE", "SERVER_KEY_LABEL", "CERTDB", "CONF", "TOKENS_CLI",
                  "LOG_DIR"):
            assert k in env, "instance.env lacks %s" % k
        with open(os.path.join(d, "cheatsheet.json")) as f:
            sheet = json.load(f)
        assert sheet, "empty cheat sheet"
        for item in sheet:
            assert item["cmd"] in r.stdout, "not printed: %s" % item["cmd"]
            out = subprocess.run(item["cmd"], shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL).stdout
            assert item["expect"] in out, "%s\n$ %s\n%s" % (item["what"], item["cmd"], out)
        st = instance("status", d)
        assert st.returncode == 0, st.stdout
        if os.geteuid() == 0:
            procs = daemon_procs(d)
            assert procs and all(uid == pwd.getpwnam("sealpost").pw_uid for _, uid, _ in procs), \
                "daemons should run unprivileged: %r" % procs
        # a second start reuses the instance and refuses to run it twice
        again = instance("start", d)
        assert again.returncode != 0 and "already running" in again.stdout, again.stdout
    finally:
        s = instance("stop", d)
    assert s.returncode == 0, s.stdout
    assert procs_of(d) == [], "left behind: %r" % procs_of(d)
    assert instance("status", d).returncode != 0
