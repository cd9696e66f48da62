"""A 1 GB value passed by path and a 256 MB file object streamed: neither process holds it in memory."""

import hashlib
import json
import os
import resource
import unittest

import support  # noqa: F401
from support import ProjectTest, rss_peak_kb

from taskvault.sdk import Client

GB = 1 << 30
MB = 1 << 20


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MB), b""):
            h.update(block)
    return h.hexdigest()


class BigFiles(ProjectTest):
    def setUp(self) -> None:
        super().setUp()
        # The default policy stores results up to 100 MiB; this project allows 2 GB.
        self.write("taskvault.config.json", json.dumps({"policies": {"default": {"maxSizeBytes": 2 * GB}}}))

    def make(self, size: int) -> None:
        """model.ckpt: `size` bytes, each MB distinct."""
        block = os.urandom(MB)
        with open(self.path("model.ckpt"), "wb") as f:
            for i in range(size // MB):
                f.write(i.to_bytes(8, "big") + block[8:])

    def test_one_gigabyte_by_path_with_bounded_memory(self) -> None:
        self.make(GB)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with Client() as client:
            # The checkpoint as output, keyed by a 1 GB input too (the same file): both streamed.
            key = client.cache_result("train", Client.file("model.ckpt"), Client.file("model.ckpt"))
            value, hit = client.get_cached_result("train", Client.file("model.ckpt"), to_file="restored.ckpt")
            self.assertEqual((value, hit), (None, True))
            service_peak = rss_peak_kb(client.info["pid"])
        python_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        self.assertEqual(os.path.getsize(self.path("restored.ckpt")), GB)
        self.assertEqual(_sha256(self.path("restored.ckpt")), _sha256(self.path("model.ckpt")))
        got = json.loads(self.cli("cache", "get", "train", "model.ckpt", "cli.ckpt", "--json").stdout)
        self.assertEqual((got["key"], got["size"]), (key, GB))
        os.remove(self.path("cli.ckpt"))
        print(f"\n  1 GB by path: service peak RSS {service_peak // 1024} MB, Python grew {python_growth // 1024} MB")
        self.assertLess(service_peak, 300 * 1024, "the service never holds the file")
        self.assertLess(python_growth, 64 * 1024, "Python never reads the file")

    def test_a_file_object_is_streamed_in_chunks(self) -> None:
        self.make(256 * MB)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with Client() as client, open(self.path("model.ckpt"), "rb") as out, open(self.path("model.ckpt"), "rb") as inp:
            key = client.cache_result("stream", inp, out)
            service_peak = rss_peak_kb(client.info["pid"])
            inp.seek(0)
            self.assertEqual(client.get_cached_result("stream", inp, to_file="s.ckpt"), (None, True))
        python_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        self.assertEqual(_sha256(self.path("s.ckpt")), _sha256(self.path("model.ckpt")))
        self.assertRegex(key, "^[0-9a-f]{64}$")
        print(f"\n  256 MB as a file object: service peak RSS {service_peak // 1024} MB, Python grew {python_growth // 1024} MB")
        self.assertLess(service_peak, 300 * 1024)
        self.assertLess(python_growth, 64 * 1024)


if __name__ == "__main__":
    unittest.main()
