"""Repeat hits served from the Client's memory: counted as hits, and never served once the index
changed (a removal, an overwrite), the cache was deleted, the TTL passed or a second went by."""

import json
import os
import shutil
import signal
import subprocess
import time
import unittest

import support
from support import ProjectTest

from taskvault import _memo
from taskvault._memo import MAX_BYTES, MAX_VALUE, Memo
from taskvault.sdk import Client


def _stopped(pid: int):
    """Context manager: the service is stopped (SIGSTOP) inside; whatever answers comes from memory."""

    class Stopped:
        def __enter__(self) -> None:
            os.kill(pid, signal.SIGSTOP)

        def __exit__(self, *exc: object) -> None:
            os.kill(pid, signal.SIGCONT)

    return Stopped()


class ServedFromMemory(ProjectTest):
    """Clients here save with durability 'strict' unless said: the commit, and so the generation it
    rewrites, is done when a save returns (with 'fast' it lands a moment later). The one-second bound
    is raised to an hour, so that only the generation file can send a lookup back to the index."""

    def setUp(self) -> None:
        super().setUp()
        saved = _memo.CONFIRM_S
        _memo.CONFIRM_S = 3600.0
        self.addCleanup(setattr, _memo, "CONFIRM_S", saved)

    def audit_hits(self) -> int:
        lines = self.cli("audit").stdout.splitlines()
        return sum(1 for line in lines if " HIT get " in line)

    def test_a_repeat_hit_is_served_without_the_service_and_still_counted(self) -> None:
        with Client(durability="strict") as client:
            client.cache_result("agg", b"in", b"out")
            self.assertEqual(client.get_cached_result("agg", "in"), (b"out", True))  # asks the index
            with _stopped(client.info["pid"]):
                for _ in range(50):
                    self.assertEqual(client.get_cached_result("agg", b"in"), (b"out", True))
            stats = client.get_stats()
            self.assertEqual(stats["hits"], 51)
        self.assertEqual(self.audit_hits(), 51)
        ls = json.loads(self.cli("ls", "--json").stdout)
        self.assertEqual([e.get("hits") for e in ls], [51])

    def test_a_removal_by_another_process_is_seen_at_once(self) -> None:
        with Client(durability="strict") as client:
            client.cache_result("agg", b"in", b"out")
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"out", True))
            self.cli("clean", "--yes")
            self.assertEqual(client.get_cached_result("agg", b"in"), (None, False))

    def test_an_overwrite_by_another_process_is_seen_at_once(self) -> None:
        with Client(durability="strict") as client:
            client.cache_result("agg", b"in", b"old")
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"old", True))
            with Client(durability="strict") as other:
                other.cache_result("agg", b"in", b"new")
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"new", True))
            # And from the CLI.
            self.write("in.txt", "in")
            self.write("out.txt", "cli")
            self.cli("cache", "save", "agg", "in.txt", "out.txt")
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"cli", True))

    def test_its_own_save_replaces_what_it_remembers(self) -> None:
        for durability in ("strict", "fast"):
            with self.subTest(durability=durability), Client(durability=durability) as client:
                client.cache_result("agg", durability, b"old")
                client.get_stats()  # the commit is in, the generation rewritten
                self.assertEqual(client.get_cached_result("agg", durability), (b"old", True))
                self.assertEqual(client.get_cached_result("agg", durability), (b"old", True))
                # With 'fast' its commit comes later: until then only forget() keeps "old" from being served.
                client.cache_result("agg", durability, b"new")
                self.assertEqual(client.get_cached_result("agg", durability), (b"new", True))

    def test_a_deleted_cache_directory_is_a_miss_and_new_saves_reach_the_cli(self) -> None:
        with Client(durability="strict") as client:
            client.cache_result("agg", b"in", b"out")
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"out", True))
            shutil.rmtree(client.info["cacheDir"])
            time.sleep(0.15)  # the service looks for a replaced index every 0.1 s
            self.assertEqual(client.get_cached_result("agg", b"in"), (None, False))
            client.cache_result("agg", b"in", b"again")
        self.write("in.txt", "in")
        self.cli("cache", "get", "agg", "in.txt", "got.txt")
        with open(self.path("got.txt"), "rb") as f:
            self.assertEqual(f.read(), b"again")

    def test_a_forked_child_serves_what_its_parent_remembered_and_books_it(self) -> None:
        with Client(durability="strict") as client:
            client.cache_result("agg", b"in", b"out")
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"out", True))
            pid = os.fork()
            if pid == 0:  # the child: its answer is its exit code
                ok = client.get_cached_result("agg", b"in") == (b"out", True)
                client.close()  # books the hit through the child's own service
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
            self.assertEqual(client.get_stats()["hits"], 2)

    def test_memoize_repeats_come_from_memory(self) -> None:
        with Client(durability="strict") as client:
            calls = []

            @client.memoize("square")
            def square(n: int) -> int:
                calls.append(n)
                return n * n

            self.assertEqual([square(4), square(4)], [16, 16])
            with _stopped(client.info["pid"]):
                self.assertEqual([square(4) for _ in range(10)], [16] * 10)
            self.assertEqual(calls, [4])
            self.assertEqual(client.get_stats()["hits"], 11)

    def test_its_own_save_replaces_every_lookup_of_that_key(self) -> None:
        # square(4) and square(4.0) are two lookups of one key (the input text "[4]").
        with Client(durability="fast") as client:

            @client.memoize("square")
            def square(n: float) -> str:
                return "old"

            self.assertEqual(square(4), "old")
            client.get_stats()  # the commit is in, the generation rewritten
            self.assertEqual([square(4), square(4.0)], ["old", "old"])  # both remembered
            self.assertEqual(client.get_cached_result("square", "[4]"), (b'"old"', True))
            client.cache_result("square", "[4]", '"new"')  # its commit comes later ('fast')
            self.assertEqual([square(4), square(4.0)], [b'"new"', b'"new"'])

    def test_another_cache_moved_into_place_is_seen_at_once(self) -> None:
        # The generation file this client holds open moves away with the old cache directory.
        os.makedirs(self.path("other", ".git"))
        self.write("other/in", b"in")
        self.write("other/out", b"new")
        r = subprocess.run(
            ["node", support.CLI, "cache", "save", "agg", "in", "out", "-q"],
            cwd=self.path("other"), env=support.clean_env(), capture_output=True, text=True,
        )
        self.assertEqual(r.returncode, 0, r.stderr)
        with Client(durability="strict") as client:
            client.cache_result("agg", b"in", b"old")
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"old", True))
            cache = client.info["cacheDir"]
            os.rename(cache, cache + ".aside")
            os.rename(self.path("other", ".taskvault", "cache"), cache)
            time.sleep(0.15)  # the service looks for a replaced index every 0.1 s
            self.assertEqual(client.get_cached_result("agg", b"in"), (b"new", True))

    def test_inputs_by_path_are_always_asked(self) -> None:
        with Client(durability="strict") as client:
            path = self.write("in.bin", b"in")
            client.cache_result("agg", Client.file(path), b"out")
            self.assertEqual(client.get_cached_result("agg", Client.file(path)), (b"out", True))
            self.write("in.bin", b"changed")
            self.assertEqual(client.get_cached_result("agg", Client.file(path)), (None, False))


