"""One ``taskvault serve --stdio`` child process and the framing spoken with it.

A frame is a 4-byte big-endian length, that many bytes of a JSON header, then ``header["body"]``
raw bytes (docs/serve-protocol.md). Callers serialise requests (one at a time per service).
"""

import collections
import json
import os
import struct
import subprocess
import threading
from typing import IO, Any, BinaryIO, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from .errors import TaskVaultError

#: Size of the chunk frames a file object is sent in: bounds the memory of both processes.
CHUNK = 1 << 20

#: The largest header the service takes (src/serve/frames.ts MAX_HEADER_BYTES).
MAX_HEADER = 16 * 1024 * 1024

Header = Dict[str, Any]
_LEN = struct.Struct(">I")


class ServiceDied(Exception):
    """The service's pipe broke or closed mid-request: it exited or was killed."""


def encode_header(header: Header) -> bytes:
    """A frame's length and header. A value JSON cannot hold (NaN, an object) is the caller's
    ``TypeError``, raised before anything reaches the service."""
    try:
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"a value of this call cannot be sent to taskvault serve: {e}") from None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (a file name os.fsdecode could not decode): as \u escapes, which JSON
        # holds and JavaScript reads back as the same string.
        data = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("ascii")
    if len(data) > MAX_HEADER:
        raise TaskVaultError(
            f"the request's header is {len(data)} bytes, over the {MAX_HEADER} the service takes; "
            "pass large values as bytes or Client.file(path)",
            "usage",
        )
    return _LEN.pack(len(data)) + data


