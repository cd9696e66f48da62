"""The Python SDK against Debian's python3-diskcache and python3-joblib, measured in one run.

    npm run build && node bench/python.mjs      (BENCH_QUICK=1: fewer rounds, a 128 MB file)

Prints a table of medians and ratios (the issue's targets beside them) and writes
bench/python/results.md. Every figure is a median of alternating rounds, so that a busy machine
slows both sides alike.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))

import diskcache  # noqa: E402
import joblib  # noqa: E402

from taskvault._service import Service  # noqa: E402
from taskvault.sdk import Client  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
CALLS = 100 if QUICK else 400
BIG = (128 if QUICK else 1024) << 20
BIG_ROUNDS = 2 if QUICK else 3
START_ROUNDS = 5 if QUICK else 11
KB = os.urandom(1024)


def per_call(fn: Callable[[int], object], calls: int = CALLS) -> float:
    """Median seconds of one call of fn(i)."""
    times = []
    for i in range(calls):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def alternate(rounds: int, sides: Dict[str, Callable[[int], float]]) -> Dict[str, float]:
    """Each side once per round, in turn; the median of each side's figures."""
    got: Dict[str, List[float]] = {name: [] for name in sides}
    for r in range(rounds):
        for name, measure in sides.items():
            got[name].append(measure(r))
    return {name: statistics.median(v) for name, v in got.items()}


