"""Helpers for the Python SDK's tests: the built CLI, temp projects, the TS SDK in a node child."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Any, Dict, List, Optional

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.path.join(REPO, "dist", "cli.cjs")
PYTHON_DIR = os.path.join(REPO, "python")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

if not os.path.isfile(CLI):
    raise SystemExit(f"{CLI} is missing: run `npm run build` first")


def clean_env(**extra: Optional[str]) -> Dict[str, str]:
    """This process's environment without TaskVault settings, the built CLI as TASKVAULT_BIN."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKVAULT_")}
    env["TASKVAULT_BIN"] = CLI
    env["NO_COLOR"] = "1"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class ProjectTest(unittest.TestCase):
    """Each test gets a temp project (a git root) as cwd, with TASKVAULT_BIN set to the built CLI."""

    def setUp(self) -> None:
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="tv-py-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.makedirs(os.path.join(self.dir, ".git"))
        with open(os.path.join(self.dir, ".git", "HEAD"), "w") as f:
            f.write("ref: refs/heads/main\n")
        saved_env = dict(os.environ)
        saved_cwd = os.getcwd()
        os.environ.clear()
        os.environ.update(clean_env())
        os.chdir(self.dir)

        def restore() -> None:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)

        self.addCleanup(restore)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def write(self, rel: str, data: "bytes | str") -> str:
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return p

    def cli(self, *args: str, check: bool = True) -> "subprocess.CompletedProcess[str]":
        r = subprocess.run(
            ["node", CLI, *args], cwd=self.dir, env=clean_env(), capture_output=True, text=True
        )
        if check and r.returncode != 0:
            self.fail(f"taskvault {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r

    def node(self, script: str) -> Any:
        """Runs an ES module with `Client` (the TS SDK from dist/) in scope; returns what it prints as JSON."""
        prelude = f"import {{ Client }} from {json.dumps(os.path.join(REPO, 'dist', 'index.js'))};\n"
        r = subprocess.run(
            ["node", "--input-type=module", "-e", prelude + script],
            cwd=self.dir,
            env=clean_env(),
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            self.fail(f"node script failed: {r.stderr}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def audit(self) -> List[str]:
        with open(self.path(".taskvault", "cache", "audit.log")) as f:
            return f.read().splitlines()


def rss_peak_kb(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, in KB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")
