"""Client.run and Client.explain: the CLI's run and explain, from Python."""

import json
import os
import unittest

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


if __name__ == "__main__":
    unittest.main()