class MemoBounds(ProjectTest):
    """The rules of _memo.Memo, on a generation file written here as the store would."""

    def setUp(self) -> None:
        super().setUp()
        self.gen = self.write("cache/generation", b"a" * 16)
        self.memo = Memo(self.path("cache"))
        self.addCleanup(self.memo.close)

    def remember(self, what: object, value: bytes = b"v", args: str = "", **reply: object) -> None:
        self.memo.put(("t", args, what), self.memo.asking(), {"key": f"k{what}", **reply}, value)

    def get(self, what: object, args: str = "") -> object:
        return self.memo.get(("t", args, what))

    def test_a_new_generation_or_a_passed_ttl_or_a_second_ends_it(self) -> None:
        self.remember(1)
        self.remember(2, until=time.time() * 1000 - 1)
        self.assertIsNotNone(self.get(1))
        self.assertIsNone(self.get(2), "TTL passed")
        with open(self.gen, "r+b") as f:
            f.write(b"b" * 16)
        self.assertIsNone(self.get(1), "generation changed")
        self.remember(3)
        real = time.monotonic
        try:
            time.monotonic = lambda: real() + 1.0  # type: ignore[assignment]
            self.assertIsNone(self.get(3), "not confirmed for a second")
        finally:
            time.monotonic = real  # type: ignore[assignment]

    def test_another_file_at_the_generation_path_ends_it(self) -> None:
        self.remember(1)
        os.rename(self.gen, self.path("aside"))  # still a file (a cache moved aside)
        os.rename(self.write("other/generation", b"a" * 16), self.gen)  # the same bytes, another file
        self.assertIsNone(self.get(1))
        self.remember(2)  # the file now at the path is held from here on
        self.assertIsNotNone(self.get(2))

    def test_forget_drops_every_lookup_of_the_key(self) -> None:
        self.memo.put(("t", "[1]"), self.memo.asking(), {"key": "k"}, b"v")
        self.memo.put(("t", "[1.0]"), self.memo.asking(), {"key": "k"}, b"v")
        self.memo.put(("t", "[2]"), self.memo.asking(), {"key": "k2"}, b"v")
        self.memo.forget("k")
        self.assertEqual([self.memo.get(("t", a)) is None for a in ("[1]", "[1.0]", "[2]")], [True, True, False])

    def test_a_deleted_generation_file_ends_it(self) -> None:
        self.remember(1)
        shutil.rmtree(self.path("cache"))  # the cache directory removed by hand
        self.assertIsNone(self.get(1))

    def test_no_generation_file_means_nothing_is_remembered(self) -> None:
        os.unlink(self.gen)
        self.assertIsNone(self.memo.asking().generation)
        self.remember(1)
        self.assertIsNone(self.get(1))

    def test_large_values_are_not_kept_and_memory_is_bounded(self) -> None:
        self.remember("big", b"x" * (MAX_VALUE + 1))
        self.assertIsNone(self.get("big"))
        n = MAX_BYTES // MAX_VALUE + 4
        for i in range(n):
            self.remember(i, b"x" * MAX_VALUE)
        self.assertIsNone(self.get(0), "the oldest went first")
        self.assertIsNotNone(self.get(n - 1))
        kept = sum(1 for i in range(n) if self.get(i) is not None)
        self.assertLessEqual(kept * MAX_VALUE, MAX_BYTES)

    def test_the_key_counts_toward_memory_memoize_arguments_included(self) -> None:
        args = "a" * (MAX_VALUE - 16)  # a large argument, a small result
        n = MAX_BYTES // MAX_VALUE + 4
        for i in range(n):
            self.remember(i, b"v", args=args)
        self.assertIsNone(self.get(0, args), "the oldest went first: arguments are counted")
        self.assertIsNotNone(self.get(n - 1, args))


if __name__ == "__main__":
    unittest.main()
