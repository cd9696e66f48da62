"""The service behind a Client: shared by threads, restarted once if killed, one per forked
process, closed at exit; a missing CLI and a read-only cache."""

import io
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest
from typing import Dict, List

import support
from support import ProjectTest, clean_env

from taskvault import TaskVaultError
from taskvault.sdk import Client


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not alive either.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _seen(client: Client, task: str, data: bytes, within: float = 10.0) -> tuple:
    """A lookup repeated until it hits or `within` seconds pass: for another process's fast save."""
    deadline = time.monotonic() + within
    while True:
        got = client.get_cached_result(task, data)
        if got[1] or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def _worker(args: tuple) -> List[str]:
    """One of several processes on one cache: saves its own values, reads everyone's."""
    n, project = args
    os.chdir(project)
    keys = []
    with Client() as client:
        for i in range(10):
            keys.append(client.cache_result("shared", f"in-{i}", f"out-{i}"))
            value, hit = client.get_cached_result("shared", f"in-{(i + n) % 10}")
            assert hit is False or value == f"out-{(i + n) % 10}".encode(), value
        for i in range(10):
            got = client.get_cached_result("shared", f"in-{i}")
            if not got[1]:
                # Seen once on a loaded machine and not reproduced: say what the cache held then,
                # and whether the value turned up (another worker saves the same key).
                later = _seen(client, "shared", f"in-{i}".encode())
                raise AssertionError(f"own save of in-{i} missed; {later[1] and 'found' or 'absent'} later")
            assert got == (f"out-{i}".encode(), True), got
    return keys


