"""``Client``: results cached on the same cache as the ``taskvault`` CLI and the TS SDK.

The Client starts ``taskvault serve --stdio`` once, sends every call to it over a pipe, restarts it
once if it died, and ends it on ``close()``, at the end of a ``with`` block, or at interpreter exit.
Keys are the service's (the TS SDK's own code), so Python, TypeScript and ``taskvault cache get``
find each other's results. Reference: docs/python.md.
"""

import atexit
import functools
import hashlib
import inspect
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
import warnings
import weakref
from typing import (
    Any,
    BinaryIO,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from ._config import setup_for
from ._locate import find_cli
from ._memo import MAX_VALUE, Memo, Remembered
from ._service import Service, ServiceDied, abandon_after_fork
from .errors import TaskVaultError, TaskVaultWarning

__all__ = ["Client", "FileRef", "RunResult", "TaskVaultError", "TaskVaultWarning"]

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

#: How long hits served from memory wait to be booked together (one frame to the service).
_HITS_BATCH_S = 0.02

#: JS numbers are doubles: integers beyond this are keyed as {"$bigint": "<digits>"}, as the TS SDK does.
_MAX_SAFE_INT = 2**53 - 1

#: The keys of memoize's placeholders: a dict whose only key is one of these stands for bytes, a
#: file or a big integer in the key, so an argument cannot be one (it would key as another call).
_MARKERS = ("$bytes", "$file", "$bigint")


class FileRef:
    """A file passed by path (``Client.file(path)``): the service reads and streams it itself, so
    its size is bounded only by the disk. The path is made absolute when the ref is created."""

    __slots__ = ("path",)

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise TypeError(f"Client.file() takes a path, got {type(path).__name__}")
        self.path = os.path.abspath(os.fspath(path))

    def __repr__(self) -> str:
        return f"Client.file({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileRef) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


#: What ``input`` and ``output`` accept: bytes, text (UTF-8), a file by path, a binary file object.
Data = Union[bytes, bytearray, memoryview, str, FileRef, BinaryIO]


class RunResult:
    """What ``Client.run`` returns: ``taskvault run --json``'s summary, plus captured output."""

    def __init__(self, summary: Dict[str, Any], stdout: Optional[bytes], stderr: Optional[bytes]):
        self.summary = summary
        #: 'hit', 'miss' or 'uncached'.
        self.kind: str = summary.get("kind", "uncached")
        self.exit_code: int = int(summary.get("exitCode", 1))
        self.key: Optional[str] = summary.get("key")
        self.stdout = stdout
        self.stderr = stderr

    @property
    def hit(self) -> bool:
        return self.kind == "hit"

    def __repr__(self) -> str:
        return f"RunResult(kind={self.kind!r}, exit_code={self.exit_code}, key={self.key!r})"


_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


class _Flights:
    """The memoized calls of one decorated function in progress in this process, which identical
    concurrent calls wait for (keyed by a digest of the arguments)."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.inflight: Dict[str, "_Inflight"] = {}

    def reset(self) -> None:
        """In a forked child: the threads running those calls were the parent's and do not exist
        here, and the guard may have been held by one of them when the process forked."""
        self.guard = threading.Lock()
        self.inflight = {}


#: Every decorated function's ``_Flights``, held weakly (a decorated function can be collected).
_flights: "weakref.WeakSet[_Flights]" = weakref.WeakSet()


def _close_all() -> None:
    for c in list(_clients):
        c.close()


def _flush_served_loop(ref: "weakref.ref[Client]", wake: threading.Event) -> None:
    """The thread that books hits served from memory: each batch ``_HITS_BATCH_S`` after its
    first hit. Holds the Client weakly, so an unused Client can still be collected."""
    while True:
        wake.wait()
        time.sleep(_HITS_BATCH_S)
        client = ref()
        if client is None:
            return
        with client._lock:
            if client._closed or client._wake is not wake:
                return
            wake.clear()
            try:
                client._flush_served()
            except Exception:  # noqa: BLE001 - e.g. a warning turned into an error: the next call sends them
                pass
        del client


def _after_fork_in_child() -> None:
    for c in list(_clients):
        c._forget_service()
    for f in list(_flights):
        f.reset()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Client:
    """TaskVault's cache from Python.

    ``Client()`` uses the project around the working directory, as the CLI does;
    ``Client("taskvault.config.ts")`` that config file; ``Client(".taskvault/config.yaml")`` a small
    YAML file of cache settings (docs/python.md). Thread-safe (calls share one service, one at a
    time), fork-safe (a child process starts its own service) and safe from many processes at once.
    """

    def __init__(
        self,
        config: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        cwd: Optional[Union[str, "os.PathLike[str]"]] = None,
        cache_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        on_warning: Optional[Callable[[str], None]] = None,
        env: Optional[Mapping[str, str]] = None,
        durability: Optional[str] = None,
    ) -> None:
        if config is not None and not isinstance(config, (str, os.PathLike)):
            raise TypeError(f"Client(config) takes a path, got {type(config).__name__}")
        if on_warning is not None and not callable(on_warning):
            raise TypeError("on_warning must be a function of one message string")
        if durability not in (None, "strict", "fast"):
            raise TypeError(f"durability must be 'strict' or 'fast', got {durability!r}")
        here = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
        self._env: Dict[str, str] = dict(os.environ if env is None else env)
        setup = setup_for(
            os.fspath(config) if config is not None else None,
            here,
            os.fspath(cache_dir) if cache_dir is not None else None,
        )
        self._env.update(setup.env)
        if durability is not None:
            # When cache_result returns: 'fast' once a crash of the service cannot lose the save,
            # 'strict' once a power loss cannot either (docs/guarantees.md).
            self._env["TASKVAULT_DURABILITY"] = durability
        self._cwd = setup.cwd
        self._argv = find_cli(here, self._env)
        self._serve_args = ["serve", "--stdio", *setup.args]
        self._on_warning = on_warning
        self._lock = threading.Lock()
        self._service: Optional[Service] = None
        self._closed = False
        #: Small results the index gave, served again while it is unchanged (_memo.py).
        self._memo: Optional[Memo] = None
        #: Hits served from memory, not yet booked by the service: [task, key] each.
        self._served: List[List[str]] = []
        self._wake = threading.Event()
        self._flusher_pid = 0
        #: What the service said at start: version, root, cacheDir, hashAlgorithm.
        self.info: Dict[str, Any] = {}
        with self._lock:
            self._start()
        _clients.add(self)

    # -- the service ------------------------------------------------------------------------

    def _start(self) -> Service:
        svc = Service([*self._argv, *self._serve_args], self._cwd, self._env)
        try:
            reply, _ = svc.call({"op": "hello"}, on_warning=self._warn)
        except ServiceDied:
            why = svc.why_dead()
            svc.close(timeout=1)
            raise TaskVaultError(why, "sdk") from None
        if not reply.get("ok"):
            svc.close(timeout=1)
            raise _error(reply)
        self.info = {k: v for k, v in reply.items() if k not in ("id", "ok")}
        if self._memo is None and isinstance(self.info.get("cacheDir"), str):
            self._memo = Memo(self.info["cacheDir"])
        self._service = svc
        return svc

    def _forget_service(self) -> None:
        """In a forked child: the parent's service is not ours; the next call starts our own."""
        self._lock = threading.Lock()
        # The parent books its own served hits; its flusher thread does not exist here.
        self._served = []
        self._wake = threading.Event()
        self._flusher_pid = 0
        if self._service is not None:
            abandon_after_fork(self._service)
            self._service = None

    def _call(
        self,
        header: Dict[str, Any],
        parts: Sequence[bytes] = (),
        streams: Sequence[Tuple[str, BinaryIO]] = (),
    ) -> Tuple[Dict[str, Any], bytes]:
        with self._lock:
            if self._closed:
                raise TaskVaultError("this Client is closed", "usage")
            svc = self._service
            if svc is not None and svc.pid != os.getpid():
                # Forked without register_at_fork (or by a raw os.fork path): same rule as above.
                abandon_after_fork(svc)
                svc = self._service = None
            if svc is not None and svc.mid_frame:
                # An earlier call was interrupted halfway through a frame: the pipe is out of step.
                svc.abort()
                svc = self._service = None
            # Booked before this request is read, so that stats count them.
            self._flush_served()
            svc = self._service
            # Where each stream starts, so that a call can be sent again after a restart.
            starts = [_tell(f) for _, f in streams]
            for attempt in (1, 2):
                if svc is None:
                    svc = self._start()
                try:
                    reply, body = svc.call(header, parts, streams, self._warn)
                    break
                except ServiceDied:
                    why = svc.why_dead()
                    svc.close(timeout=1)
                    svc = self._service = None
                    if attempt == 2 or not _rewind(streams, starts):
                        raise TaskVaultError(f"{why}; the call was not completed", "sdk") from None
                except BaseException:
                    # The caller's error (a value JSON cannot hold, a file object whose read()
                    # failed, a warning hook that raised) leaves the service in step, and it is
                    # kept. Interrupted halfway through a frame (KeyboardInterrupt), the pipe may
                    # hold half a request: this service is done, and the next call starts one.
                    if svc.mid_frame:
                        svc.abort()
                        self._service = None
                    raise
        if not reply.get("ok"):
            raise _error(reply)
        return reply, body

    def _flush_served(self) -> None:
        """Sends the hits served from memory to be booked (the lock held), restarting a dead
        service once."""
        if not self._served:
            return
        hits, self._served = self._served, []
        for _ in (1, 2):
            svc = self._service
            if svc is not None and svc.mid_frame:  # out of step since an interrupted call
                svc.abort()
                svc = self._service = None
            try:
                if svc is None:
                    svc = self._start()
                svc.send({"op": "hits", "hits": hits})
                return
            except ServiceDied:
                svc.close(timeout=1)  # type: ignore[union-attr]
                self._service = None
            except (TaskVaultError, OSError):
                break
        self._warn(f"{len(hits)} hit(s) served from memory were not counted: taskvault serve is gone")

    def _from_memory(self, task: str, what: Tuple[Any, ...]) -> Optional[Remembered]:
        """A value the index gave for ``what`` that may still be served unasked (_memo.py)."""
        with self._lock:
            if self._closed:
                raise TaskVaultError("this Client is closed", "usage")
            r = self._memo.get(what) if self._memo is not None else None
            if r is None:
                return None
            self._served.append([task, r.key])
            if len(self._served) == 1:
                if self._flusher_pid != os.getpid():
                    self._flusher_pid = os.getpid()
                    threading.Thread(
                        target=_flush_served_loop,
                        args=(weakref.ref(self), self._wake),
                        name="taskvault-hits",
                        daemon=True,
                    ).start()
                self._wake.set()
            return r

    def _get(
        self,
        task: str,
        described: Dict[str, Any],
        parts: Sequence[bytes],
        streams: Sequence[Tuple[str, BinaryIO]] = (),
    ) -> Tuple[Optional[bytes], str]:
        """A lookup, ``(value or None on a miss, its encoding)``: from this client's memory when
        it may serve it (_memo.py), else from the service, whose hit is then remembered."""
        header = {"op": "get", "task": task, "input": described}
        what = _memory_key(task, described, parts, streams)
        if what is None:
            reply, body = self._call(header, parts, streams)
            return (body if reply["hit"] else None), str(reply.get("encoding", "raw"))
        r = self._from_memory(task, what)
        if r is not None:
            return r.value, r.encoding
        with self._lock:  # the memo's file handle is shared with other threads
            asked = self._memo.asking() if self._memo is not None else None
        reply, body = self._call(header, parts)
        if not reply["hit"]:
            return None, "raw"
        if asked is not None:
            with self._lock:
                if self._memo is not None:
                    self._memo.put(what, asked, reply, body)
        return body, str(reply.get("encoding", "raw"))

    def _saved(self, key: str) -> None:
        with self._lock:
            if self._memo is not None:
                self._memo.forget(key)

    def _warn(self, message: str) -> None:
        if self._on_warning is not None:
            self._on_warning(message)
        else:
            warnings.warn(message, TaskVaultWarning, stacklevel=4)

    def close(self) -> None:
        """Ends the service (it finishes pending writes first). The Client cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            try:
                # Starts a service if there is none (a forked child that only served from memory).
                self._flush_served()
            except Exception:  # noqa: BLE001 - a warning hook that raises must not stop close()
                pass
            self._closed = True
            svc, self._service = self._service, None
            self._wake.set()  # ends the flusher thread
            if self._memo is not None:
                self._memo.close()
        if svc is not None and svc.pid == os.getpid():
            svc.close()
        _clients.discard(self)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def file(path: Union[str, "os.PathLike[str]"]) -> FileRef:
        """Marks a path as a file to stream (datasets, checkpoints): never read into memory."""
        return FileRef(path)

    # -- results ----------------------------------------------------------------------------

    def get_cached_result(
        self, task: str, input: Data, to_file: Optional[Union[str, "os.PathLike[str]"]] = None
    ) -> Tuple[Optional[bytes], bool]:
        """``(value, True)`` on a hit (verified against its hash), ``(None, False)`` on a miss.

        With ``to_file``, the value is streamed to that path (written whole, then renamed into
        place) and ``(None, True)`` is returned on a hit; on a miss nothing is written.
        """
        _check_task(task, "get_cached_result")
        header: Dict[str, Any] = {"op": "get", "task": task}
        parts: List[bytes] = []
        streams: List[Tuple[str, BinaryIO]] = []
        header["input"] = _data(input, "input", parts, streams)
        if to_file is not None:
            if not isinstance(to_file, (str, os.PathLike)) or not os.fspath(to_file):
                raise TypeError(f"to_file must be a path, got {type(to_file).__name__}")
            header["toFile"] = os.path.abspath(os.fspath(to_file))
            reply, _ = self._call(header, parts, streams)
            return None, bool(reply["hit"])
        value, _ = self._get(task, header["input"], parts, streams)
        return value, value is not None

    def cache_result(
        self, task: str, input: Data, output: Data, duration_ms: Optional[float] = None
    ) -> str:
        """Stores ``output`` as the result of ``task`` for ``input``; returns the key (hex).

        ``duration_ms``: how long producing it took, for "time saved" (default: the time since
        this key last missed, as in the CLI).
        """
        _check_task(task, "cache_result")
        header: Dict[str, Any] = {"op": "save", "task": task}
        parts: List[bytes] = []
        streams: List[Tuple[str, BinaryIO]] = []
        header["input"] = _data(input, "input", parts, streams)
        header["output"] = _data(output, "output", parts, streams)
        if duration_ms is not None:
            if not _finite(duration_ms) or not duration_ms >= 0:
                raise TypeError(f"duration_ms must be a number >= 0 and finite, got {duration_ms!r}")
            header["durationMs"] = duration_ms
        reply, _ = self._call(header, parts, streams)
        self._saved(str(reply["key"]))
        return str(reply["key"])

    def get_stats(self) -> Dict[str, Any]:
        """Entries, sizes, hits, misses, hit rate and time saved: the keys and numbers of
        ``taskvault stats --json``."""
        reply, _ = self._call({"op": "stats"})
        return cast(Dict[str, Any], reply["stats"])

    # -- memoize ----------------------------------------------------------------------------

    def memoize(
        self,
        task: str,
        *,
        encode: Optional[Callable[[Any], Union[bytes, str]]] = None,
        decode: Optional[Callable[[bytes], Any]] = None,
    ) -> Callable[[F], F]:
        """Decorator: a call whose arguments were seen before returns the stored result.

        Arguments are keyed canonically (plain values as JSON with sorted keys, bytes and
        ``Client.file(path)`` by content), in the same form as the TS SDK's ``memoize``. Results
        are stored as bytes (a bytes result) or JSON; ``encode``/``decode`` replace that (e.g.
        ``pickle.dumps``/``pickle.loads``). A broken cache never breaks the call: the function
        runs and a warning says why. Concurrent identical calls in this process run once.
        """
        _check_task(task, "memoize")
        if (encode is None) != (decode is None):
            raise TypeError("memoize: give encode and decode together (one reverses the other)")

        def wrap(fn: F) -> F:
            if not callable(fn):
                raise TypeError(f"memoize({task!r}) decorates a function, got {type(fn).__name__}")
            try:
                sig: Optional[inspect.Signature] = inspect.signature(fn)
            except (TypeError, ValueError):
                sig = None  # A builtin without a signature: arguments are keyed as given.
            flights = _Flights()
            _flights.add(flights)

            @functools.wraps(fn)
            def memoized(*args: Any, **kwargs: Any) -> Any:
                parts: List[bytes] = []
                blobs: List[Dict[str, Any]] = []
                memo = _memo_args(task, sig, args, kwargs, parts, blobs)
                digest = hashlib.blake2b(json.dumps([memo, blobs], sort_keys=True).encode())
                for p in parts:
                    digest.update(p)
                text = digest.hexdigest()
                with flights.guard:
                    inflight = flights.inflight
                    mine = text not in inflight
                    slot = inflight.setdefault(text, _Inflight()) if mine else inflight[text]
                if not mine:
                    return slot.wait()
                try:
                    value = self._memo_call(task, fn, args, kwargs, memo, blobs, parts, encode, decode)
                    slot.done(value, None)
                    return value
                except BaseException as e:
                    slot.done(None, e)
                    raise
                finally:
                    with flights.guard:
                        # The dict it was put in (a fork in between replaced the one it is in now).
                        if inflight.get(text) is slot:
                            del inflight[text]

            return cast(F, memoized)

        return wrap

    def _memo_call(
        self,
        task: str,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        memo: Any,
        blobs: List[Dict[str, Any]],
        parts: List[bytes],
        encode: Optional[Callable[[Any], Union[bytes, str]]],
        decode: Optional[Callable[[bytes], Any]],
    ) -> Any:
        memo_input = {"memo": memo, "blobs": blobs}
        try:
            body, encoding = self._get(task, memo_input, parts)
            if body is not None:
                if decode is not None:
                    return decode(body)
                if encoding == "json":
                    return _read_json_result(body)
                return body
        except TaskVaultError as e:
            self._warn(f"memoize {task}: cache skipped: {e}")
        except Exception as e:  # A decode hook or a stored value that no longer parses.
            self._warn(f"memoize {task}: cache skipped: {type(e).__name__}: {e}")
        started = time.monotonic()
        value = fn(*args, **kwargs)
        duration_ms = (time.monotonic() - started) * 1000
        if encode is not None:
            try:
                data = encode(value)
                if not isinstance(data, (bytes, bytearray, memoryview, str)):
                    raise TypeError(f"it returned {type(data).__name__}, not bytes or str")
                out, encoding = (data.encode("utf-8") if isinstance(data, str) else bytes(data)), "raw"
            except Exception as e:  # noqa: BLE001 - as the TS SDK: the result is returned, not cached
                self._warn(f"memoize {task}: not cached: encode failed: {type(e).__name__}: {e}")
                return value
        elif isinstance(value, (bytes, bytearray, memoryview)):
            out, encoding = bytes(value), "raw"
        else:
            try:
                out, encoding = _json_result(value), "json"
            except (TypeError, ValueError, RecursionError) as e:  # RecursionError: nested past json's depth
                self._warn(f"memoize {task}: not cached: the result cannot be stored as JSON ({e}); "
                           "return bytes or pass encode/decode (e.g. pickle)")
                return value
        try:
            reply, _ = self._call(
                {
                    "op": "save",
                    "task": task,
                    "input": memo_input,
                    "output": {"bytes": len(out)},
                    "durationMs": duration_ms,
                    "encoding": encoding,
                },
                [*parts, out],
            )
            self._saved(str(reply["key"]))
        except TaskVaultError as e:
            self._warn(f"memoize {task}: not cached: {e}")
        except Exception as e:  # noqa: BLE001 - a broken cache never breaks the call
            self._warn(f"memoize {task}: not cached: {type(e).__name__}: {e}")
        return value

    # -- run / explain ----------------------------------------------------------------------

    def explain(
        self,
        task: Optional[str] = None,
        command: Optional[Union[Sequence[str], str]] = None,
        **options: Any,
    ) -> Dict[str, Any]:
        """What ``taskvault explain --json`` prints, as data: the key, the fingerprint, whether it
        would hit, and why not. Options as for ``run``."""
        spec = _run_spec(task, command, options, "explain")
        reply, _ = self._call({"op": "explain", "spec": spec})
        return cast(Dict[str, Any], reply["explanation"])

    def run(
        self,
        task: Optional[str] = None,
        command: Optional[Union[Sequence[str], str]] = None,
        *,
        capture_output: bool = False,
        **options: Any,
    ) -> RunResult:
        """Does what ``taskvault run`` does (restore on a hit, else run and store), by running
        the CLI: the command's output goes to this process's stdout/stderr (or, with
        ``capture_output``, into the result). ``command``: argv (no shell) or a string (shell).
        Options: inputs, outputs, env (lists of str), cwd, shell, cache_failures, force, ttl,
        max_entry_size."""
        spec = _run_spec(task, command, options, "run")
        argv = [*self._argv, "run", *_run_flags(spec, self._serve_args[2:])]
        with self._lock:
            if self._closed:
                raise TaskVaultError("this Client is closed", "usage")
        proc = subprocess.Popen(
            argv,
            cwd=self._cwd,
            env=self._env,
            stdout=subprocess.PIPE if capture_output else None,
            stderr=subprocess.PIPE,
        )
        out: Optional[bytes] = None
        # The CLI's stderr: the command's own, TaskVault's warning lines (for on_warning), and
        # last the --json summary, on the command's last line if that did not end in a newline.
        warned: List[str] = []
        with proc:
            if capture_output:
                out, err = proc.communicate()
                kept = [line for line in _lines(err) if not _taskvault_warning(line, warned)]
                last = kept.pop() if kept else b""
                before = b"".join(kept)
            else:
                last = _forward_all_but_last_line(proc, warned)
                before = b""
        for message in warned:
            self._warn(message)
        summary, tail = _split_summary(last)
        if summary is None:
            # Not the summary: TaskVault failed before running anything, and its last line says why.
            lines = (before + last).decode("utf-8", "replace").strip().splitlines()
            line = lines[-1] if lines else f"exit code {proc.returncode}"
            if line.startswith("taskvault: error: "):
                line = line[len("taskvault: error: ") :]
            raise TaskVaultError(f"taskvault run: {line}", "usage")
        if not capture_output:
            _write_stderr(tail)
        return RunResult(summary, out, before + tail if capture_output else None)


class _Inflight:
    """One memoized call in progress, which identical concurrent calls wait for."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None

    def done(self, value: Any, error: Optional[BaseException]) -> None:
        self._value, self._error = value, error
        self._event.set()

    def wait(self) -> Any:
        self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


def _error(reply: Dict[str, Any]) -> TaskVaultError:
    e = reply.get("error") or {}
    message = str(e.get("message", "unknown error"))
    kind = e.get("type")
    if kind == "ProtocolError":
        message = f"taskvault serve did not understand the request: {message}"
    elif kind == "InternalError":
        message = f"taskvault serve: internal error: {message}"
    return TaskVaultError(message, e.get("reason") or "sdk")


def _check_task(task: object, where: str) -> None:
    if not isinstance(task, str):
        raise TypeError(f"{where}: the task name must be a str, got {type(task).__name__}")
    if task == "":
        raise TaskVaultError(f"{where}: the task name is empty", "usage")
    if not _is_utf8(task):
        raise TypeError(f"{where}: the task name is not valid UTF-8 text: {task!r}")


def _is_utf8(s: str) -> bool:
    """False for a str holding lone surrogates (e.g. a file name os.fsdecode could not decode)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _data(value: object, name: str, parts: List[bytes], streams: List[Tuple[str, BinaryIO]]) -> Dict[str, Any]:
    """The protocol's description of an input/output value; raw bytes are appended to ``parts``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        parts.append(bytes(value) if isinstance(value, memoryview) else value)  # type: ignore[arg-type]
        return {"bytes": len(parts[-1])}
    if isinstance(value, str):
        try:
            b = value.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError(f"{name}: a str that is not valid UTF-8 text; pass bytes") from None
        parts.append(b)
        return {"bytes": len(b)}
    if isinstance(value, FileRef):
        return {"path": value.path}
    if isinstance(value, os.PathLike):
        raise TypeError(f"{name}: a path object is ambiguous; pass Client.file(path) to use the file's content")
    if isinstance(value, io.TextIOBase):
        raise TypeError(f"{name}: a text-mode file; open it in binary mode ('rb')")
    if hasattr(value, "read"):
        streams.append((name, cast(BinaryIO, value)))
        return {"stream": True}
    raise TypeError(
        f"{name} must be bytes, str, Client.file(path) or a binary file object, got {type(value).__name__}"
    )


#: How a tuple is stored in a JSON result (a list would come back from a hit instead).
TUPLE = "$tuple"


def _json_result(value: Any) -> bytes:
    """A memoized result as JSON text, only if reading it back (``_read_json_result``) gives the
    same value: a tuple is stored as ``{"$tuple": [...]}``; dict keys that are not str (JSON would
    make 1 and None into "1" and "null"), a dict whose only key is ``$tuple`` (it would come back a
    tuple), a namedtuple, NaN and infinities are refused with a ValueError or TypeError saying
    which."""
    dump = functools.partial(json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # First as it is: json refuses what it cannot hold, and a cycle, before anything is walked.
    text = dump(value)
    stored, tuples = _tuples_marked(value)
    if tuples:
        text = dump(stored)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: kept as \u escapes, which read back the same
        return json.dumps(stored, allow_nan=False, separators=(",", ":")).encode("ascii")


def _tuples_marked(value: Any) -> Tuple[Any, bool]:
    """``value`` (which json.dumps took: no cycle) with each tuple as a ``$tuple`` object, checked
    as _json_result says, and whether it held a tuple. A loop, not recursion: nesting as deep as
    json takes must not run out of Python's stack."""
    root: List[Any] = [None]
    tuples = False
    todo: List[Tuple[Any, Any, Any]] = [(value, root, 0)]
    while todo:
        v, into, at = todo.pop()
        if isinstance(v, dict):
            bad = [k for k in v if not isinstance(k, str)]
            if bad:  # (a list: the key may be None)
                raise TypeError(f"a dict key {bad[0]!r} is {type(bad[0]).__name__}, which JSON would make a str")
            if len(v) == 1 and TUPLE in v:
                raise TypeError(f"a dict whose only key is {TUPLE!r} would come back a tuple")
            out = dict.fromkeys(v)  # the keys in their order; the values filled in below
            todo.extend((x, out, k) for k, x in v.items())
            into[at] = out
        elif isinstance(v, (list, tuple)):
            if isinstance(v, tuple) and type(v) is not tuple:
                raise TypeError(f"a {type(v).__name__} (a tuple subclass) would come back a plain tuple")
            items: List[Any] = [None] * len(v)
            todo.extend((x, items, n) for n, x in enumerate(v))
            if isinstance(v, tuple):
                tuples = True
                into[at] = {TUPLE: items}
            else:
                into[at] = items
        else:
            into[at] = v
    return root[0], tuples


def _read_json_result(body: bytes) -> Any:
    text = body.decode("utf-8")
    if f'"{TUPLE}"' not in text:
        return json.loads(text)
    return json.loads(text, object_hook=lambda d: tuple(d[TUPLE]) if len(d) == 1 and isinstance(d.get(TUPLE), list) else d)


def _memory_key(
    task: str, described: Dict[str, Any], parts: Sequence[bytes], streams: Sequence[object]
) -> Optional[Tuple[Any, ...]]:
    """What a ``get`` is remembered under (_memo.py): its task and input bytes, with memoize's
    argument JSON. None for inputs read from files (they can change under the same path) and
    for large ones."""
    if streams or sum(len(p) for p in parts) > MAX_VALUE:
        return None
    if "memo" in described:
        if any("path" in b for b in described.get("blobs", ())):
            return None
        args = json.dumps(described["memo"], sort_keys=True)
        if len(args) + sum(len(p) for p in parts) > MAX_VALUE:
            return None
        return (task, args, *(bytes(p) for p in parts))
    if "bytes" not in described:
        return None
    return (task, bytes(parts[0]))


def _tell(f: BinaryIO) -> Optional[int]:
    try:
        return f.tell() if f.seekable() else None
    except (OSError, ValueError, AttributeError):
        return None


def _rewind(streams: Sequence[Tuple[str, BinaryIO]], starts: Sequence[Optional[int]]) -> bool:
    """Puts each stream back where the call started; False if one cannot be (a pipe)."""
    for (_, f), at in zip(streams, starts):
        if at is None:
            return False
        f.seek(at)
    return True


def _memo_args(
    task: str,
    sig: Optional[inspect.Signature],
    args: Sequence[Any],
    kwargs: Dict[str, Any],
    parts: List[bytes],
    blobs: List[Dict[str, Any]],
) -> List[Any]:
    """The call's arguments as JSON: positional parameters in order (defaults applied), then
    keyword-only and ``**kwargs`` as one trailing object if there are any. Bytes and files are
    ``{"$bytes": i}`` / ``{"$file": i}`` placeholders for ``blobs[i]``, hashed by the service."""
    values: List[Any] = []
    keywords: Dict[str, Any] = {}
    if sig is None:
        values, keywords = list(args), dict(kwargs)
    else:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"memoize({task!r}): {e}") from None
        bound.apply_defaults()
        for p in sig.parameters.values():
            v = bound.arguments.get(p.name)
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                values.append(v)
            elif p.kind == p.VAR_POSITIONAL:
                values.extend(v or ())
            elif p.kind == p.KEYWORD_ONLY:
                keywords[p.name] = v
            else:
                keywords.update(v or {})
    out = [_memo_value(task, v, f"argument {i + 1}", parts, blobs) for i, v in enumerate(values)]
    if keywords:
        out.append({k: _memo_value(task, v, f"argument {k!r}", parts, blobs) for k, v in keywords.items()})
    return out


def _memo_value(task: str, v: Any, where: str, parts: List[bytes], blobs: List[Dict[str, Any]]) -> Any:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return {"$bigint": str(v)} if abs(v) > _MAX_SAFE_INT else v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise TypeError(f"memoize({task!r}): {where} is {v}, which JSON cannot hold")
        return v
    if isinstance(v, (list, tuple)):
        return [_memo_value(task, x, where, parts, blobs) for x in v]
    if isinstance(v, dict):
        bad = [k for k in v if not isinstance(k, str)]
        if bad:  # (a list: the key may be None)
            raise TypeError(f"memoize({task!r}): {where} has a non-str key {bad[0]!r}; JSON keys are strings")
        if len(v) == 1 and next(iter(v)) in _MARKERS:
            raise TypeError(
                f"memoize({task!r}): {where} holds a dict whose only key is {next(iter(v))!r}, which is how "
                "bytes, files and big integers are keyed; add a key to it or rename that one"
            )
        return {k: _memo_value(task, x, where, parts, blobs) for k, x in v.items()}
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        parts.append(b)
        blobs.append({"bytes": len(b)})
        return {"$bytes": len(blobs) - 1}
    if isinstance(v, FileRef):
        blobs.append({"path": v.path})
        return {"$file": len(blobs) - 1}
    raise TypeError(
        f"memoize({task!r}): {where} is a {type(v).__name__}, which cannot be keyed; "
        "use plain JSON values, bytes or Client.file(path)"
    )


_RUN_OPTIONS = {
    "inputs": "inputs",
    "outputs": "outputs",
    "env": "env",
    "cwd": "cwd",
    "shell": "shell",
    "cache_failures": "cacheFailures",
    "force": "force",
    "ttl": "ttl",
    "max_entry_size": "maxEntrySize",
}


def _finite(v: object) -> bool:
    """A number JSON (and JavaScript) can hold: not a bool, NaN, an infinity or an int beyond a double."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a double
        return False


def _path_text(v: object) -> Optional[str]:
    """A str or an os.PathLike naming a str path as text; None for anything else."""
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    return v if isinstance(v, str) else None


def _run_spec(
    task: Optional[str], command: Optional[Union[Sequence[str], str]], options: Dict[str, Any], where: str
) -> Dict[str, Any]:
    spec: Dict[str, Any] = {}
    if task is not None:
        _check_task(task, where)
        spec["task"] = task
    if command is not None:
        if isinstance(command, str):
            spec["command"] = command
        elif isinstance(command, (list, tuple)) and all(isinstance(a, str) for a in command):
            spec["command"] = list(command)
        else:
            raise TypeError(f"{where}: command must be a list of str (argv) or a str (shell)")
    if task is None and command is None:
        raise TaskVaultError(f"{where}: give a task name, a command, or both", "usage")
    for k, v in options.items():
        if k not in _RUN_OPTIONS:
            raise TypeError(f"{where}: unknown option {k!r} (known: {', '.join(_RUN_OPTIONS)})")
        if v is None:
            continue  # As if not given: the task's or the CLI's default.
        spec[_RUN_OPTIONS[k]] = _run_option(k, v, where)
    return spec


def _run_option(k: str, v: Any, where: str) -> Any:
    """An option of run/explain as the spec holds it, or a one-line TypeError."""
    if k in ("inputs", "outputs", "env"):
        paths = k != "env"  # globs: a path object is taken as its text
        iterable = not isinstance(v, (str, bytes, bytearray, Mapping)) and hasattr(v, "__iter__")
        items = [_path_text(x) if paths else x for x in v] if iterable else None
        if items is None or not all(isinstance(x, str) for x in items):
            kind = "str or path objects" if paths else "str"
            raise TypeError(f"{where}: {k} must be a list of {kind}, got {_described(v)}")
        return items
    if k == "cwd":
        text = _path_text(v)
        if text is None:
            raise TypeError(f"{where}: cwd must be a path (str or os.PathLike), got {_described(v)}")
        return text
    if k in ("shell", "cache_failures", "force"):
        if not isinstance(v, bool):
            raise TypeError(f"{where}: {k} must be True or False, got {_described(v)}")
        return v
    # ttl (seconds, or a duration like '2h') and max_entry_size (bytes, or a size like '500MB')
    if isinstance(v, str) or _finite(v):
        return v
    unit = "seconds" if k == "ttl" else "bytes"
    raise TypeError(f"{where}: {k} must be a str or a finite number of {unit}, got {_described(v)}")


def _described(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 and isinstance(v, (int, float, str, list, tuple)) else type(v).__name__


def _run_flags(spec: Dict[str, Any], serve_flags: List[str]) -> List[str]:
    """``taskvault run`` arguments for a spec (the service's --config/--cache-dir included)."""
    flags = ["--json", *serve_flags]
    for name in ("inputs", "outputs", "env"):
        for v in spec.get(name, []):
            flags += [f"--{name}", v]
    if spec.get("cwd") is not None:
        flags += ["--cwd", str(spec["cwd"])]
    for key, flag in (("shell", "--shell"), ("cacheFailures", "--cache-failures"), ("force", "--force")):
        if spec.get(key):
            flags.append(flag)
    for key, flag in (("ttl", "--ttl"), ("maxEntrySize", "--max-entry-size")):
        if spec.get(key) is not None:
            flags += [flag, _number_text(spec[key])]
    command = spec.get("command")
    if isinstance(command, str):
        if "--shell" not in flags:
            flags.append("--shell")
        command = [command]
    task = [spec["task"]] if "task" in spec else []
    return [*task, *flags, *(["--", *command] if command else [])]


def _number_text(v: Union[str, int, float]) -> str:
    """A ttl or size as the CLI's flag takes it: a number in plain decimals (never '1e-05')."""
    if isinstance(v, str) or isinstance(v, int):
        return str(v)
    return str(int(v)) if v.is_integer() else format(v, ".6f").rstrip("0").rstrip(".")


#: How the CLI starts a warning line on stderr (src/util/term.ts; no colour: stderr is a pipe).
_WARNING = b"taskvault: warning: "


def _taskvault_warning(line: bytes, warned: List[str]) -> bool:
    """Whether ``line`` is one of TaskVault's warning lines; if so, its message is added to ``warned``."""
    if not line.startswith(_WARNING):
        return False
    warned.append(line[len(_WARNING) :].rstrip(b"\r\n").decode("utf-8", "replace"))
    return True


def _lines(data: bytes) -> List[bytes]:
    """``data`` in lines, each with its newline (the last one may have none)."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _split_summary(line: bytes) -> Tuple[Optional[Dict[str, Any]], bytes]:
    """The --json summary at the end of the CLI's last stderr line, and what came before it on
    that line (the command's last output, when it did not end in a newline): the JSON object
    that starts at the last '{"' from which the rest of the line parses as a summary."""
    text = line.rstrip(b"\n")
    at = len(text)
    while True:
        at = text.rfind(b'{"', 0, at)
        if at < 0:
            return None, line
        try:
            parsed = json.loads(text[at:].decode("utf-8"))
        except ValueError:
            continue
        if (
            isinstance(parsed, dict)
            and parsed.get("kind") in ("hit", "miss", "uncached")
            and isinstance(parsed.get("exitCode"), int)
        ):
            return parsed, text[:at]


def _write_stderr(data: bytes) -> None:
    if not data:
        return
    out = getattr(sys.stderr, "buffer", None)
    if out is not None:
        out.write(data)
        out.flush()
    else:
        sys.stderr.write(data.decode("utf-8", "replace"))
        sys.stderr.flush()


def _forward_all_but_last_line(proc: "subprocess.Popen[bytes]", warned: List[str]) -> bytes:
    """Copies the CLI's stderr through as it comes, holding back the last line (the --json
    summary) and TaskVault's warning lines (their messages go to ``warned``). Returns the
    held-back line."""
    assert proc.stderr is not None
    held = b""
    for line in proc.stderr:
        if _taskvault_warning(line, warned):
            continue
        _write_stderr(held)
        held = line
    return held
