"""docs/CONFIG.md is generated from the configuration schema: it must match
what bin/confdoc prints from the code as built, or the reference is stale."""

import os

import spfix


def test_reference_is_current(build):
    doc = os.path.join(build.srcdir, "docs", "CONFIG.md")
    r = spfix.run([build.bin("confdoc"), "--check", doc], check=False)
    assert r.returncode == 0, "docs/CONFIG.md is stale; run `make docs`:\n" + r.stdout


def test_reference_lists_common_keys(build):
    out = spfix.run([build.bin("confdoc")]).stdout
    for key in ("log.level", "log.file", "user", "group"):
        assert "`%s`" % key in out or key in out