class Lifecycle(ProjectTest):
    def test_threads_share_one_service(self) -> None:
        errors: List[BaseException] = []
        with Client() as client:
            pid = client.info["pid"]

            def work(t: int) -> None:
                try:
                    for i in range(15):
                        data = f"thread {t} item {i}".encode() * (1 + i)
                        key = client.cache_result("threads", data, data[::-1])
                        self.assertEqual(client.get_cached_result("threads", data), (data[::-1], True))
                        self.assertRegex(key, "^[0-9a-f]{64}$")
                except BaseException as e:  # reported by the main thread
                    errors.append(e)

            threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            stats = client.get_stats()
            self.assertEqual((stats["entries"], stats["hits"]), (120, 120))
            self.assertEqual(client.info["pid"], pid)

    def test_a_killed_service_is_restarted_once(self) -> None:
        with Client() as client:
            client.cache_result("k", b"in", b"out")
            first = client.info["pid"]
            os.kill(first, signal.SIGKILL)
            while _alive(first):
                time.sleep(0.01)
            # Sent to the dead service, then again to a new one: the caller sees only the answer.
            self.assertEqual(client.get_cached_result("k", b"in"), (b"out", True))
            second = client.info["pid"]
            self.assertNotEqual(second, first)
            # A file object is sent again from where the call started.
            os.kill(second, signal.SIGKILL)
            while _alive(second):
                time.sleep(0.01)
            with open(self.write("in.bin", b"in"), "rb") as f:
                self.assertEqual(client.get_cached_result("k", f), (b"out", True))
            self.assertNotIn(client.info["pid"], (first, second))

    def test_saves_acknowledged_survive_a_kill_of_the_service_right_after(self) -> None:
        for durability in ("fast", "strict", None):
            with self.subTest(durability=durability):
                with Client(durability=durability) as client:
                    values = {f"in {durability} {i}".encode(): os.urandom(1024) for i in range(30)}
                    for k, v in values.items():
                        client.cache_result("crash", k, v)
                    # No close, no flush: the service is gone the moment the last save returned.
                    pid = client.info["pid"]
                    os.kill(pid, signal.SIGKILL)
                    while _alive(pid):
                        time.sleep(0.01)
                with Client() as after:
                    for k, v in values.items():
                        self.assertEqual(after.get_cached_result("crash", k), (v, True))

    def test_a_bad_durability_is_a_type_error(self) -> None:
        with self.assertRaises(TypeError):
            Client(durability="eventually")

    def test_a_service_that_dies_again_is_one_clear_error(self) -> None:
        # A CLI that answers hello and then dies on every call: the restart does not help.
        fake = self.write(
            "fake-cli.py",
            textwrap.dedent(
                """\
                import json, struct, sys
                n = struct.unpack('>I', sys.stdin.buffer.read(4))[0]
                h = json.loads(sys.stdin.buffer.read(n))
                r = json.dumps({'id': h['id'], 'ok': True, 'pid': 1}).encode()
                sys.stdout.buffer.write(struct.pack('>I', len(r)) + r)
                sys.stdout.buffer.flush()
                sys.stdin.buffer.read(4)
                print('taskvault: error: simulated crash', file=sys.stderr)
                sys.exit(3)
                """
            ),
        )
        os.chmod(fake, 0o755)
        with open(fake, "r+") as f:
            body = f.read()
            f.seek(0)
            f.write(f"#!{sys.executable}\n" + body)
        os.environ["TASKVAULT_BIN"] = fake
        client = Client()
        with self.assertRaises(TaskVaultError) as e:
            client.get_stats()
        self.assertEqual(
            str(e.exception), "taskvault serve exited with code 3: simulated crash; the call was not completed"
        )
        client.close()

    def test_a_forked_child_gets_its_own_service(self) -> None:
        with Client() as client:
            client.cache_result("fork", b"in", b"parent")
            parent_pid = client.info["pid"]
            r, w = os.pipe()
            hold_r, hold_w = os.pipe()
            child = os.fork()
            if child == 0:  # pragma: no cover (reported through the pipe)
                os.close(hold_w)
                try:
                    got = client.get_cached_result("fork", b"in")
                    client.cache_result("fork", b"child-in", b"child")
                    msg = json.dumps({"got": got[0].decode(), "pid": client.info["pid"]})
                except BaseException as e:
                    msg = json.dumps({"error": repr(e)})
                os.write(w, msg.encode())
                os.close(w)
                os.read(hold_r, 1)  # alive, its Client open, until the parent is done
                os._exit(0)
            os.close(w)
            os.close(hold_r)

            released = []

            def release_child() -> None:
                if not released:
                    released.append(1)
                    os.close(hold_w)
                    os.waitpid(child, 0)

            self.addCleanup(release_child)  # also when an assertion below fails
            with os.fdopen(r) as f:
                report = json.loads(f.read())
            self.assertEqual(report.get("got"), "parent", report)
            child_service = report["pid"]
            self.assertNotEqual(child_service, parent_pid)
            # The parent's service is untouched and sees the child's save.
            self.assertEqual(client.info["pid"], parent_pid)
            self.assertTrue(_alive(parent_pid))
            # The child's save is fast (docs/guarantees.md, 11): other processes see it once its
            # background commit lands, in milliseconds; allow a loaded machine seconds.
            self.assertEqual(_seen(client, "fork", b"child-in"), (b"child", True))
            # The child holds no end of the parent's pipes: closing ends the service at once.
            started = time.monotonic()
            client.close()
            self.assertLess(time.monotonic() - started, 5)
            self.assertFalse(_alive(parent_pid))
            self.assertTrue(_alive(child_service))
            release_child()
            # The child exited without closing its Client (os._exit): its service ends with it.
            deadline = time.monotonic() + 10
            while _alive(child_service) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertFalse(_alive(child_service))

    def test_several_processes_on_one_cache(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(4) as pool:
            results = pool.map(_worker, [(n, self.dir) for n in range(4)])
        self.assertEqual(len({tuple(r) for r in results}), 1, "every process derived the same keys")
        stats = json.loads(self.cli("stats", "--json").stdout)
        self.assertEqual(stats["entries"], 10)
        verify = self.cli("verify", "--json")
        self.assertEqual(json.loads(verify.stdout)["broken"], [])

    def test_the_service_ends_with_close_with_and_interpreter_exit(self) -> None:
        client = Client()
        pid = client.info["pid"]
        client.close()
        self.assertFalse(_alive(pid))
        client.close()  # twice is fine
        with self.assertRaisesRegex(TaskVaultError, "^this Client is closed$"):
            client.get_stats()
        with Client() as c:
            pid = c.info["pid"]
        self.assertFalse(_alive(pid))
        # A script that never closes its Client: the service still ends when Python exits.
        script = (
            "import sys; sys.path.insert(0, %r)\n"
            "from taskvault.sdk import Client\n"
            "c = Client(); c.cache_result('exit', b'i', b'o'); print(c.info['pid'])\n"
        ) % support.PYTHON_DIR
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=self.dir, env=clean_env(), capture_output=True, text=True, check=True
        )
        pid = int(out.stdout)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertFalse(_alive(pid))
        self.assertEqual(Client().get_cached_result("exit", b"i"), (b"o", True))


