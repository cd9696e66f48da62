"""Where the ``taskvault`` CLI is: TASKVAULT_BIN, node_modules/.bin upward from cwd, then PATH."""

import os
import shutil
from typing import List, Mapping

from .errors import TaskVaultError

INSTALL_HINT = "install it with 'npm install taskvault' in the project, or set TASKVAULT_BIN to the CLI"


def find_cli(cwd: str, env: Mapping[str, str]) -> List[str]:
    """The argv that starts the CLI (a ``.js``/``.cjs`` file given by TASKVAULT_BIN runs with node)."""
    named = env.get("TASKVAULT_BIN", "")
    if named:
        path = os.path.abspath(os.path.join(cwd, os.path.expanduser(named)))
        if not os.path.isfile(path):
            raise TaskVaultError(f"TASKVAULT_BIN={named} is not a file ({INSTALL_HINT})", "sdk")
        return _argv(path, env)
    d = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(d, "node_modules", ".bin", "taskvault")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate]
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    on_path = shutil.which("taskvault", path=env.get("PATH", os.defpath))
    if on_path:
        return [on_path]
    raise TaskVaultError(f"the taskvault CLI was not found ({INSTALL_HINT})", "sdk")


def _argv(path: str, env: Mapping[str, str]) -> List[str]:
    if path.endswith((".js", ".cjs", ".mjs")) and not os.access(path, os.X_OK):
        node = shutil.which("node", path=env.get("PATH", os.defpath))
        if not node:
            raise TaskVaultError(f"TASKVAULT_BIN={path} needs node, which is not on PATH", "sdk")
        return [node, path]
    return [path]
