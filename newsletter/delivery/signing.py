"""DKIM-sign a campaign's messages off the event loop's core, ahead of the sending pool.

RSA-2048 costs 0.4-0.6 ms a message; done in build() (queue.py's inline feed) it runs on
the one core that also drives every SMTP connection, and a signed campaign went out at
40 % of the unsigned rate. Here the feed builds the bytes unsigned, hands each batch to
a signer and yields it, signature header in front, once signed:

- `process` (the default): signer processes of our own (signer_worker.py), each on a
  socketpair that the event loop itself reads and writes: no thread in this process, and
  the loop only pickles each batch's header blocks into the socket and unpickles the
  signature headers that come back. (A ProcessPoolExecutor ran a feeder and a result
  thread here, which took the GIL from the loop for every batch.)
- `thread`: threads in this process; OpenSSL's RSA step releases the GIL (cryptography's
  Rust bindings do), the canonicalisation in Python does not.
- `inline`: signed in the loop's thread, as build() does (today's path, for comparison).

The feed signs at most `ahead` batches beyond what the pool has taken, so memory stays
bounded, and it claims nothing: a row is claimed by the pool's dispatcher in the
transaction that hands it to a connection, as with the inline feed, so the crash window
and the Message-IDs are the same. A signer process that dies (killed, out of memory) is
not the campaign's fault: the rest of the run is signed inline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pickle
import socket
import subprocess
import sys
import sysconfig
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from sqlite_utils import Database

from ..config import SIGNING_MODES, Config
from ..content.dkim import DkimSigner
from ..content.message import Recipient
from ..errors import SignerGoneError
from . import signer_worker
from .campaigns import builder_for, get_campaign
from .ledger import Item
from .queue import inline_feed, iter_batches

AHEAD = 2  # signed batches waiting for the pool to take them, at most
Job = tuple[list[bytes], list[str], int]  # header blocks, their bodies' bh=, t=
MAX_AUTO_SIGNERS = 4  # signer processes (or threads) per sending process, unless sending.signers says
# The folder that holds the package: the signer process imports the same code as we run.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_READ_SIZE = 2**18  # bytes per recv: a 50-message batch's reply (about 25 KB) in one call


def signer_workers(mode: str, *, requested: int = 0, shards: int = 1) -> int:
    """How many signers each sending process starts: `requested`, or its share of the cores
    that the sending processes leave (at least one each)."""
    if mode == "inline":
        return 0
    cores = os.cpu_count() or 1
    shards = max(1, shards)
    return requested or max(1, min(MAX_AUTO_SIGNERS, (cores - shards) // shards))


def _signer_environment() -> dict[str, str]:
    """This process's environment, with the package's folder first on PYTHONPATH when it
    is not an installed one: the signer must import the code this process runs (a
    checkout this process found through its own sys.path, as multiprocessing's spawn
    passed it). An installed package is found as usual; site-packages put before the
    standard library could shadow it."""
    env = dict(os.environ)
    paths = sysconfig.get_paths()
    if _PACKAGE_ROOT not in (paths["purelib"], paths["platlib"]):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env


# BatchSigner.fallback once its signer processes have died (the OOM killer, say).
_STOPPED = "the signer process stopped during the run; the rest was signed in the sending process, more slowly"


class SignerProcess:
    """One signer process (signer_worker.py) and the loop's end of its socketpair.

    Requests go out in order and replies come back in order, so each reply settles the
    oldest pending future. Reads and writes are the event loop's own (add_reader and
    add_writer on a non-blocking socket): nothing else runs in this process for it.
    """

    def __init__(self, signer: DkimSigner, *, include_headers: Sequence[str]) -> None:
        self._loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", signer_worker.__name__, str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_signer_environment(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket: socket.socket | None = ours
        self._pending: deque[asyncio.Future[list[bytes]]] = deque()
        self._in = bytearray()
        self._out = bytearray()
        self.ready = False  # the process has answered the first frame: it holds the key
        self._loop.add_reader(ours.fileno(), self._readable)
        self._send(signer_worker.frame((signer, tuple(include_headers))))

    @property
    def alive(self) -> bool:
        return self._socket is not None

    @property
    def load(self) -> int:
        """Batches sent and not yet answered."""
        return len(self._pending)

    def submit(self, heads: list[bytes], body_hashes: list[str], *, now: int) -> asyncio.Future[list[bytes]]:
        future: asyncio.Future[list[bytes]] = self._loop.create_future()
        if self._socket is None:
            future.set_exception(SignerGoneError("the DKIM signer process has stopped"))
            return future
        self._pending.append(future)
        self._send(signer_worker.frame((now, heads, body_hashes)))
        return future

    def _send(self, data: bytes) -> None:
        if self._out:  # the socket was full: queue behind what is waiting
            self._out += data
            return
        assert self._socket is not None
        try:
            sent = self._socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self._out += data[sent:]
            self._loop.add_writer(self._socket.fileno(), self._writable)

    def _writable(self) -> None:
        assert self._socket is not None
        try:
            sent = self._socket.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self._out[:sent]
        if not self._out:
            self._loop.remove_writer(self._socket.fileno())

    def _readable(self) -> None:
        assert self._socket is not None
        try:
            data = self._socket.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the process died (killed, out of memory)
            self.close()
            return
        buffer = self._in
        buffer += data
        start = 0
        length = signer_worker.LENGTH
        while len(buffer) - start >= length:
            end = start + length + int.from_bytes(buffer[start:start + length], "big")
            if len(buffer) < end:
                break
            with memoryview(buffer) as view:  # released before the buffer is cut below
                reply = pickle.loads(view[start + length:end])
            start = end
            if not self.ready:
                self.ready = True
                continue
            future = self._pending.popleft()
            if future.done():  # cancelled: the feed stopped waiting for it
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        del buffer[:start]

    def close(self) -> None:
        """Stop the process; what it had not answered fails with SignerGoneError."""
        channel, self._socket = self._socket, None
        if channel is None:
            return
        self._loop.remove_reader(channel.fileno())
        if self._out:
            self._loop.remove_writer(channel.fileno())
        channel.close()
        # It holds nothing worth a clean exit (a key we still have, replies nobody awaits).
        self._process.kill()
        self._process.wait()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(SignerGoneError("the DKIM signer process has stopped"))


class BatchSigner:
    """Signs batches of built messages in signer processes, threads or inline.

    A signer process takes a while to start (importing OpenSSL's bindings); until it has,
    batches are signed inline, so the run does not wait for it. A process mode BatchSigner
    is made inside the running event loop, which serves its processes' sockets.
    """

    def __init__(
        self, signer: DkimSigner, *, include_headers: Sequence[str], mode: str = "process",
        workers: int | None = None,
    ) -> None:
        if mode not in SIGNING_MODES:
            raise ValueError(f"signing mode must be one of {', '.join(SIGNING_MODES)}, not {mode!r}")
        self.signer = signer
        self.include_headers = tuple(include_headers)
        self.mode = mode
        self.inline_batches = 0  # signed in the loop's thread (while starting, or after a fault)
        # None, or why signing fell back to the loop's thread (a signer that could not start
        # or that died): the run goes on, more slowly, and says so.
        self.fallback: str | None = None
        count = workers or signer_workers(mode)
        self._executor: concurrent.futures.Executor | None = None
        self._processes: list[SignerProcess] = []
        if mode == "process":
            for _ in range(count):
                try:
                    self._processes.append(SignerProcess(signer, include_headers=self.include_headers))
                except OSError as exc:
                    # Too many processes or open files, or no memory: signing here beats
                    # stopping the run, which would leave the campaign broken until a cancel.
                    self.fallback = (
                        f"only {len(self._processes)} of {count} signer processes could be started ({exc})"
                        if self._processes else
                        f"no signer process could be started ({exc}); every message was signed in the "
                        "sending process, more slowly"
                    )
                    break
            if not self._processes:
                self.mode = "inline"
        elif mode == "thread":
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=count, thread_name_prefix="newsletter-dkim"
            )

    def submit(self, heads: list[bytes], body_hashes: list[str], *, now: int) -> asyncio.Future[list[bytes]]:
        """Start signing messages given by header block and bh= (t= is `now`); the future
        gives their signature headers."""
        loop = asyncio.get_running_loop()
        if self._processes:
            ready = [process for process in self._processes if process.ready and process.alive]
            if ready:
                return min(ready, key=lambda process: process.load).submit(heads, body_hashes, now=now)
            if not any(process.alive for process in self._processes):
                self.fallback = self.fallback or _STOPPED
                self._fall_back()
        elif self._executor is not None:
            try:
                job = self._executor.submit(
                    signer_worker.sign_all, self.signer, heads, body_hashes, self.include_headers, now
                )
                return asyncio.wrap_future(job, loop=loop)
            except RuntimeError:
                self._fall_back()
        future: asyncio.Future[list[bytes]] = loop.create_future()
        future.set_result(self.sign_inline(heads, body_hashes, now=now))
        return future

    async def signed(
        self, future: asyncio.Future[list[bytes]], heads: list[bytes], body_hashes: list[str], *, now: int
    ) -> list[bytes]:
        """The signatures `future` gives, or made inline if the signer process died."""
        try:
            return await future
        except SignerGoneError:
            self.fallback = self.fallback or _STOPPED
            self._fall_back()
            return self.sign_inline(heads, body_hashes, now=now)

    def sign_inline(self, heads: list[bytes], body_hashes: list[str], *, now: int) -> list[bytes]:
        self.inline_batches += 1
        return signer_worker.sign_all(self.signer, heads, body_hashes, self.include_headers, now)

    def _fall_back(self) -> None:
        self.mode = "inline"
        self.close()

    def close(self) -> None:
        processes, self._processes = self._processes, []
        for process in processes:
            process.close()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


async def signed_feed(
    config: Config, db: Database, campaign_id: int, *, at: str, mode: str, batch: int = 50,
    shard: tuple[int, int] = (0, 1), ahead: int = AHEAD, workers: int | None = None,
    on_fallback: Callable[[str], None] | None = None,
) -> AsyncIterator[list[Item]]:
    """queue.inline_feed's items, DKIM-signed by a BatchSigner, in the same order.

    A task builds and hands batches to the signers while the pool is busy sending (it keeps
    the signers working when the pool's buffer is full, which a plain generator could not),
    at most `workers` x 2 batches being signed and `ahead` signed ones waiting. Without a
    DKIM key it is the inline feed: nothing to sign. `on_fallback` hears, at the end, why
    messages were signed in this process when signer processes were asked for.
    """
    builder = builder_for(config, get_campaign(db, campaign_id))
    if builder.signer is None:
        for items in iter_batches(config, db, campaign_id, at=at, batch=batch, shard=shard, builder=builder):
            yield items
            await asyncio.sleep(0)
        return
    count = workers or signer_workers(mode)
    signing = BatchSigner(builder.signer, include_headers=builder.signed_headers, mode=mode, workers=count)
    ready: asyncio.Queue[list[Item] | BaseException | None] = asyncio.Queue(maxsize=ahead)

    hashes: dict[int, str] = {}  # subscriber id -> bh= of the message just built for them

    def build(recipient: Recipient) -> bytes:
        data, hashed = builder.build_for_signing(recipient)
        assert hashed is not None
        hashes[recipient.subscriber_id] = hashed
        return data

    async def fill() -> None:
        in_signing: deque[tuple[list[Item], Job, asyncio.Future[list[bytes]]]] = deque()

        async def first_signed() -> list[Item]:
            items, (heads, body_hashes, now), future = in_signing.popleft()
            signatures = await signing.signed(future, heads, body_hashes, now=now)
            return [item._replace(data=sig + item.data) for item, sig in zip(items, signatures, strict=True)]

        try:
            for items in iter_batches(
                config, db, campaign_id, at=at, batch=batch, shard=shard, builder=builder, build=build
            ):
                if items:
                    job = (
                        [item.data[:item.data.index(b"\r\n\r\n")] for item in items],
                        [hashes.pop(item.subscriber_id) for item in items],
                        int(time.time()),
                    )
                    in_signing.append((items, job, signing.submit(job[0], job[1], now=job[2])))
                hashes.clear()  # the rows that could not be built
                while in_signing and (len(in_signing) >= 2 * max(1, count) or in_signing[0][2].done()):
                    await ready.put(await first_signed())
                await asyncio.sleep(0)
            while in_signing:
                await ready.put(await first_signed())
            await ready.put(None)
        except asyncio.CancelledError:
            for _, _, future in in_signing:
                future.cancel()
            raise
        except Exception as exc:  # the pool's producer reports it (a campaign that cannot be built)
            await ready.put(exc)

    filler = asyncio.create_task(fill())
    try:
        while True:
            got = await ready.get()
            if got is None:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        filler.cancel()
        await asyncio.gather(filler, return_exceptions=True)
        signing.close()
        if signing.fallback and on_fallback is not None:
            on_fallback(signing.fallback)


def campaign_feed(
    config: Config, db: Database, campaign_id: int, *, at: str, shard: tuple[int, int] = (0, 1),
    on_fallback: Callable[[str], None] | None = None,
) -> AsyncIterator[list[Item]]:
    """The feed a run sends from: signed as sending.signing says (inline: queue.py's own)."""
    if config.sending_signing == "inline" or not config.dkim_selector:
        return inline_feed(config, db, campaign_id, at=at, shard=shard)
    workers = signer_workers(config.sending_signing, requested=config.sending_signers, shards=shard[1])
    return signed_feed(
        config, db, campaign_id, at=at, mode=config.sending_signing, shard=shard, workers=workers,
        on_fallback=on_fallback,
    )
