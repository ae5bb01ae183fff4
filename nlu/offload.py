"""Understanding off the event loop: a helper process reads messages while the loop serves.

Reading a message (the embedded NLU's parse, the knowledge-base search) is pure CPU work: about
0.5 of the ~2.4 ms of CPU a subscriber's message cost the process at 600 msg/s, and a long
message's parse held every other subscriber up meanwhile. One process uses one core; the helper
(`python -m nlu.offload`, started by `supportbot run`) gives that work the next one.

The protocol is small: an object (a model, an index: one per content version) is pickled to the
helper once and named by a number from then on; a call is a frame (id, name, method, args) on a
socketpair and its answer a frame back (frames: a 4-byte length, then a pickle). The methods
called are pure functions of the object and their arguments, so the answer is the same wherever
it is computed: while the helper is starting, still loading an object, gone, or slower than
`TIMEOUT`, the call runs here instead, and a helper that died is started again (with a pause
that doubles up to a minute). Nothing waits for the helper that could not be done without it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import pickle
import socket
import struct
import sys
import weakref
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT = 2.0  # seconds a call may wait for the helper before it runs here
_HEADER = struct.Struct("<I")
_MAX_PAUSE = 60.0  # longest pause before starting a helper that died again


# A call's answer when the helper has none (it died, the call timed out, or the method raised
# there): the caller computes it here. A value, not an exception: a future nobody awaits (a
# search ahead of a turn that failed) then leaves no "exception never retrieved" behind.
_NONE = object()


class _Link(asyncio.Protocol):
    """The parent's end of the socketpair: frames in, answers to the waiting futures."""

    def __init__(self, on_lost: Any) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.ready = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < 4 + size:
                break
            call_id, ok, value = pickle.loads(bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
            if call_id == 0:  # the helper is up
                if not self.ready.done():
                    self.ready.set_result(True)
                continue
            future = self.waiting.pop(call_id, None)
            if future is None or future.done():  # timed out meanwhile: computed here already
                continue
            # The method raised there: it runs here, where it raises the same way.
            future.set_result(value if ok else _NONE)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_result(_NONE)
        self.waiting.clear()
        if not self.ready.done():
            self.ready.set_result(False)
        self._on_lost()

    def send(self, frame: tuple[Any, ...]) -> None:
        assert self.transport is not None
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        self.transport.write(_HEADER.pack(len(data)) + data)


class Offload:
    """The helper process as seen from the loop: `await offload.run(obj, "method", *args)` is
    `obj.method(*args)`, computed by the helper when it can."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._link: _Link | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._names: dict[int, int] = {}  # id(obj) -> its name in the helper (loaded there)
        self._loading: set[int] = set()  # id(obj) being pickled and sent
        self._ids = itertools.count(1)
        self._closed = False
        self._pause = 1.0
        self._starting: asyncio.Task[None] | None = None
        self.stats = {"there": 0, "here": 0, "restarts": 0}

    @property
    def ready(self) -> bool:
        link = self._link
        return link is not None and link.ready.done() and link.ready.result() and not self._closed

    async def start(self) -> None:
        """Start the helper in the background: calls run here until it is up."""
        self._starting = asyncio.create_task(self._start(), name="nlu-offload-start")

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nlu.offload", str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        except OSError as exc:
            ours.close()
            log.warning("nlu helper process not started (%r); reading messages here", exc)
            return
        finally:
            theirs.close()
        _, link = await loop.create_connection(lambda: _Link(self._lost), sock=ours)
        if self._closed and link.transport is not None:
            link.transport.close()
        self._names.clear()
        self._link = link
        try:
            up = await asyncio.wait_for(asyncio.shield(link.ready), 60)
        except TimeoutError:
            up = False
        if not up:
            log.warning("nlu helper process did not start; reading messages here")
            return
        log.info("nlu helper process %s is up", self._process.pid)

    def _lost(self) -> None:
        self._link = None
        self._names.clear()
        self._loading.clear()
        if self._closed:
            return
        self.stats["restarts"] += 1
        pause, self._pause = self._pause, min(_MAX_PAUSE, self._pause * 2)
        log.warning("nlu helper process gone; reading messages here, restarting in %.0f s", pause)

        async def restart() -> None:
            await asyncio.sleep(pause)
            if not self._closed:
                await self._start()

        self._starting = asyncio.create_task(restart(), name="nlu-offload-restart")

    async def close(self) -> None:
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
        if self._link is not None and self._link.transport is not None:
            self._link.transport.close()  # the helper exits on end of file
        if self._process is not None:
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    def submit(self, obj: Any, method: str, *args: Any) -> asyncio.Future[Any] | None:
        """`obj.method(*args)` on its way to the helper; None when the helper cannot take it
        now (not up, or `obj` not loaded there yet: loading starts): compute it here."""
        link = self._link
        if not self.ready:
            return None
        assert link is not None
        name = self._names.get(id(obj))
        if name is None:
            self._load(obj)
            return None
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        link.waiting[call_id] = future
        link.send((call_id, name, method, args))
        return future

    async def run(self, obj: Any, method: str, *args: Any) -> Any:
        """`obj.method(*args)`: the helper's answer, or computed here if it has none."""
        future = self.submit(obj, method, *args)
        return await self.outcome(future, obj, method, *args)

    async def outcome(
        self, future: asyncio.Future[Any] | None, obj: Any, method: str, *args: Any
    ) -> Any:
        """The answer `submit` gave `future` for, or `obj.method(*args)` computed here."""
        if future is not None:
            timer = asyncio.get_running_loop().call_later(self.timeout, self._expire, future)
            try:
                value = await future
            finally:
                timer.cancel()
            if value is not _NONE:
                self.stats["there"] += 1
                self._pause = 1.0  # it works: a later loss restarts it after the shortest pause
                return value
        self.stats["here"] += 1
        return getattr(obj, method)(*args)

    def _expire(self, future: asyncio.Future[Any]) -> None:
        """A call got no answer in time: it runs here, and a helper that slow is hung (stopped,
        swapping): it is killed, so the next calls run here at once instead of each waiting
        `timeout`, and a new one is started."""
        if future.done():
            return
        future.set_result(_NONE)
        process = self._process
        if process is not None and process.returncode is None:
            log.warning("nlu helper: no answer within %.1f s; killing it", self.timeout)
            process.kill()  # its socket closes: `_lost` hands every waiting call back here

    def _load(self, obj: Any) -> None:
        key = id(obj)
        if key in self._loading:
            return
        self._loading.add(key)

        async def load() -> None:
            try:
                # Pickled in a thread: an index is a few MB (~20 ms), once per content version.
                data = await asyncio.to_thread(pickle.dumps, obj, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # not picklable: every call runs here
                log.warning("nlu helper cannot take %s (%r)", type(obj).__name__, exc)
                return
            link = self._link
            if link is None or key not in self._loading:
                return
            name = next(self._ids)
            link.send((0, name, "", (data,)))
            self._names[key] = name
            self._loading.discard(key)
            # Forget it there when it is gone here (a content version replaced).
            weakref.finalize(obj, self._forget, key, name)

        asyncio.get_running_loop().create_task(load())

    def _forget(self, key: int, name: int) -> None:
        if self._names.get(key) != name:
            return
        del self._names[key]
        link = self._link
        if link is not None and link.transport is not None and not link.transport.is_closing():
            link.send((-1, name, "", ()))


# --------------------------------------------------------------------------- the helper's side


def serve(sock: socket.socket) -> None:
    """The helper's loop: load objects, answer calls, until the parent closes the socket."""
    objects: dict[int, Any] = {}
    reader = sock.makefile("rb")

    def answer(call_id: int, ok: bool, value: Any) -> None:
        data = pickle.dumps((call_id, ok, value), protocol=pickle.HIGHEST_PROTOCOL)
        sock.sendall(_HEADER.pack(len(data)) + data)

    answer(0, True, None)
    while True:
        header = reader.read(4)
        if len(header) < 4:
            return  # the parent is gone or done
        (size,) = _HEADER.unpack(header)
        call_id, name, method, args = pickle.loads(reader.read(size))
        if call_id == 0:
            objects[name] = pickle.loads(args[0])
        elif call_id == -1:
            objects.pop(name, None)
        else:
            try:
                answer(call_id, True, getattr(objects[name], method)(*args))
            except Exception as exc:  # the caller runs it itself and sees the error there
                answer(call_id, False, repr(exc))


def main() -> None:
    import gc
    import signal

    # A Ctrl-C in the terminal (or a stop signal sent to the whole group) reaches the helper
    # too: it waits for its parent, which stops its work first and then closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gc.freeze()  # what is imported stays; the loaded objects are long-lived too
    fd = int(sys.argv[1])
    with socket.socket(fileno=fd) as sock:
        try:
            serve(sock)
        except (BrokenPipeError, ConnectionResetError):
            pass
    os._exit(0)


if __name__ == "__main__":
    main()