class MissingCli(ProjectTest):
    def test_no_cli_anywhere_is_one_line_saying_how_to_install_it(self) -> None:
        os.environ.pop("TASKVAULT_BIN")
        os.environ["PATH"] = os.path.dirname(sys.executable)
        with self.assertRaises(TaskVaultError) as e:
            Client()
        self.assertEqual(
            str(e.exception),
            "the taskvault CLI was not found (install it with 'npm install taskvault' in the project, "
            "or set TASKVAULT_BIN to the CLI)",
        )

    def test_a_bad_taskvault_bin_is_named(self) -> None:
        os.environ["TASKVAULT_BIN"] = "/nonexistent/taskvault"
        with self.assertRaisesRegex(TaskVaultError, r"^TASKVAULT_BIN=/nonexistent/taskvault is not a file \("):
            Client()

    def test_node_modules_bin_upward_from_cwd_is_found(self) -> None:
        os.environ.pop("TASKVAULT_BIN")
        os.environ["PATH"] = os.path.dirname(support.CLI) + os.pathsep + "/usr/bin:/bin"
        os.makedirs(self.path("node_modules", ".bin"))
        os.symlink(support.CLI, self.path("node_modules", ".bin", "taskvault"))
        os.makedirs(self.path("sub", "deeper"))
        os.chdir(self.path("sub", "deeper"))
        with Client() as c:
            self.assertEqual(c._argv, [self.path("node_modules", ".bin", "taskvault")])
            self.assertEqual(c.info["root"], self.dir)


class _FailingStream(io.RawIOBase):
    """A binary file object that gives ``good`` bytes, then fails with ``error``."""

    def __init__(self, good: bytes, error: BaseException) -> None:
        self._left, self._error = good, error

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if not self._left:
            raise self._error
        n = len(self._left) if n < 0 else n
        chunk, self._left = self._left[:n], self._left[n:]
        return chunk


