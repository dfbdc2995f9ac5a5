"""mailcore's IMAP with an independent client, the npm package imapflow
(tests/integration/imapflow_client.js): skipped where imapflow is not
installed (NODE_PATH, or SP_NODE_MODULES pointing at a node_modules)."""

import json
import os
import shutil
import subprocess

import pytest

from imapfix import imap_mailcore, PASSWORD

HERE = os.path.dirname(__file__)


# where scripts/install-deps.sh puts it
DEFAULT_NODE_MODULES = "/var/cache/sealpost-test/npm/node_modules"


def node_env():
    env = dict(os.environ)
    mods = os.environ.get("SP_NODE_MODULES", DEFAULT_NODE_MODULES)
    if os.path.isdir(mods):
        env["NODE_PATH"] = mods
    return env


@pytest.fixture
def mc(daemons, build, free_port, tmp_path):
    if shutil.which("node") is None:
        pytest.skip("no node")
    r = subprocess.run(["node", "-e", "require.resolve('imapflow')"], env=node_env(), capture_output=True)
    if r.returncode != 0:
        pytest.skip("imapflow not installed (set SP_NODE_MODULES)")
    return imap_mailcore(daemons, build, free_port, tmp_path)


def test_imapflow_session(mc):
    rounds = 20
    r = subprocess.run(["node", os.path.join(HERE, "imapflow_client.js"), str(mc.imap_port),
                        "alice@example.com", PASSWORD, str(rounds)],
                       env=node_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "IDLE" in out["capabilities"] and "UIDPLUS" in out["capabilities"]
    assert "INBOX" in out["list"]
    assert out["exists"] == rounds and out["fetched"] == rounds
    assert out["search"] == [8]
    assert out["moved"] == 1 and out["archive"] == 1
    assert "$Forwarded" in out["flags2"] and out["keywordSearch"] == [2]
    assert "\\*" in out["permanentFlags"]
