"""What Client(path) means: a taskvault.config.* file, or a small YAML file of cache settings."""

import json
import os
import shutil
import unittest

import support  # noqa: F401
from support import ProjectTest

from taskvault import TaskVaultError
from taskvault.sdk import Client


class ConfigPath(ProjectTest):
    def test_yaml_in_dot_taskvault_means_the_project_around_it(self) -> None:
        self.write(".taskvault/config.yaml", "---\n# nothing set: the defaults\n")
        os.makedirs(self.path("notebooks"))
        os.chdir(self.path("notebooks"))
        with Client("../.taskvault/config.yaml") as c:
            self.assertEqual(c.info["root"], self.dir)
            self.assertEqual(c.info["cacheDir"], self.path(".taskvault", "cache"))
            key = c.cache_result("yaml", b"in", b"out")
        os.chdir(self.dir)
        got = json.loads(self.cli("cache", "get", "yaml", self.write("in", b"in"), "out", "--json").stdout)
        self.assertEqual(got["key"], key)

    def test_yaml_settings_cache_dir_hash_algorithm_and_config(self) -> None:
        self.write("taskvault.config.json", json.dumps({"policies": {"small": {"maxSizeBytes": 4}}}))
        self.write(
            "settings/tv.yml",
            'cacheDir: "shared cache"   # relative to the project root\nhashAlgorithm: sha256\n'
            "config: ../taskvault.config.json\n",
        )
        with Client("settings/tv.yml") as c:
            self.assertEqual(c.info["root"], self.dir)  # the named config file's directory
            self.assertEqual(c.info["cacheDir"], self.path("settings", "shared cache"))
            self.assertEqual(c.info["hashAlgorithm"], "sha256")
            with self.assertRaisesRegex(TaskVaultError, r"over the 4 B per-entry limit of its policy"):
                c.cache_result("small", b"x", b"too large")
            c.cache_result("other", b"x", b"fine")
            self.assertEqual(c.get_stats()["entries"], 1)

    def test_bad_yaml_is_one_line_with_file_and_line(self) -> None:
        self.write("a.yaml", "cacheDir: x\ncache_dir: y\n")
        with self.assertRaises(TaskVaultError) as e:
            Client("a.yaml")
        self.assertEqual(
            str(e.exception), f"{self.path('a.yaml')}:2: unknown key 'cache_dir' (known: cacheDir, hashAlgorithm, config)"
        )
        self.write("b.yaml", "cacheDir:\n  nested: true\n")
        with self.assertRaisesRegex(TaskVaultError, r"b\.yaml:1: 'cacheDir' has no value$"):
            Client("b.yaml")
        with self.assertRaisesRegex(TaskVaultError, r"missing\.yaml: No such file or directory \(create it, even empty, or use Client\(\)\)$"):
            Client("missing.yaml")
        self.write("c.yaml", "hashAlgorithm: md5\n")
        with self.assertRaisesRegex(TaskVaultError, r"^TASKVAULT_HASH_ALGORITHM: unknown hash algorithm 'md5' \(use 'blake3' or 'sha256'\)$"):
            Client("c.yaml")

    def test_a_taskvault_config_file_is_the_clis_config(self) -> None:
        self.write(
            "proj/taskvault.config.ts",
            "export default { cacheDir: '.cache/tv', policies: { default: { ttlSeconds: 3600 } } };\n",
        )
        with Client("proj/taskvault.config.ts") as c:
            self.assertEqual(c.info["root"], self.path("proj"))
            self.assertEqual(c.info["cacheDir"], self.path("proj", ".cache", "tv"))
            c.cache_result("t", b"i", b"o")
        self.write("proj/bad/taskvault.config.json", "{ not json")
        with self.assertRaises(TaskVaultError) as e:
            Client("proj/bad/taskvault.config.json")
        self.assertNotIn("\n", str(e.exception))
        self.assertIn("taskvault.config.json", str(e.exception))
        self.assertEqual(e.exception.reason, "config")

    def test_cache_dir_replaces_the_yamls_cache_directory(self) -> None:
        for yaml in ("", "cacheDir: from-yaml\n"):
            with self.subTest(yaml=yaml):
                self.write(".taskvault/config.yaml", yaml)
                with Client(".taskvault/config.yaml", cache_dir="mycache") as c:
                    self.assertEqual(c.info["cacheDir"], self.path("mycache"))
                    self.assertEqual(c._serve_args.count("--cache-dir"), 1)
                    c.cache_result("t", b"in", b"out")
                    ran = c.run(command=["true"], capture_output=True)
                self.assertEqual(ran.kind, "miss")
                stats = json.loads(self.cli("stats", "--json", "--cache-dir", "mycache").stdout)
                self.assertEqual(stats["entries"], 2)  # the save and the run, both in mycache
                shutil.rmtree(self.path("mycache"))

    def test_the_service_refuses_a_flag_given_twice(self) -> None:
        for flag in ("--cache-dir", "--config"):
            with self.subTest(flag=flag):
                r = self.cli("serve", "--stdio", flag, "a", flag, "b", check=False)
                self.assertEqual(r.returncode, 2)
                self.assertEqual(r.stderr, f"taskvault: error: serve: {flag} given 2 times (give it once)\n")
        self.assertFalse(os.path.exists(self.path("a,b")))

    def test_bad_arguments(self) -> None:
        with self.assertRaisesRegex(TypeError, r"^Client\(config\) takes a path, got int$"):
            Client(3)  # type: ignore[arg-type]
        with Client() as c:
            with self.assertRaisesRegex(TypeError, r"^input must be bytes, str, Client.file\(path\) or a binary file object, got int$"):
                c.get_cached_result("t", 5)  # type: ignore[arg-type]
            with self.assertRaisesRegex(TypeError, r"a path object is ambiguous"):
                import pathlib

                c.cache_result("t", pathlib.Path("x"), b"o")  # type: ignore[arg-type]
            with self.assertRaisesRegex(TaskVaultError, r"^get_cached_result: the task name is empty$"):
                c.get_cached_result("", b"x")
            with self.assertRaisesRegex(TaskVaultError, r"^cannot read input file .*nope: ENOENT"):
                c.get_cached_result("t", Client.file("nope"))
            with self.assertRaisesRegex(TypeError, r"duration_ms must be a number >= 0"):
                c.cache_result("t", b"i", b"o", duration_ms=-1)


if __name__ == "__main__":
    unittest.main()