class CallerErrors(ProjectTest):
    """The caller's own errors are raised at once as themselves, and the service carries on."""

    def assert_same_service(self, client: Client, pid: int) -> None:
        self.assertEqual(client.info["pid"], pid)
        self.assertTrue(_alive(pid))
        self.assertEqual(client.get_cached_result("ok", b"in"), (b"out", True))
        self.assertEqual(client.info["pid"], pid)

    def test_a_file_object_that_fails_raises_its_own_error_and_stores_nothing(self) -> None:
        with Client() as client:
            client.cache_result("ok", b"in", b"out")
            pid = client.info["pid"]
            closed = open(self.write("in.bin", b"data"), "rb")
            closed.close()
            started = time.monotonic()
            with self.assertRaisesRegex(ValueError, r"^read of closed file$"):
                client.get_cached_result("t", closed)
            self.assertLess(time.monotonic() - started, 1.0, "no wait for a service that did not die")
            self.assert_same_service(client, pid)
            # Fails after the first MB was sent: the value is never taken for whole.
            for error in (ValueError("decompression failed"), OSError(5, "Input/output error")):
                with self.subTest(error=error):
                    with self.assertRaises(type(error)) as raised:
                        client.cache_result("t", b"key", _FailingStream(os.urandom(1 << 20), error))
                    self.assertIs(raised.exception, error)
                    with self.assertRaises(type(error)):
                        client.get_cached_result("t", _FailingStream(b"k" * (3 << 20), error))
                    self.assertEqual(client.get_cached_result("t", b"key"), (None, False))
                    self.assert_same_service(client, pid)
            with self.assertRaisesRegex(TypeError, r"^input: the file object's read\(\) returned str, not bytes"):
                client.get_cached_result("t", _TextRead())
            self.assert_same_service(client, pid)

    def test_values_json_cannot_hold_are_type_errors_before_anything_is_sent(self) -> None:
        with Client() as client:
            client.cache_result("ok", b"in", b"out")
            pid = client.info["pid"]
            for bad in (float("inf"), float("nan"), 10**400, "5", True):
                with self.subTest(duration_ms=bad), self.assertRaisesRegex(
                    TypeError, rf"^duration_ms must be a number >= 0 and finite, got {re.escape(repr(bad))}$"
                ):
                    client.cache_result("t", b"x", b"y", duration_ms=bad)
            # What the checks above stand in front of: nothing that is not JSON reaches the service.
            for value, why in ((float("nan"), "Out of range float"), (object(), "not JSON serializable")):
                with self.subTest(value=value), self.assertRaisesRegex(
                    TypeError, rf"^a value of this call cannot be sent to taskvault serve: .*{why}"
                ):
                    client._call({"op": "explain", "spec": {"command": "true", "ttl": value}})
            self.assert_same_service(client, pid)
            self.assertEqual(client.cache_result("t", b"x", b"y", duration_ms=2**53), client.cache_result("t", b"x", b"y"))

    def test_a_header_over_the_services_limit_is_not_sent(self) -> None:
        warned: List[str] = []
        with Client(on_warning=warned.append) as client:
            client.cache_result("ok", b"in", b"out")
            pid = client.info["pid"]
            big = list(range(3_000_000))  # memoize arguments travel in the header: ~23 MB of JSON
            self.assertEqual(client.memoize("count")(len)(big), 3_000_000)
            self.assertEqual(len(warned), 2, warned)
            self.assertRegex(
                warned[0],
                r"^memoize count: cache skipped: the request's header is \d+ bytes, over the 16777216 the "
                r"service takes; pass large values as bytes or Client.file\(path\)$",
            )
            self.assert_same_service(client, pid)


class _TextRead(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> str:  # type: ignore[override]
        return "text"


class ReadOnlyCache(ProjectTest):
    def test_a_read_only_cache_serves_nothing_breaks_nothing(self) -> None:
        with Client() as c:
            c.cache_result("ro", b"in", b"kept")
        cache = self.path(".taskvault", "cache")
        if not _mount(["--bind", cache, cache]):
            self.assertFalse(os.environ.get("CI"), "CI must be able to mount (it runs as root)")
            self.skipTest("no permission to mount here")
        self.addCleanup(subprocess.run, ["umount", cache], check=False, capture_output=True)
        self.assertTrue(_mount(["-o", "remount,ro,bind", cache]), "remount read-only")
        warned: List[str] = []
        runs: List[int] = []
        with Client(on_warning=warned.append) as c:
            got = c.get_cached_result("ro", b"in")
            # lmdb may or may not open a read-only environment; either way nothing breaks.
            self.assertIn(got, [(b"kept", True), (None, False)])
            f = c.memoize("ro-memo")(lambda x: runs.append(x) or x * 2)
            self.assertEqual((f(2), f(2)), (4, 4))
            self.assertEqual(runs, [2, 2])
            with self.assertRaises(TaskVaultError) as e:
                c.cache_result("ro", b"new", b"value")
            self.assertNotIn("\n", str(e.exception))
        self.assertTrue(warned, "warnings said why the cache was skipped")
        self.assertTrue(any("Read-only file system" in w or "EROFS" in w or "read-only" in w for w in warned), warned)
        subprocess.run(["umount", cache], check=True)
        with Client() as c:
            self.assertEqual(c.get_cached_result("ro", b"in"), (b"kept", True))


def _mount(args: List[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


if __name__ == "__main__":
    unittest.main()
