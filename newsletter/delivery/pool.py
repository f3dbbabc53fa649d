"""The sending engine: an asyncio pool of reused SMTP connections fed from the ledger.

One dispatcher owns every database write. Workers (one per connection) only send: each
takes a claimed item, runs `sendmail(envelope, [recipient], bytes)` over its connection
(one recipient per transaction, the pre-built bytes untouched), classifies the reply and
hands the result back. The dispatcher writes the results that arrived and claims the next
rows in one transaction, and claims only as many rows as connections may be busy, so the
rows marked `sending` are exactly the ones in flight. Rate limit (token bucket) and the
pool-wide slow-down on 421/4.7.x also live in the dispatcher: a row is claimed only when
it may be sent at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiosmtplib

from ..config import Config
from ..errors import SendError
from . import pipelining, smtp_speedups
from .ledger import Item, Ledger, Result, unattempted
from .outcomes import (
    BOUNCED,
    DEFERRED,
    FAILED,
    SENT,
    Outcome,
    classify_exception,
    classify_reply,
)
from .relays import (
    Relay,
    RelayConfigError,
    RelayPicker,
    RelayUnavailable,
    close_politely,
    connect,
    relays_from_config,
    tls_context,
)

BUFFER_HIGH = 600  # built items waiting for a connection, at most (and at most buffer_bytes)
CONNECT_BACKOFF_MAX = 5.0  # seconds between a worker's connection attempts, at most


@dataclass
class PoolOptions:
    """How a run sends: relays, TLS, limits, retry schedule (from Config, tests may adjust)."""

    relays: list[Relay]
    tls: ssl.SSLContext | None
    password: str | None
    concurrency: int = 8
    rate: float = 0.0
    per_connection: int = 100
    timeout: float = 30.0
    min_backoff: int = 300
    max_backoff: int = 4000
    lifetime: int = 432000
    lease_ttl: float = 60.0
    buffer_bytes: int = 64 * 2**20  # built messages waiting for a connection, at most
    slowdown_pause: float = 2.0  # seconds without new messages after a rate signal
    recover_after: int = 20  # successes before one more connection is allowed again
    idle_probe: float = 2.0  # RSET a connection idle longer than this before reusing it
    processes: int = 1  # processes sharing the connections of a large run (processes.py)
    connect_retry: float = 60.0  # seconds of failed connects in a row before the run fails
    connect_attempts: int = 0  # or this many failed connects in a row, when not 0 (tests)
    pipelining: bool = True  # RFC 2920 when the relay offers it (pipelining.py)

    @classmethod
    def from_config(cls, config: Config, **changes: object) -> PoolOptions:
        relays = relays_from_config(config)
        needs_tls = any(r.tls != "none" for r in relays)
        options = cls(
            relays=relays,
            tls=tls_context(config) if needs_tls else None,
            password=config.smtp_password() if any(r.username for r in relays) else None,
            concurrency=config.sending_concurrency,
            rate=config.sending_rate,
            per_connection=config.sending_per_connection,
            processes=config.sending_processes,
            timeout=config.smtp_timeout,
            min_backoff=config.retry_min_backoff,
            max_backoff=config.retry_max_backoff,
            lifetime=config.retry_lifetime,
            lease_ttl=config.sending_lease,
            buffer_bytes=config.sending_buffer_mb * 2**20,
            connect_retry=config.smtp_connect_retry,
            pipelining=config.smtp_pipelining,
        )
        return replace(options, **changes)  # type: ignore[arg-type]


@dataclass
class Progress:
    """Counters of one run, for the progress bar and the summary."""

    campaign_id: int
    due: int
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0
    slowdowns: int = 0
    connections: int = 0
    lowest_concurrency: int = 0
    concurrency: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.deferred + self.failed + self.bounced + self.skipped

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return (self.due - self.done) / rate if rate > 0 else None


@dataclass
class RunResult:
    """How a run ended. `error` is set when the run itself failed (exit code 1)."""

    campaign_id: int
    status: str  # the campaign's status afterwards
    counts: dict[str, int]
    progress: Progress
    error: str | None = None
    interrupted: bool = False
    next_retry_at: str | None = None
    captured_to: Path | None = None  # the outbox, when the capture relay was used
    smtp_fallback: str | None = None  # why aiosmtplib's own code was used, not the speed-ups
    signing_fallback: str | None = None  # why messages were signed in the sending process

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


class Pool:
    """Connections, throttling and the dispatcher of one run."""

    def __init__(
        self,
        ledger: Ledger,
        feed: AsyncIterator[list[Item]],
        options: PoolOptions,
        progress: Progress,
        *,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.feed = feed
        self.options = options
        self.progress = progress
        self.on_progress = on_progress
        self.picker = RelayPicker(options.relays)
        self.work: asyncio.Queue[Item | None] = asyncio.Queue()
        self.results: list[Result] = []
        self.buffer: deque[Item] = deque()
        self.wake = asyncio.Event()
        self.space = asyncio.Event()
        self.feed_done = False
        self.stopping = False
        self.interrupted = False
        self.broken = False  # the messages cannot be built: the campaign is broken
        self.error: str | None = None
        self.buffered_bytes = 0
        self.allowed = options.concurrency
        self.pause_until = 0.0
        self.successes = 0
        self.tokens = 1.0
        self.tokens_at = time.monotonic()
        self.connect_failures = 0
        self.unreachable_since: float | None = None  # loop time of the first failed connect
        self.open_connections = 0
        self.attempts = 0  # transactions tried in this run
        self.timeouts = 0  # of which timed out
        self.timeouts_in_a_row = 0
        self._last_report = 0.0
        self._renew = False
        # Once per pool, checked: None, or why aiosmtplib's own (slower) code is used.
        self.smtp_fallback = smtp_speedups.install()
        if options.pipelining:
            # None, or why no connection can pipeline (aiosmtplib changed): the plain path.
            problem = pipelining.install()
            self.smtp_fallback = self.smtp_fallback or problem
        progress.concurrency = progress.lowest_concurrency = options.concurrency

    def stop(self) -> None:
        """Stop taking new work (Ctrl-C); what is in flight finishes and is recorded."""
        self.interrupted = True
        self.stopping = True
        self.wake.set()
        self.space.set()

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.stopping = True
        self.wake.set()
        self.space.set()

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.options.concurrency)]
        producer = asyncio.create_task(self._produce())
        keeper = asyncio.create_task(self._keep_lease())
        try:
            await self._dispatch()
            if self.error is None and self.attempts and self.timeouts == self.attempts:
                self.error = self._timeout_error()
        finally:
            for _ in workers:
                self.work.put_nowait(None)
            await asyncio.gather(*workers, return_exceptions=True)
            keeper.cancel()
            producer.cancel()
            await asyncio.gather(producer, keeper, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.feed.aclose()  # type: ignore[attr-defined]
            if self.on_progress:
                self.on_progress(self.progress)

    async def _produce(self) -> None:
        try:
            async for items in self.feed:
                self.buffer.extend(items)
                self.buffered_bytes += sum(len(item.data) for item in items)
                self.wake.set()
                while self._buffer_full() and not self.stopping:
                    self.space.clear()
                    await self.space.wait()
                if self.stopping:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a message that cannot be built stops the run, loudly
            self.broken = True
            self.fail(
                f"building the messages failed: {type(exc).__name__}: {exc}. Fix it and resume, "
                "or `newsletter cancel` the campaign and send the fixed article again"
            )
        finally:
            self.feed_done = True
            self.wake.set()

    async def _keep_lease(self) -> None:
        # Renewed by every write anyway; this covers a run where no reply arrives for long.
        while True:
            await asyncio.sleep(self.options.lease_ttl / 3)
            self._renew = True
            self.wake.set()  # an empty commit in the dispatcher renews the lease

    def _take_tokens(self, wanted: int, loop: asyncio.AbstractEventLoop) -> int:
        if self.options.rate <= 0 or wanted <= 0:
            return wanted
        rate = self.options.rate
        now_m = time.monotonic()
        burst = max(1.0, rate / 10)
        self.tokens = min(burst, self.tokens + (now_m - self.tokens_at) * rate)
        self.tokens_at = now_m
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        if granted < wanted:
            loop.call_later((1 - self.tokens % 1) / rate, self.wake.set)
        return granted

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        outstanding = 0
        while True:
            await self.wake.wait()
            # One more turn of the loop lets the replies that arrived together be written
            # together: fewer, larger transactions.
            await asyncio.sleep(0)
            self.wake.clear()
            results, self.results = self.results, []
            outstanding -= len(results)
            for result in reversed(results):
                if result.outcome is None and not self.stopping:
                    self.buffer.appendleft(unattempted(result.item))  # never attempted: try it again
                    self.buffered_bytes += len(result.item.data)
            claims: list[Item] = []
            if not self.stopping:
                wanted = min(self.allowed - outstanding, len(self.buffer))
                if loop.time() < self.pause_until:
                    wanted = 0
                    loop.call_at(self.pause_until, self.wake.set)
                wanted = self._take_tokens(wanted, loop)
                claims = [self.buffer.popleft() for _ in range(max(0, wanted))]
                self.buffered_bytes -= sum(len(item.data) for item in claims)
                if len(self.buffer) < BUFFER_HIGH // 2 and self.buffered_bytes < self.options.buffer_bytes // 2:
                    self.space.set()
            if results or claims or self._renew:
                self._renew = False
                try:
                    claimed, skipped = self.ledger.commit(results, claims)
                except SendError as exc:  # lease lost: results are written, nothing claimed
                    self.fail(str(exc))
                    claimed, skipped = [], []
                except sqlite3.Error as exc:
                    # Nothing of this batch was written: its rows stay `sending`, which a
                    # resumed run treats as in flight (retried with the same Message-ID).
                    self.fail(f"writing the delivery statuses failed ({exc})")
                    claimed, skipped = [], []
                outstanding += len(claimed)
                for item in claimed:
                    self.work.put_nowait(item)
                self._count(results, len(skipped))
            if outstanding == 0 and (self.stopping or (self.feed_done and not self.buffer)):
                return

    def _buffer_full(self) -> bool:
        # Bounded in bytes, not only in messages: 600 messages of a 4 MB article would
        # hold 2.4 GB. One batch always fits, however large, so the run moves on.
        return len(self.buffer) >= BUFFER_HIGH or self.buffered_bytes >= self.options.buffer_bytes

    def _timeout_error(self) -> str:
        return (
            f"the relay did not answer in time: {self.timeouts_in_a_row or self.timeouts} "
            f"attempt(s) in a row timed out after smtp.timeout = {self.options.timeout:g} s. "
            "Check that the relay is up and accepting mail (or raise smtp.timeout)"
        )

    def _count(self, results: list[Result], skipped: int) -> None:
        progress = self.progress
        progress.skipped += skipped
        for result in results:
            outcome = result.outcome
            if outcome is None:
                continue
            if outcome.status == SENT:
                progress.sent += 1
                self.successes += 1
                if self.successes >= self.options.recover_after and self.allowed < self.options.concurrency:
                    # Additive increase after a multiplicative decrease (as TCP does).
                    self.allowed += 1
                    self.successes = 0
            elif outcome.status == DEFERRED and result.item.delivery_id in self.ledger.expired:
                progress.failed += 1  # deferred past retry.lifetime: written as failed
            elif outcome.status == DEFERRED:
                progress.deferred += 1
            elif outcome.status == BOUNCED:
                progress.bounced += 1
            elif outcome.status == FAILED:
                progress.failed += 1
            if outcome.slow_down:
                self._slow_down()
        progress.concurrency = self.allowed
        now_m = time.monotonic()
        if self.on_progress and now_m - self._last_report >= 0.2:
            self._last_report = now_m
            self.on_progress(progress)

    def _slow_down(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        self.successes = 0
        if loop_time < self.pause_until:
            return  # one signal per pause: eight connections hearing 421 at once is one event
        self.progress.slowdowns += 1
        self.allowed = max(1, self.allowed // 2)
        self.progress.lowest_concurrency = min(self.progress.lowest_concurrency, self.allowed)
        self.pause_until = loop_time + self.options.slowdown_pause

    def _result(self, result: Result) -> None:
        self.results.append(result)
        self.wake.set()

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        client: aiosmtplib.SMTP | None = None
        relay: Relay | None = None
        size_option = False
        pipelined = False
        used = 0
        last = 0.0
        backoff = 0.0  # this worker's wait before its next connection attempt
        try:
            while True:
                item = await self.work.get()
                if item is None:
                    return
                if self.stopping and self.error is not None:
                    # The run failed (a session fault, an unreachable relay): what was
                    # claimed but not started goes back untouched, never attempted.
                    self._result(Result(item, None, relay.label if relay else ""))
                    continue
                if client is not None and (used >= self.options.per_connection or not client.is_connected):
                    await self._close(client)
                    client = None
                if client is not None and loop.time() - last > self.options.idle_probe:
                    # A relay may drop a connection that sat idle; probe it before trusting a
                    # message to it (after a 250 the session is already reset: no RSET needed).
                    try:
                        await client.rset()
                    except (aiosmtplib.SMTPException, OSError):
                        await self._close(client, polite=False)
                        client = None
                if client is None:
                    relay = self.picker.pick()
                    try:
                        client = await connect(
                            relay, context=self.options.tls,
                            password=self.options.password, timeout=self.options.timeout,
                        )
                    except RelayConfigError as exc:
                        self._result(Result(item, None, relay.label))
                        self.fail(str(exc))
                        continue
                    except Exception as exc:
                        # Any failure to open a connection (RelayUnavailable or a surprise)
                        # hands the item back: the run must never wait for it forever.
                        if isinstance(exc, RelayUnavailable) and exc.busy and self.open_connections:
                            # 421 while our other connections work: the relay allows no
                            # more of them. A rate signal, not an outage: the pool slows
                            # down and this worker retires, one connection fewer.
                            self._result(Result(item, None, relay.label))
                            self._slow_down()
                            return
                        self._result(Result(item, None, relay.label))
                        backoff = min(CONNECT_BACKOFF_MAX, max(0.1, backoff * 2))
                        self._connect_failed(relay, exc, loop.time())
                        await asyncio.sleep(backoff)
                        continue
                    self.open_connections += 1
                    self.progress.connections += 1
                    used = 0
                    size_option = _take_over_size(client)
                    pipelined = self.options.pipelining and pipelining.usable(client)
                assert relay is not None
                try:
                    if pipelined:
                        reply = await pipelining.transaction(
                            client, envelope=item.envelope, recipient=item.email, data=item.data,
                            crlf_only=item.crlf_only, dots=item.dots,
                            size=(len(item.data) if item.crlf_only else _wire_size(item.data))
                            if size_option else None,
                            timeout=self.options.timeout,
                        )
                    else:
                        reply = await _transaction(client, item, size_option=size_option)
                    outcome: Outcome = classify_reply(250, reply)
                except asyncio.CancelledError:
                    raise
                except _NotSent as exc:
                    # The connection broke before the data went out (a relay restarting,
                    # an idle connection it had dropped): the row goes back untouched and
                    # is tried on a new connection, counted like a failed connect.
                    await self._close(client, polite=False)
                    client = None
                    self._result(Result(item, None, relay.label))
                    backoff = min(CONNECT_BACKOFF_MAX, max(0.1, backoff * 2))
                    self._connect_failed(relay, exc, loop.time(), mark_down=False)
                    await asyncio.sleep(backoff)
                    continue
                except Exception as exc:  # every failure is an outcome for this row
                    outcome = classify_exception(exc)
                used += 1
                last = loop.time()
                # The relay answered this transaction: it is reachable again.
                self.connect_failures = 0
                self.unreachable_since = None
                backoff = 0.0
                if outcome.drop_connection:
                    await self._close(client, polite=False)
                    client = None
                if outcome.run_error is not None:
                    # About our session or sender, not this recipient: every message would
                    # get the same. The row stays queued; the run stops and says what to fix.
                    self._result(Result(item, None, relay.label))
                    self.fail(
                        f"{relay.label} refused the session: {outcome.code} {outcome.text}. "
                        f"{outcome.run_error[0].upper()}{outcome.run_error[1:]}"
                    )
                    continue
                self._attempted(outcome)
                self._result(Result(item, outcome, relay.label))
        finally:
            if client is not None:
                await self._close(client)

    def _connect_failed(self, relay: Relay, exc: Exception, at: float, *, mark_down: bool = True) -> None:
        """Count a failed connection attempt; fail the run once smtp.connect_retry is used up.

        A relay that is down for a second (a restart) must not abort a run: the workers
        retry with backoff until it answers again, for smtp.connect_retry seconds at most.
        """
        if mark_down:
            self.picker.mark_down(relay)
        self.connect_failures += 1
        if self.unreachable_since is None:
            self.unreachable_since = at
        waited = at - self.unreachable_since
        limit = self.options.connect_attempts
        if (limit and self.connect_failures >= limit) or (not limit and waited >= self.options.connect_retry):
            reason = str(exc) if isinstance(exc, RelayUnavailable) else (
                f"cannot connect to {relay.label}: {type(exc).__name__}: {exc}"
            )
            self.fail(
                f"{reason} ({self.connect_failures} attempts in a row over {waited:.0f} s; "
                f"smtp.connect_retry = {self.options.connect_retry:g} s). Check smtp.url and that "
                "the relay is up"
            )

    def _attempted(self, outcome: Outcome) -> None:
        """Count a transaction; many timeouts in a row with nothing else mean the relay hangs."""
        self.attempts += 1
        if not outcome.timed_out:
            self.timeouts_in_a_row = 0
            return
        self.timeouts += 1
        self.timeouts_in_a_row += 1
        if self.timeouts_in_a_row >= max(4, 2 * self.options.concurrency):
            # Each further message would wait smtp.timeout for nothing; stop with the rest
            # queued rather than defer the whole list one timeout at a time.
            self.fail(self._timeout_error())

    async def _close(self, client: aiosmtplib.SMTP, *, polite: bool = True) -> None:
        self.open_connections -= 1
        if polite:
            await close_politely(client)
        else:
            client.close()


_NotSent = pipelining.NotSent  # the connection failed before the data went out: nothing delivered


async def _transaction(client: aiosmtplib.SMTP, item: Item, *, size_option: bool) -> str:
    """MAIL, RCPT and DATA for one item, as aiosmtplib's sendmail does; the reply to DATA.

    Done by hand to know the stage: a connection lost before DATA raises _NotSent, since
    the message certainly did not arrive, while one lost during DATA has an unknown outcome.
    """
    options = [f"SIZE={_wire_size(item.data)}"] if size_option else None
    try:
        try:
            await client.mail(item.envelope, options=options)
            await client.rcpt(item.email)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise _NotSent(f"connection lost before the data: {exc}") from exc
        response = await client.data(item.data)
    except aiosmtplib.SMTPResponseException:
        with contextlib.suppress(aiosmtplib.SMTPException, ConnectionError):
            await client.rset()  # as sendmail does: the connection stays usable
        raise
    return response.message


def _take_over_size(client: aiosmtplib.SMTP) -> bool:
    """Declare SIZE (RFC 1870) ourselves; True when the relay supports it.

    aiosmtplib computes SIZE by running a line-ending regex over the whole message, once
    more than the DATA command does anyway: about a tenth of the CPU per message. Our
    bytes have CRLF line ends already, so their size is a cheap count.
    """
    if not client.supports_extension("size"):
        return False
    client.esmtp_extensions.pop("size", None)
    return True


def _wire_size(data: bytes) -> int:
    # Bare LFs (none in message.py's output) would each gain a CR on the wire.
    return len(data) + data.count(b"\n") - data.count(b"\r\n")