class Service:
    """A running ``taskvault serve --stdio``. Not thread-safe: the Client holds a lock around calls."""

    def __init__(self, argv: Sequence[str], cwd: str, env: Dict[str, str]) -> None:
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                close_fds=True,
            )
        except OSError as e:
            raise TaskVaultError(f"cannot start {argv[0]}: {e.strerror or e}", "sdk") from None
        self.pid = os.getpid()
        self._next_id = 0
        #: Set while a frame is being written or read: an exception then leaves the pipe out of
        #: step (half a frame sent or unread), and this service must be ended.
        self.mid_frame = False
        # The service writes to stderr only when something is badly wrong; the last lines explain
        # an exit. Drained by a thread so a chatty service can never block on a full pipe.
        self._stderr: Deque[str] = collections.deque(maxlen=20)
        self._drainer = threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True)
        self._drainer.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self._stderr.append(text)

    def why_dead(self) -> str:
        """One line on why the service is gone: its last error line, or its exit status."""
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        # The drain thread may still hold the last line for a moment after exit.
        for _ in range(20):
            if self._stderr or code is None:
                break
            threading.Event().wait(0.01)
        errors = [s for s in self._stderr if "error" in s]
        last = (errors or list(self._stderr) or [""])[-1]
        if last.startswith("taskvault: error: "):
            last = last[len("taskvault: error: ") :]
        status = "was killed" if code is not None and code < 0 else f"exited with code {code}"
        return f"taskvault serve {status}" + (f": {last}" if last else "")

    def call(
        self,
        header: Header,
        parts: Sequence[bytes] = (),
        streams: Sequence[Tuple[str, BinaryIO]] = (),
        on_warning: Optional[Callable[[str], None]] = None,
    ) -> Tuple[Header, bytes]:
        """Sends one request (raw ``parts`` in its body, then ``streams`` as chunk frames) and
        returns the reply's header and body. Warning frames on the way go to ``on_warning``.

        Raises ``ServiceDied`` only for a broken pipe. Anything else (a header value JSON cannot
        hold, a file object whose ``read()`` fails, a warning hook that raises) is raised as
        itself; unless ``mid_frame`` is then set, the service is still in step and may be used
        again (a request whose stream could not be read is aborted, and its reply skipped)."""
        self._next_id += 1
        rid = self._next_id
        h = dict(header)
        h["id"] = rid
        size = sum(len(p) for p in parts)
        if size:
            h["body"] = size
        head = encode_header(h)  # before anything is written: the caller's errors leave no trace
        self._write(head, *parts)
        for name, f in streams:
            while True:
                try:
                    chunk = f.read(CHUNK)
                    if not isinstance(chunk, (bytes, bytearray, memoryview)):
                        # None: a non-blocking stream with nothing to read yet, which is not its end.
                        raise TypeError(
                            f"{name}: the file object's read() returned {type(chunk).__name__}, not bytes; "
                            "pass a blocking file object opened in binary mode ('rb')"
                        )
                except BaseException:
                    if not self.mid_frame:
                        # Between two frames: the service is told this value will never be whole,
                        # fails the request, and stays in step with us.
                        try:
                            self._write(encode_header({"id": rid, "chunk": name, "abort": True}))
                            self._flush()
                        except ServiceDied:
                            pass  # Gone anyway (mid_frame stays set): the caller's error is the news.
                    raise
                if not chunk:
                    break
                if isinstance(chunk, memoryview):
                    chunk = chunk.tobytes()  # its length in bytes, whatever its item format
                self._write(encode_header({"id": rid, "chunk": name, "body": len(chunk)}), chunk)
            self._write(encode_header({"id": rid, "chunk": name, "end": True}))
        self._flush()
        while True:
            reply, body = self._read_frame()
            if "warning" in reply:
                if on_warning is not None:
                    on_warning(str(reply["warning"]))
                continue
            if reply.get("id") == rid:
                return reply, body
            if reply.get("id") == 0:
                raise TaskVaultError(f"taskvault serve: {reply.get('error', {}).get('message')}", "sdk")
            # A reply to an earlier request that was abandoned (an interrupted call): skip it.

    def send(self, header: Header) -> None:
        """Sends one request that has no reply (``hits``)."""
        h = dict(header)
        h["id"] = self._next_id + 1
        head = encode_header(h)
        self._next_id += 1
        self._write(head)
        self._flush()

    def _write(self, *data: bytes) -> None:
        """Writes one whole frame (or its parts) to the service. ``mid_frame`` stays set if this is
        interrupted (KeyboardInterrupt): the pipe may then hold half a frame."""
        w = self.proc.stdin
        assert w is not None
        self.mid_frame = True
        try:
            for d in data:
                w.write(d)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ServiceDied(str(e)) from None
        except ValueError as e:
            if w.closed:  # The pipe's file object was closed under us (the service was closed).
                raise ServiceDied(str(e)) from None
            raise
        self.mid_frame = False

    def _flush(self) -> None:
        w = self.proc.stdin
        assert w is not None
        self.mid_frame = True
        try:
            w.flush()
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ServiceDied(str(e)) from None
        except ValueError as e:
            if w.closed:
                raise ServiceDied(str(e)) from None
            raise
        self.mid_frame = False

    def _read_frame(self) -> Tuple[Header, bytes]:
        r = self.proc.stdout
        assert r is not None
        # Interrupted while reading, the rest of the frame is still in the pipe.
        self.mid_frame = True
        try:
            head = r.read(4)
            if len(head) < 4:
                raise ServiceDied("end of stream")
            (n,) = _LEN.unpack(head)
            data = r.read(n)
            if len(data) < n:
                raise ServiceDied("end of stream")
            header = json.loads(data.decode("utf-8"))
            size = header.get("body", 0)
            body = r.read(size) if size else b""
            if len(body) < size:
                raise ServiceDied("end of stream")
            self.mid_frame = False
            return header, body
        except (OSError, ValueError) as e:
            raise ServiceDied(str(e)) from None

    def abort(self) -> None:
        """Kills the service: for a pipe that may hold half a request."""
        try:
            self.proc.kill()
        except OSError:
            pass  # Already exited.
        self.close(timeout=5)

    def close(self, timeout: float = 10.0) -> None:
        """Ends the service: closing its stdin lets it finish what it writes and exit by itself."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass  # Already gone: the wait below returns at once.
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drainer.join(timeout=1)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


#: Services started by a parent process, as seen from a forked child: kept referenced, so that
#: their file objects are never finalised here.
_inherited: List[Service] = []


def abandon_after_fork(service: Service) -> None:
    """In a forked child: lets go of the parent's service without touching it. Each pipe fd is
    pointed at /dev/null, so that the child holds no end of the parent's pipes (the service then
    sees its stdin end when the parent closes it, whatever the child does) and a flush of a
    half-written request in the child's copy of a buffer can never reach the parent's service."""
    _inherited.append(service)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for stream in (service.proc.stdin, service.proc.stdout, service.proc.stderr):
            if stream is not None and not stream.closed:
                os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)
