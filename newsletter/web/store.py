"""The web app's way to the shared SQLite file: parallel reads, one writer, group commits.

A campaign may be sending from the same file while a burst of one-click unsubscribes
arrives. Letting every request thread fight for the write lock would make SQLite's busy
handler sleep them in turn (latency spikes, and "database is locked" after the timeout).
Instead every write of this process goes to one writer thread, which takes the jobs that
arrive within 10 ms and runs them in ONE short transaction (each job in a savepoint of its own),
so a burst costs the campaign at most about a hundred lock hand-overs a second, not one
per request. A lock held by another process past the busy timeout is retried.
Reads run in worker threads, each on a connection of its own (WAL: readers never wait).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
from sqlite_utils import Database

from ..db import open_db

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000  # then the writer retries the whole batch
RETRIES = 6
MAX_BATCH = 200  # jobs per transaction: keeps each transaction short
COALESCE_S = 0.01  # how long the first job of a batch waits for others


class Store:
    """Database access for the web app (thread-safe; one instance per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._jobs: queue.SimpleQueue[tuple[Callable[[Database], object], Future[object]] | None] = (
            queue.SimpleQueue()
        )
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    def connection(self) -> Database:
        """This thread's own connection (made on first use)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = open_db(self.path, migrate=False)
            db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._local.db = db
        return db

    async def read(self, job: Callable[[Database], T]) -> T:
        """Run a read-only `job(db)` in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: job(self.connection()))

    async def write(self, job: Callable[[Database], T]) -> T:
        """Run `job(db)` in the writer thread, inside a transaction shared with other jobs.

        The job must do its writes through the subscriber module (whose transactions nest
        as savepoints here); an exception it raises undoes its own writes only.
        """
        future: Future[T] = Future()
        self._ensure_writer()
        self._jobs.put((job, future))  # type: ignore[arg-type]
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the writer after the jobs already queued."""
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join(timeout=10)
            self._writer = None

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="newsletter-web-writer", daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        db = self.connection()
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            # Jobs that arrive within a few milliseconds share the transaction: under a
            # burst the campaign meets the lock a few times a second, not at every request.
            deadline = time.monotonic() + COALESCE_S
            while len(batch) < MAX_BATCH:
                try:
                    more = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                batch.append(more)
            self._run_batch(db, batch)

    def _run_batch(self, db: Database, batch: list[tuple[Callable[[Database], object], Future[object]]]) -> None:
        for attempt in range(RETRIES):
            try:
                results = self._one_transaction(db, batch)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or attempt == RETRIES - 1:
                    for _, future in batch:
                        future.set_exception(exc)
                    return
                time.sleep(0.05 * (attempt + 1))
                continue
            except Exception as exc:  # noqa: BLE001 - the requests get the error; the writer lives on
                for _, future in batch:
                    future.set_exception(exc)
                return
            for (_, future), (value, error) in zip(batch, results, strict=True):
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)
            return

    @staticmethod
    def _one_transaction(
        db: Database, batch: list[tuple[Callable[[Database], object], Future[object]]]
    ) -> list[tuple[object, BaseException | None]]:
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        results: list[tuple[object, BaseException | None]] = []
        try:
            for job, _ in batch:
                conn.execute("SAVEPOINT web_job")
                try:
                    value = job(db)
                except sqlite3.OperationalError:
                    raise  # the lock or the disk: the whole batch is retried
                except Exception as exc:  # noqa: BLE001 - handed to the request that asked
                    conn.execute("ROLLBACK TO SAVEPOINT web_job")
                    conn.execute("RELEASE SAVEPOINT web_job")
                    results.append((None, exc))
                    continue
                conn.execute("RELEASE SAVEPOINT web_job")
                results.append((value, None))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return results
