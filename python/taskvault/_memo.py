"""Small results kept in the Client's memory and served again while the index has not changed.

A repeat of a ``get`` the index answered is served from here (docs/serve-protocol.md, "Serving
from memory") only while ``<cacheDir>/generation`` holds the bytes read before the index was
asked (any process rewrites them after every commit or removal of an entry), the entry's TTL has
not passed, and the index confirmed the value less than ``CONFIRM_S`` ago. The Client tells the
service about each hit served here, so counts, LRU order and the audit log stay exact.
"""

import os
import time
from typing import Any, Dict, Hashable, NamedTuple, Optional, Set, Tuple

#: Larger values are always asked for: memory is for the many small results of a hot loop.
MAX_VALUE = 64 * 1024
#: Bound on the memory held, counting keys, values and ``OVERHEAD`` per entry.
MAX_BYTES = 16 * 1024 * 1024
OVERHEAD = 256
#: How long a value is served unasked at most: covers what a generation file cannot show (a
#: rewrite that failed, a writer killed between its commit and the rewrite, an older TaskVault).
CONFIRM_S = 1.0
GENERATION_BYTES = 16


class Remembered(NamedTuple):
    generation: bytes
    key: str
    #: Epoch seconds the entry's TTL ends (inf: none).
    until: float
    #: time.monotonic() when the index last gave this value.
    confirmed: float
    value: bytes
    encoding: str
    size: int


class Asked(NamedTuple):
    generation: Optional[bytes]
    #: time.monotonic() before the index was asked: the one-second bound counts from here.
    confirmed: float
    saves: int


class _Generation:
    """``<cacheDir>/generation``, held open: a read is one ``pread``, one ``fstat`` and one ``stat``."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: Optional[int] = None

    def read(self) -> Optional[bytes]:
        """The file's bytes, or None when it is missing or short (then nothing is served)."""
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                return None
        try:
            held = os.fstat(self._fd)
            try:
                there = os.stat(self._path)
            except OSError:
                there = None
            if held.st_nlink == 0 or there is None or (there.st_ino, there.st_dev) != (held.st_ino, held.st_dev):
                # Deleted, or another file now at the path (the cache directory removed, or another
                # cache moved into its place): what we hold says nothing of the index there. The
                # next read opens the file at the path.
                self.close()
                return None
            data = os.pread(self._fd, GENERATION_BYTES, 0)
        except OSError:
            return None
        return data if len(data) == GENERATION_BYTES else None

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass  # Already closed.
            self._fd = None


class Memo:
    """What the Client remembers. Not thread-safe: the Client holds its lock around each use."""

    def __init__(self, cache_dir: str) -> None:
        self._generation = _Generation(os.path.join(cache_dir, "generation"))
        self._values: Dict[Hashable, Remembered] = {}
        #: Each entry's key -> every lookup remembered with its value (``sq(1)`` and ``sq(1.0)``
        #: are two lookups of one key).
        self._by_key: Dict[str, Set[Hashable]] = {}
        self._bytes = 0
        #: Saves this client made (forget): an answer asked for before one is not remembered.
        self.saves = 0

    def asking(self) -> "Asked":
        """Taken just before the index is asked: what its answer is remembered under."""
        return Asked(self._generation.read(), time.monotonic(), self.saves)

    def get(self, what: Hashable) -> Optional[Remembered]:
        r = self._values.get(what)
        if r is None:
            return None
        if (
            time.monotonic() - r.confirmed >= CONFIRM_S
            or time.time() >= r.until
            or self._generation.read() != r.generation
        ):
            self._drop(what)
            return None
        return r

    def put(self, what: Tuple[Any, ...], asked: "Asked", reply: Dict[str, object], value: bytes) -> None:
        """Remembers the index's answer to ``what`` (the lookup's task, memoize argument JSON and
        input bytes), given what ``asking()`` said just before the index was asked."""
        generation, confirmed, saves = asked
        if generation is None or len(value) > MAX_VALUE or saves != self.saves:
            return
        until = reply.get("until")
        size = sum(len(x) for x in what if isinstance(x, (str, bytes))) + len(value) + OVERHEAD
        self._drop(what)
        while self._values and self._bytes + size > MAX_BYTES:
            self._drop(next(iter(self._values)))  # the oldest first
        key = str(reply["key"])
        self._values[what] = Remembered(
            generation,
            key,
            float(until) / 1000 if isinstance(until, (int, float)) else float("inf"),
            confirmed,
            value,
            str(reply.get("encoding", "raw")),
            size,
        )
        self._by_key.setdefault(key, set()).add(what)
        self._bytes += size

    def forget(self, key: str) -> None:
        """This client saved ``key``: its old value must not be served before the commit lands,
        nor remembered from an answer already on its way."""
        self.saves += 1
        for what in list(self._by_key.get(key, ())):
            self._drop(what)

    def _drop(self, what: Hashable) -> None:
        r = self._values.pop(what, None)
        if r is not None:
            self._bytes -= r.size
            lookups = self._by_key.get(r.key)
            if lookups is not None:
                lookups.discard(what)
                if not lookups:
                    del self._by_key[r.key]

    def close(self) -> None:
        self._values.clear()
        self._by_key.clear()
        self._bytes = 0
        self._generation.close()
