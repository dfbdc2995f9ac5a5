"""pytest fixtures shared by Sealpost's integration tests (see spfix.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import spfix  # noqa: E402


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def daemons(request, tmp_path):
    """Factory for daemons of one test: daemons(name, argv, env=..).start(...).
    All are stopped at the end of the test; their logs are printed if it failed."""
    started = []

    def make(name, argv, env=None, cwd=None):
        d = spfix.Daemon(name, argv, tmp_path, env=env, cwd=cwd)
        started.append(d)
        return d

    yield make
    for d in reversed(started):
        d.stop()
    failed = any(getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    if failed:
        for d in started:
            sys.stderr.write("\n----- log of %s (%s) -----\n%s\n" % (d.name, d.logpath, d.log()))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A test PKI and certdb (spfix.PKI), made once per session. Tests that
    modify the certdb should copy it (shutil.copytree(pki.certdb, ...))."""
    return spfix.PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def free_port():
    return spfix.free_port


@pytest.fixture(scope="session")
def build():
    class Build:
        srcdir = spfix.SRCDIR
        builddir = spfix.BUILDDIR
        bin = staticmethod(spfix.bin_path)
    return Build
