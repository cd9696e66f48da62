"""Client.run and Client.explain: the CLI's run and explain, from Python."""

import contextlib
import io
import json
import os
import pathlib
import sys
import unittest
from typing import Iterator, List

import support  # noqa: F401
from support import ProjectTest

from taskvault import TaskVaultError
from taskvault.sdk import Client


class RunAndExplain(ProjectTest):
    def test_run_misses_then_hits_and_explain_says_so(self) -> None:
        self.write("in.txt", "b\na\n")
        spec = dict(inputs=["in.txt"], outputs=["out.txt"])
        cmd = ["sh", "-c", "sort in.txt > out.txt; echo sorted; echo note >&2"]
        with Client() as c:
            self.assertEqual(c.explain(command=cmd, **spec)["status"], "miss")
            first = c.run(command=cmd, capture_output=True, **spec)
            self.assertEqual((first.kind, first.exit_code, first.stdout, first.stderr), ("miss", 0, b"sorted\n", b"note\n"))
            os.remove(self.path("out.txt"))
            again = c.run(command=cmd, capture_output=True, **spec)
            self.assertEqual((again.kind, again.hit, again.stdout, again.key), ("hit", True, b"sorted\n", first.key))
            with open(self.path("out.txt")) as f:
                self.assertEqual(f.read(), "a\nb\n")
            explained = c.explain(command=cmd, **spec)
            self.assertEqual((explained["status"], explained["key"]), ("hit", first.key))
            # A shell string, and a failing command whose exit code passes through.
            failing = c.run(command="echo out; exit 3", capture_output=True, inputs=["in.txt"])
            self.assertEqual((failing.kind, failing.exit_code, failing.stdout), ("miss", 3, b"out\n"))
            with self.assertRaisesRegex(TaskVaultError, r"^taskvault run: unknown task 'nope'"):
                c.run("nope")
            with self.assertRaisesRegex(TypeError, r"^run: unknown option 'output' \(known: "):
                c.run(command=["true"], output=["x"])
        # The CLI sees the same entry.
        r = self.cli("run", "--inputs", "in.txt", "--outputs", "out.txt", "--json", "--", *cmd)
        self.assertEqual(json.loads(r.stderr.strip().splitlines()[-1])["kind"], "hit")

    def test_stderr_without_a_final_newline_is_the_commands_and_the_summary_is_found(self) -> None:
        cmd = "printf 'no newline' >&2; printf '{\"kind\": \"hit\", \"exitCode\": 9} {\"' >&2"
        tail = b'no newline{"kind": "hit", "exitCode": 9} {"'
        with Client() as c:
            first = c.run(command=cmd, capture_output=True)
            self.assertEqual((first.kind, first.exit_code, first.stderr), ("miss", 0, tail))
            again = c.run(command=cmd, capture_output=True)
            self.assertEqual((again.kind, again.stderr), ("hit", tail))
            # Not captured: the same bytes reach this process's stderr, in full and nothing more.
            with _stderr_bytes() as seen:
                self.assertEqual(c.run(command=cmd).kind, "hit")
            self.assertEqual(seen.data, tail)

    def test_taskvault_warnings_go_to_on_warning_not_to_stderr(self) -> None:
        self.write("blocker", "a file where the cache directory would be")
        warned: List[str] = []
        cmd = "echo out; echo 'err line' >&2"
        with Client(cache_dir="blocker/cache", on_warning=warned.append) as c:
            r = c.run(command=cmd, capture_output=True)
            self.assertEqual((r.kind, r.stdout, r.stderr), ("uncached", b"out\n", b"err line\n"))
            self.assertEqual(len(warned), 1, warned)
            self.assertRegex(warned[0], r"^cache skipped: cannot open the cache at .*blocker")
            with _stderr_bytes() as seen:
                self.assertEqual(c.run(command=cmd).kind, "uncached")
            self.assertEqual(seen.data, b"err line\n")
            self.assertEqual(len(warned), 2, warned)

    def test_options_are_type_checked_and_paths_may_be_path_objects(self) -> None:
        self.write("sub/in.txt", "x")
        with Client() as c:
            base = c.explain(command=["true"], inputs=["in.txt"], cwd="sub")
            self.assertEqual([i[0] for i in base["fingerprint"]["inputs"]], ["sub/in.txt"])
            # os.PathLike where a path is meant; None as if not given.
            self.assertEqual(
                c.explain(command=["true"], inputs=[pathlib.Path("in.txt")], cwd=pathlib.Path("sub"), ttl=None),
                base,
            )
            self.assertEqual(c.explain(command=["true"], inputs=None), c.explain(command=["true"]))
            self.assertEqual(c.explain(command=["true"], ttl=3600)["status"], "miss")
            pid = c.info["pid"]
            bad = [
                (dict(inputs=5), r"^explain: inputs must be a list of str or path objects, got 5$"),
                (dict(inputs="in.txt"), r"^explain: inputs must be a list of str or path objects, got 'in.txt'$"),
                (dict(env=[pathlib.Path("X")]), r"^explain: env must be a list of str, got \[PosixPath\('X'\)\]$"),
                (dict(cwd=3), r"^explain: cwd must be a path \(str or os.PathLike\), got 3$"),
                (dict(shell="yes"), r"^explain: shell must be True or False, got 'yes'$"),
                (dict(ttl=float("nan")), r"^explain: ttl must be a str or a finite number of seconds, got nan$"),
                (dict(ttl=float("inf")), r"^explain: ttl must be a str or a finite number of seconds, got inf$"),
                (dict(max_entry_size=[1]), r"^explain: max_entry_size must be a str or a finite number of bytes"),
            ]
            for options, error in bad:
                with self.subTest(options=options):
                    with self.assertRaisesRegex(TypeError, error):
                        c.explain(command=["true"], **options)
                    with self.assertRaisesRegex(TypeError, error.replace("explain", "run")):
                        c.run(command=["true"], **options)
            self.assertEqual(c.info["pid"], pid)
            self.assertEqual(c.explain(command=["true"], inputs=["in.txt"], cwd="sub"), base)
            ran = c.run(command=["true"], inputs=[pathlib.Path("in.txt")], cwd=pathlib.Path("sub"), ttl=60.5)
            self.assertEqual((ran.kind, ran.key), ("miss", base["key"]))


class _Seen:
    data = b""


@contextlib.contextmanager
def _stderr_bytes() -> Iterator[_Seen]:
    """What this process writes to sys.stderr inside, as bytes (``.data``, once out)."""
    saved, raw, seen = sys.stderr, io.BytesIO(), _Seen()
    wrapper = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    sys.stderr = wrapper
    try:
        yield seen
    finally:
        sys.stderr = saved
        wrapper.flush()
        seen.data = raw.getvalue()
        wrapper.detach()


if __name__ == "__main__":
    unittest.main()
