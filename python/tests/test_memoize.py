"""Client.memoize: canonical argument keys, result encodings, hooks, and a cache that fails open."""

import collections
import os
import pickle
import signal
import threading
import time
import unittest
from typing import List

import support  # noqa: F401
from support import ProjectTest

from taskvault import TaskVaultError
from taskvault.sdk import Client


class Memoize(ProjectTest):
    def test_plain_values_by_sorted_json_bytes_and_files_by_content(self) -> None:
        calls: List[tuple] = []
        self.write("a.bin", b"same content")
        self.write("b.bin", b"same content")
        self.write("c.bin", b"other content")
        with Client() as client:

            @client.memoize("f")
            def f(config: dict, data: object = None, *extra: int, scale: float = 1.0) -> dict:
                calls.append((config, extra, scale))
                return {"config": config, "extra": list(extra), "scale": scale}

            r1 = f({"b": [1, 2], "a": {"y": None, "x": True}})
            r2 = f({"a": {"x": True, "y": None}, "b": [1, 2]})  # keys reordered: same call
            self.assertEqual(r1, r2)
            self.assertEqual(len(calls), 1)
            f({"a": 1}, Client.file("a.bin"))
            f({"a": 1}, Client.file(self.path("b.bin")))  # same content, other path: hit
            self.assertEqual(len(calls), 2)
            f({"a": 1}, Client.file("c.bin"))
            f({"a": 1}, b"same content")  # bytes are not a file: keyed apart
            f({"a": 1}, b"same content")
            self.assertEqual(len(calls), 4)
            f({"a": 1}, None, 1, 2, scale=2.0)
            f({"a": 1}, None, 1, 2, scale=2)  # 2.0 and 2 are one JSON number
            f({"a": 1}, None, 1, 2)  # the default 1.0 applies: another key
            f({"a": 1}, None, 1, 2, scale=1.0)
            self.assertEqual(len(calls), 6)
            big = 2**70
            f({"n": big})
            self.assertEqual(f({"n": big}), {"config": {"n": big}, "extra": [], "scale": 1.0})
            self.assertEqual(len(calls), 7)

    def test_results_as_bytes_json_or_through_hooks(self) -> None:
        runs = []
        with Client() as client:

            @client.memoize("raw")
            def raw(n: int) -> bytes:
                runs.append("raw")
                return bytes([n]) * 3

            @client.memoize("pickled", encode=pickle.dumps, decode=pickle.loads)
            def pickled(n: int) -> object:
                runs.append("pickled")
                return {"set": {n, n + 1}, "tuple": (n,)}

            @client.memoize("unjsonable")
            def unjsonable(n: int) -> object:
                runs.append("unjsonable")
                return {n, 2}

            self.assertEqual((raw(7), raw(7)), (b"\x07\x07\x07", b"\x07\x07\x07"))
            self.assertEqual(pickled(1), pickled(1))
            self.assertEqual(pickled(1), {"set": {1, 2}, "tuple": (1,)})
            warned: List[str] = []
            client._on_warning = warned.append
            self.assertEqual(unjsonable(1), {1, 2})
            self.assertEqual(unjsonable(1), {1, 2})
            self.assertEqual(runs, ["raw", "pickled", "unjsonable", "unjsonable"])
            self.assertEqual(len(warned), 2)
            self.assertRegex(warned[0], r"^memoize unjsonable: not cached: the result cannot be stored as JSON")

    def test_bad_arguments_raise_one_clear_line(self) -> None:
        with Client() as client:

            @client.memoize("g")
            def g(x: object) -> int:
                return 1

            with self.assertRaisesRegex(TypeError, r"^memoize\('g'\): argument 1 is a object, which cannot be keyed; "):
                g(object())
            with self.assertRaisesRegex(TypeError, r"argument 1 is nan, which JSON cannot hold"):
                g(float("nan"))
            with self.assertRaisesRegex(TypeError, r"non-str key 1"):
                g({1: 2})
            with self.assertRaisesRegex(TypeError, r"argument 1 has a non-str key None; JSON keys are strings$"):
                g({"a": {None: 2}})  # not keyed as {"a": {"null": 2}}
            with self.assertRaisesRegex(TypeError, r"^memoize\('g'\): missing a required argument: 'x'$"):
                g()
            with self.assertRaisesRegex(TypeError, r"give encode and decode together"):
                client.memoize("h", encode=pickle.dumps)
            with self.assertRaisesRegex(TaskVaultError, r"^memoize: the task name is empty$"):
                client.memoize("")
            with self.assertRaisesRegex(TypeError, r"^memoize: the task name must be a str, got int$"):
                client.memoize(3)  # type: ignore[arg-type]

    def test_a_dict_shaped_like_a_placeholder_is_refused_not_keyed_as_bytes(self) -> None:
        # {"$bytes": 0} is how the first bytes argument travels to the service: as an argument of
        # its own it would be keyed as those bytes, and f(b"x", it) would return f(b"x", b"x").
        self.write("a.bin", b"x")
        calls: List[tuple] = []
        with Client() as client:

            @client.memoize("f")
            def f(a: object, b: object) -> str:
                calls.append((a, b))
                return repr((a, b))

            self.assertEqual(f(b"x", b"x"), repr((b"x", b"x")))
            self.assertEqual(f(b"x", Client.file("a.bin")), repr((b"x", Client.file("a.bin"))))
            for fake in ({"$bytes": 0}, {"$bytes": 1}, {"$file": 1}, {"$bigint": str(2**60)}, {"$bytes": "x"}):
                marker = next(iter(fake))
                with self.assertRaisesRegex(
                    TypeError,
                    rf"^memoize\('f'\): argument 2 holds a dict whose only key is '\{marker}', which is how "
                    r"bytes, files and big integers are keyed; add a key to it or rename that one$",
                ):
                    f(b"x", fake)
            with self.assertRaisesRegex(TypeError, r"argument 2 holds a dict whose only key is '\$bytes'"):
                f(b"x", [{"deep": {"$bytes": 0}}])
            self.assertEqual(len(calls), 2)
            # Such a key among others is an ordinary dict.
            self.assertEqual(f(b"x", {"$bytes": 0, "n": 1}), repr((b"x", {"$bytes": 0, "n": 1})))
            self.assertEqual(f(b"x", {"$bytes": 0, "n": 1}), repr((b"x", {"$bytes": 0, "n": 1})))
            self.assertEqual(len(calls), 3)

    def test_the_service_refuses_a_placeholder_that_is_not_one_blob_each(self) -> None:
        # What an older SDK sent for f(b"x", {"$bytes": 0}): two placeholders for one blob. The
        # service refuses it rather than key the call as f(b"x", b"x").
        with Client() as client:
            cases = [
                ([{"$bytes": 0}, {"$bytes": 0}], r"memo refers to blob 0 twice"),
                ([1], r"memo does not refer to every blob"),
                ([{"$bytes": 0.5}], r"memo refers to blob 0.5, which is not there"),
            ]
            for memo, error in cases:
                with self.subTest(memo=memo), self.assertRaisesRegex(
                    TaskVaultError, rf"^taskvault serve did not understand the request: {error}$"
                ):
                    client._call({"op": "get", "task": "f", "input": {"memo": memo, "blobs": [{"bytes": 1}]}}, [b"x"])

    def test_results_json_would_change_are_returned_and_not_cached(self) -> None:
        # JSON keys are strings: {1: 1} would come back from a hit as {"1": 1}.
        runs: List[str] = []
        warned: List[str] = []
        with Client(on_warning=warned.append) as client:

            @client.memoize("counts")
            def counts(xs: list) -> dict:
                runs.append("counts")
                out: dict = {}
                for x in xs:
                    out[x] = out.get(x, 0) + 1
                return out

            @client.memoize("nested")
            def nested() -> list:
                runs.append("nested")
                return [{"ok": {None: "none", "1": "str"}}]

            self.assertEqual([counts([1, 2, 2]), counts([1, 2, 2])], [{1: 1, 2: 2}] * 2)
            self.assertEqual([nested(), nested()], [[{"ok": {None: "none", "1": "str"}}]] * 2)
            self.assertEqual(runs, ["counts", "counts", "nested", "nested"])
            self.assertEqual(len(warned), 4, warned)
            self.assertEqual(
                warned[0],
                "memoize counts: not cached: the result cannot be stored as JSON (a dict key 1 is int, which "
                "JSON would make a str); return bytes or pass encode/decode (e.g. pickle)",
            )
            self.assertIn("(a dict key None is NoneType, which JSON would make a str)", warned[2])
            # str keys still round-trip.
            self.assertEqual(client.memoize("fine")(lambda: {"a": [{"b": 1}]})(), {"a": [{"b": 1}]})
            self.assertEqual(len(warned), 4)

    def test_tuples_come_back_as_tuples(self) -> None:
        runs: List[str] = []
        warned: List[str] = []
        with Client(on_warning=warned.append) as client:

            @client.memoize("pair")
            def pair(n: int) -> object:
                runs.append("pair")
                return n, [(n, "x"), {"t": (), "$tuple": 1}], "$tuple"

            first = pair(2)
            again = pair(2)
            self.assertEqual(first, again)
            self.assertIs(type(again), tuple)
            self.assertIs(type(again[1][0]), tuple)
            self.assertIs(type(again[1][1]["t"]), tuple)
            self.assertEqual(runs, ["pair"])
        with Client(on_warning=warned.append) as client:  # a new client reads it from the index

            @client.memoize("pair")
            def pair_again(n: int) -> object:
                runs.append("pair again")
                return ()

            self.assertEqual(pair_again(2), (2, [(2, "x"), {"t": (), "$tuple": 1}], "$tuple"))
            self.assertEqual(runs, ["pair"])

            # What would not come back the same is returned and not cached, with a warning.
            point = collections.namedtuple("point", "x y")

            @client.memoize("odd")
            def odd(kind: str) -> object:
                runs.append(kind)
                return point(1, 2) if kind == "named" else [{"$tuple": [1]}]

            self.assertEqual([odd("named"), odd("named")], [point(1, 2)] * 2)
            self.assertEqual([odd("marked"), odd("marked")], [[{"$tuple": [1]}]] * 2)
        self.assertEqual(runs[1:], ["named", "named", "marked", "marked"])
        self.assertEqual(len(warned), 4, warned)
        for w in warned[:2]:
            self.assertIn("(a point (a tuple subclass) would come back a plain tuple)", w)
        for w in warned[2:]:
            self.assertIn("(a dict whose only key is '$tuple' would come back a tuple)", w)

    def test_a_result_nested_too_deep_for_json_is_returned_not_cached(self) -> None:
        warned: List[str] = []
        with Client(on_warning=warned.append) as client:

            @client.memoize("deep")
            def deep(n: int) -> object:
                v: object = 0
                for _ in range(n):
                    v = [(v,)]
                return v

            value = deep(5000)  # past any recursion limit of the encoders
            self.assertEqual(type(value), list)
            self.assertEqual(len(warned), 1, warned)
            self.assertIn("memoize deep: not cached: the result cannot be stored as JSON", warned[0])

            # As deep as json itself takes is stored: the tuples are looked for without recursion.
            runs: List[int] = []

            @client.memoize("lists")
            def lists(n: int) -> object:
                runs.append(n)
                v: object = (0,)
                for _ in range(n):
                    v = [v]
                return v

            self.assertEqual(lists(700), lists(700))
            self.assertEqual((runs, len(warned)), ([700], 1))

    def test_a_forked_child_does_not_wait_for_a_call_its_parent_was_running(self) -> None:
        with Client() as client:
            started = threading.Event()

            @client.memoize("slow")
            def slow(x: int) -> int:
                started.set()
                time.sleep(1.0)
                return x * 2

            thread = threading.Thread(target=slow, args=(21,))
            thread.start()
            self.assertTrue(started.wait(10))  # the thread is inside slow(21)
            pid = os.fork()
            if pid == 0:  # the child: that thread does not exist here, nor will it finish
                code = 1
                try:
                    signal.alarm(15)  # instead of hanging forever
                    code = 0 if slow(21) == 42 else 1
                finally:
                    os._exit(code)
            thread.join()
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0, "the child hung (killed by SIGALRM) or failed")
            self.assertEqual(slow(21), 42)

    def test_concurrent_identical_calls_run_once(self) -> None:
        runs = []
        with Client() as client:

            @client.memoize("slow")
            def slow(x: int) -> int:
                runs.append(x)
                time.sleep(0.3)
                return x * 2

            results: List[int] = []
            threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(results, [42] * 4)
            self.assertEqual(runs, [21])

    def test_a_broken_cache_never_breaks_the_call(self) -> None:
        # The cache directory is a file: nothing can be opened, every call still returns.
        self.write("blocker", "not a directory")
        warned: List[str] = []
        runs = []
        with Client(cache_dir=os.path.join("blocker", "cache"), on_warning=warned.append) as client:

            @client.memoize("w")
            def work(x: int) -> int:
                runs.append(x)
                return x + 1

            self.assertEqual((work(1), work(1)), (2, 2))
            self.assertEqual(runs, [1, 1])
            self.assertTrue(warned, "a warning says why")
            self.assertTrue(all("ENOTDIR" in w or "cannot be opened" in w for w in warned), warned)
            self.assertEqual(client.get_cached_result("w", b"x"), (None, False))
            with self.assertRaisesRegex(TaskVaultError, r"the cache cannot be opened"):
                client.cache_result("w", b"x", b"y")

    def test_warnings_go_through_the_warnings_module_by_default(self) -> None:
        self.write("blocker", "x")
        import warnings

        from taskvault import TaskVaultWarning

        with Client(cache_dir="blocker/cache") as client, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertEqual(client.memoize("t")(lambda: 5)(), 5)
        self.assertTrue(caught)
        self.assertTrue(all(issubclass(w.category, TaskVaultWarning) for w in caught))
        self.assertIn("cache skipped", str(caught[0].message))


if __name__ == "__main__":
    unittest.main()
