"""What the path given to ``Client(path)`` means.

- ``taskvault.config.ts`` (or .mts/.mjs/.js/.json): that config file, as ``taskvault --config``;
  the project root is its directory.
- ``*.yaml`` / ``*.yml`` (e.g. ``.taskvault/config.yaml``): a small file of cache settings read
  here (TaskVault itself has no YAML config). The project root is the directory holding the
  ``.taskvault/`` directory the file is in (else the file's own directory); the cache is
  ``<root>/.taskvault/cache`` unless the file says otherwise. Keys: ``cacheDir`` (relative to the
  root), ``hashAlgorithm`` (blake3 or sha256), ``config`` (a taskvault.config.* file, relative to
  the root, whose policies then apply; as with ``--config``, the project root is then that file's
  directory). Only ``key: value`` lines and ``#`` comments.
"""

import os
from typing import Dict, List, NamedTuple, Optional

from .errors import TaskVaultError

YAML_KEYS = ("cacheDir", "hashAlgorithm", "config")


class ServeSetup(NamedTuple):
    """How to start the service for a config path: its working directory, flags and env."""

    cwd: str
    args: List[str]
    env: Dict[str, str]


def setup_for(config: Optional[str], cwd: str, cache_dir: Optional[str] = None) -> ServeSetup:
    """``cache_dir`` (relative to ``cwd``) replaces the cache directory the config gives: the
    flags hold one ``--cache-dir`` at most."""
    if config is None:
        setup = ServeSetup(cwd, [], {})
    else:
        path = os.path.abspath(os.path.join(cwd, config))
        if path.endswith((".yaml", ".yml")):
            setup = _from_yaml(path)
        else:
            setup = ServeSetup(os.path.dirname(path), ["--config", path], {})
    if cache_dir is None:
        return setup
    args = list(setup.args)
    if "--cache-dir" in args:
        at = args.index("--cache-dir")
        del args[at : at + 2]
    args += ["--cache-dir", os.path.abspath(os.path.join(cwd, cache_dir))]
    return ServeSetup(setup.cwd, args, setup.env)


def _from_yaml(path: str) -> ServeSetup:
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise TaskVaultError(
            f"cannot read {path}: {e.strerror or e} (create it, even empty, or use Client())", "config"
        ) from None
    values = parse_flat_yaml(text, path)
    here = os.path.dirname(path)
    root = os.path.dirname(here) if os.path.basename(here) == ".taskvault" else here
    cache_dir = os.path.join(root, values.get("cacheDir", os.path.join(".taskvault", "cache")))
    args = ["--cache-dir", cache_dir]
    if "config" in values:
        args += ["--config", os.path.join(root, values["config"])]
    env = {}
    if "hashAlgorithm" in values:
        env["TASKVAULT_HASH_ALGORITHM"] = values["hashAlgorithm"]
    return ServeSetup(root, args, env)


def parse_flat_yaml(text: str, where: str) -> Dict[str, str]:
    """``key: value`` lines (values plain or quoted), comments and blank lines; nothing nested."""
    out: Dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line == "---":
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or raw[:1].isspace() or not key:
            raise TaskVaultError(f"{where}:{n}: expected 'key: value', got {raw.strip()!r}", "config")
        if key not in YAML_KEYS:
            raise TaskVaultError(
                f"{where}:{n}: unknown key '{key}' (known: {', '.join(YAML_KEYS)})", "config"
            )
        value = value.strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            end = value.find(quote, 1)
            if end == -1:
                raise TaskVaultError(f"{where}:{n}: unterminated quote", "config")
            value = value[1:end]
        else:
            value = value.split(" #", 1)[0].strip()
        if not value:
            raise TaskVaultError(f"{where}:{n}: '{key}' has no value", "config")
        out[key] = value
    return out