def main() -> None:
    work = tempfile.mkdtemp(prefix="tv-pybench-")
    try:
        os.makedirs(os.path.join(work, "project", ".git"))
        project = os.path.join(work, "project")
        with open(os.path.join(project, "taskvault.config.json"), "w") as f:
            f.write('{"policies": {"default": {"maxSizeBytes": 4000000000}}}')
        os.chdir(project)
        os.environ.setdefault("TASKVAULT_BIN", os.path.join(REPO, "dist", "cli.cjs"))
        rows: List[Tuple[str, str, str, str, str]] = []

        client = Client()
        dc = diskcache.Cache(os.path.join(work, "diskcache"))
        memory = joblib.Memory(os.path.join(work, "joblib"), verbose=0)
        cached_kb = memory.cache(lambda n: KB)

        # 1 KB hit.
        client.cache_result("hit", b"key", KB)
        dc.set("key", KB)
        cached_kb(1)
        assert client.get_cached_result("hit", b"key") == (KB, True)
        # The floor: the same request and reply frames over a pipe to a Node process that only echoes.
        echo = Service(["node", os.path.join(REPO, "bench", "python", "echo.mjs")], project, dict(os.environ))
        get = {"op": "get", "task": "hit", "input": {"bytes": 3}}
        # Keys this client has not asked for yet: each lookup is a round trip to the service.
        firsts = [f"first {r}-{i}".encode() for r in range(3) for i in range(CALLS)]
        with Client() as seeder:
            for k in firsts:
                seeder.cache_result("first", k, KB)
        hits_before = client.get_stats()["hits"]
        hit = alternate(
            3,
            {
                "tv": lambda r: per_call(lambda i: client.get_cached_result("hit", b"key")),
                "tv first": lambda r: per_call(lambda i: client.get_cached_result("first", firsts[r * CALLS + i])),
                "tv miss": lambda r: per_call(lambda i: client.get_cached_result("absent", f"{r}-{i}".encode())),
                "dc miss": lambda r: per_call(lambda i: dc.get(f"absent {r}-{i}")),
                "dc": lambda r: per_call(lambda i: dc.get("key")),
                "jl": lambda r: per_call(lambda i: cached_kb(1)),
                "echo": lambda r: per_call(lambda i: echo.call(get, [b"key"])),
            },
        )
        echo.close()
        # Every hit, from memory or not, is booked: the count proves none was skipped.
        booked = client.get_stats()["hits"] - hits_before
        assert booked == 6 * CALLS, f"{booked} hits booked of {6 * CALLS}"

        def timed(label: str, t: Dict[str, float], side: str, base: str, base_label: str, target: str) -> None:
            # A row without a label goes on comparing the row above: its figure is not repeated.
            mine = us(t[side]) if label else ""
            rows.append((label, mine, f"{base_label} {us(t[base])}", ratio(t[side], t[base]), target))

        timed("1 KB hit, per call", hit, "tv", "dc", "diskcache get", "<= 2x")
        timed("", hit, "tv", "jl", "joblib.Memory hit", "< 1x")
        timed("", hit, "tv", "echo", "floor: pipe echo", "(floor)")
        timed("1 KB hit, first ask in a client", hit, "tv first", "echo", "floor: pipe echo", "(a round trip)")
        timed("1 KB miss, per call", hit, "tv miss", "dc miss", "diskcache get", "(memoize's first call)")

        # 1 KB save, a new key each call.
        save = alternate(
            3,
            {
                "tv": lambda r: per_call(lambda i: client.cache_result("save", f"{r}-{i}", KB)),
                "dc": lambda r: per_call(lambda i: dc.set(f"{r}-{i}", KB)),
            },
        )
        timed("1 KB save, per call", save, "tv", "dc", "diskcache set", "<= 2x")

        # A big value by path, against cp of the same file. Each round changes the file's first
        # bytes, so the store never finds the content already there.
        big = os.path.join(work, "big.bin")
        block = os.urandom(1 << 20)
        with open(big, "wb") as f:
            for i in range(BIG >> 20):
                f.write(i.to_bytes(8, "big") + block[8:])

        def tv_big(r: int) -> float:
            with open(big, "r+b") as f:
                f.write(f"tv{r:06d}".encode())
            t = time.perf_counter()
            client.cache_result("big", f"round {r}", Client.file(big))
            return time.perf_counter() - t

        def cp_big(r: int) -> float:
            dest = os.path.join(work, "copy.bin")
            t = time.perf_counter()
            subprocess.run(["cp", big, dest], check=True)
            took = time.perf_counter() - t
            os.remove(dest)
            return took

        big_t = alternate(BIG_ROUNDS, {"tv": tv_big, "cp": cp_big})
        mb = BIG / 1e6
        rows.append(
            (
                f"{BIG >> 20} MB by path, throughput",
                f"{mb / big_t['tv']:.0f} MB/s",
                f"cp {mb / big_t['cp']:.0f} MB/s",
                f"{big_t['cp'] / big_t['tv']:.2f}x",
                ">= 0.8x",
            )
        )
        client.close()

        # Client() start to first answer, against a bare `node -e 0`.
        def tv_start(r: int) -> float:
            t = time.perf_counter()
            c = Client()
            c.get_cached_result("start", b"x")
            took = time.perf_counter() - t
            c.close()
            return took

        def node_start(r: int) -> float:
            t = time.perf_counter()
            subprocess.run(["node", "-e", "0"], check=True)
            return time.perf_counter() - t

        tv_start(0)  # the CLI's code cache is written by a first run
        start = alternate(START_ROUNDS, {"tv": tv_start, "node": node_start})
        rows.append(("Client() to first answer", ms(start["tv"]), f"node -e 0 {ms(start['node'])}", ratio(start["tv"], start["node"]), "<= 1.5x"))

        text = markdown_table(("measure", "TaskVault", "baseline", "ratio", "target"), rows)
        print(text)
        if not QUICK:
            header = (
                "# Python SDK benchmark\n\n`node bench/python.mjs` on "
                f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}. "
                "Medians of alternating rounds; ratio = TaskVault / baseline for times, "
                "baseline time / TaskVault time for throughput.\n\n"
            )
            with open(os.path.join(REPO, "bench", "python", "results.md"), "w") as f:
                f.write(header + text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def markdown_table(head: Tuple[str, ...], rows: List[Tuple[str, str, str, str, str]]) -> str:
    """Columns padded to their widest cell, as the repository's formatter (biome) writes tables."""
    all_rows = [head, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)]) + "\n"


def us(s: float) -> str:
    return f"{s * 1e6:.0f} µs"


def ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


if __name__ == "__main__":
    main()
