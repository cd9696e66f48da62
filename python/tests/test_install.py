"""`pip install ./python`, offline, into a venv: the installed package works and is typed."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import support
from support import clean_env


class Install(unittest.TestCase):
    def test_pip_install_offline_into_a_venv(self) -> None:
        work = tempfile.mkdtemp(prefix="tv-py-venv-")
        self.addCleanup(shutil.rmtree, work, True)
        # A copy, so that the build's egg-info and build/ never land in the checkout.
        src = os.path.join(work, "src")
        shutil.copytree(support.PYTHON_DIR, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info", "build"))
        venv = os.path.join(work, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
        py = os.path.join(venv, "bin", "python")
        env = clean_env(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONPATH=None)
        r = subprocess.run(
            [py, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps", src],
            env=env,
            capture_output=True,
            text=True,
        )
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        project = os.path.join(work, "project")
        os.makedirs(os.path.join(project, ".git"))
        script = (
            "import os, taskvault, taskvault.sdk\n"
            "from taskvault.sdk import Client\n"
            "assert os.path.isfile(os.path.join(os.path.dirname(taskvault.__file__), 'py.typed'))\n"
            "assert taskvault.__file__.startswith(os.environ['VENV']), taskvault.__file__\n"
            "with Client() as c:\n"
            "    c.cache_result('installed', b'in', b'out')\n"
            "    print(c.get_cached_result('installed', b'in'))\n"
        )
        r = subprocess.run(
            [py, "-c", script], cwd=project, env={**env, "VENV": venv}, capture_output=True, text=True
        )
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "(b'out', True)\n")


if __name__ == "__main__":
    unittest.main()
