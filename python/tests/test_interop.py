"""Python, the TS SDK and the CLI on one cache: the same task and input bytes are the same key."""

import json
import os
import unittest

import support  # noqa: F401
from support import ProjectTest

from taskvault.sdk import Client


class CrossLanguageHits(ProjectTest):
    def test_python_save_is_a_hit_for_cache_get_and_the_ts_client(self) -> None:
        self.write("in.csv", "a,b\n1,2\n")
        with Client() as client:
            key = client.cache_result("report", Client.file("in.csv"), b"\x00binary\xffresult", duration_ms=1200)
        got = self.cli("cache", "get", "report", "in.csv", "out.bin", "--json")
        self.assertEqual(json.loads(got.stdout), {"task": "report", "key": key, "size": 14, "hit": True})
        with open(self.path("out.bin"), "rb") as f:
            self.assertEqual(f.read(), b"\x00binary\xffresult")
        ts = self.node(
            "const c = new Client();"
            "const r = await c.getCachedResult('report', 'a,b\\n1,2\\n');"
            "console.log(JSON.stringify({ hit: r.hit, key: r.key, value: [...r.value] }));"
            "await c.close();"
        )
        self.assertEqual(ts, {"hit": True, "key": key, "value": list(b"\x00binary\xffresult")})
        # The audit log says where each came from.
        lines = self.audit()
        self.assertTrue(any(" SAVE save task=report " in l and " via=sdk " in l for l in lines), lines)
        self.assertTrue(any(" HIT get task=report " in l and "via=" not in l for l in lines), lines)

    def test_ts_save_is_a_hit_for_python_by_bytes_str_path_and_file_object(self) -> None:
        self.write("data.json", '{"rows": [1, 2, 3]}')
        key = self.node(
            "import { readFileSync } from 'node:fs';"
            "const c = new Client();"
            "const key = await c.cacheResult('summarise', readFileSync('data.json'), 'sum=6');"
            "console.log(JSON.stringify(key));"
            "await c.close();"
        )
        with Client() as client, open(self.path("data.json"), "rb") as f:
            for value in (
                b'{"rows": [1, 2, 3]}',
                '{"rows": [1, 2, 3]}',
                bytearray(b'{"rows": [1, 2, 3]}'),
                Client.file("data.json"),
                f,
            ):
                self.assertEqual(client.get_cached_result("summarise", value), (b"sum=6", True), value)
            self.assertEqual(client.get_cached_result("summarise", b"other"), (None, False))
            self.assertEqual(client.get_cached_result("summarise", "x", to_file="never.txt"), (None, False))
            self.assertFalse(os.path.exists(self.path("never.txt")))
            self.assertEqual(
                client.get_cached_result("summarise", Client.file("data.json"), to_file="res/out.txt"), (None, True)
            )
            with open(self.path("res/out.txt")) as out:
                self.assertEqual(out.read(), "sum=6")
            # The same key the TS SDK returned, from a save of the same bytes here.
            self.assertEqual(client.cache_result("summarise", '{"rows": [1, 2, 3]}', "sum=6"), key)
            stats = client.get_stats()
        self.assertEqual(stats, json.loads(self.cli("stats", "--json").stdout))
        self.assertEqual((stats["entries"], stats["hits"], stats["misses"]), (1, 6, 2))

    def test_memoize_keys_agree_with_the_ts_memoize(self) -> None:
        self.node(
            "const c = new Client();"
            "const f = c.memoize('score', (params, blob) => ({ n: blob.length * params.k }));"
            "console.log(JSON.stringify(await f({ k: 3, name: 'x' }, new Uint8Array([1, 2, 3]))));"
            "await c.close();"
        )
        calls = []
        with Client() as client:

            @client.memoize("score")
            def score(params: dict, blob: bytes) -> dict:
                calls.append(1)
                return {"n": -1}

            self.assertEqual(score({"name": "x", "k": 3.0}, b"\x01\x02\x03"), {"n": 9})
            self.assertEqual(calls, [])

            @client.memoize("tokens")
            def tokens(text: str, lower: bool = True) -> bytes:
                return (text.lower() if lower else text).encode()

            self.assertEqual(tokens("ABC"), b"abc")
        ts = self.node(
            "const c = new Client();"
            "const f = c.memoize('tokens', () => { throw new Error('ran'); });"
            "const r = await f('ABC', true);"
            "console.log(JSON.stringify(Buffer.from(r).toString()));"
            "await c.close();"
        )
        self.assertEqual(ts, "abc")

    def test_memoize_keys_agree_for_odd_but_plain_arguments(self) -> None:
        # A file name os.fsdecode could not decode (lone surrogates: sent as JSON \\u escapes), and a
        # dict with a placeholder's key among others: keyed as the TS memoize keys the same values.
        self.node(
            "const c = new Client();"
            "const f = c.memoize('odd', (name, opts) => ({ ts: true }));"
            "await f('data-\\udcff.csv', { $bytes: 0, n: 1 });"
            "await c.close();"
        )
        name = os.fsdecode(b"data-\xff.csv")
        self.assertEqual(name, "data-\udcff.csv")
        warned: list = []
        calls: list = []
        with Client(on_warning=warned.append) as client:
            pid = client.info["pid"]

            @client.memoize("odd")
            def odd(name: str, opts: dict) -> dict:
                calls.append(name)
                return {"ts": False}

            self.assertEqual(odd(name, {"n": 1, "$bytes": 0}), {"ts": True})
            self.assertEqual(odd(name + "x", {"n": 1, "$bytes": 0}), {"ts": False})
            self.assertEqual(odd(name + "x", {"n": 1, "$bytes": 0}), {"ts": False})
            self.assertEqual((calls, warned, client.info["pid"]), ([name + "x"], [], pid))


    def test_a_tuple_memoized_in_python_is_an_array_for_the_ts_memoize(self) -> None:
        with Client() as client:

            @client.memoize("split")
            def split(text: str) -> object:
                return tuple(text.split()), {"n": (len(text),)}

            self.assertEqual(split("a b"), (("a", "b"), {"n": (3,)}))
        ts = self.node(
            "const c = new Client();"
            "const f = c.memoize('split', () => { throw new Error('ran'); });"
            "console.log(JSON.stringify(await f('a b')));"
            "await c.close();"
        )
        self.assertEqual(ts, [["a", "b"], {"n": [3]}])

if __name__ == "__main__":
    unittest.main()
