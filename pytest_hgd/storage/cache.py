"""The reply cache: one SQLite database of replies, keyed by everything that changes a reply."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

CACHE_VERSION = 1  # part of every key: bump it when what a key stands for changes
SCHEMA_VERSION = 2  # the database's ``PRAGMA user_version``: bump it when the table changes
# 2: a digest beside each reply (version 1 files are migrated; their rows, without one, miss)
DATABASE = "replies.sqlite3"
T = TypeVar("T")
BUSY_TIMEOUT = 30.0  # seconds a write waits for another run (or xdist worker) to commit
_SUFFIXES = ("", "-wal", "-shm", "-journal")  # the database and SQLite's files beside it
# A rowid table, not WITHOUT ROWID: with replies of a few hundred bytes or more it writes
# about twice as fast and reads as fast or faster (measured with 120 B to 100 kB replies).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL, digest TEXT)"
)


def digest(key: str, reply: str) -> str:
    """What is stored beside a reply: a reply edited in the file no longer matches it."""
    return hashlib.sha256(f"{key}\x00{reply}".encode("utf-8", "surrogatepass")).hexdigest()


def reply_key(
    agent_identity: Mapping[str, object],
    agent_version: str | None,
    prompt: str,
    messages: list[dict[str, str]],
    sample: int,
) -> str:
    """sha256 of the agent's identity and version, the prompt, the messages and the sample."""
    material = {
        "cache_version": CACHE_VERSION,
        "agent": dict(agent_identity),
        "agent_version": agent_version,
        "prompt": prompt,
        "messages": messages,
        "sample": sample,
    }
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, text.encode("utf-8"))


_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _temporary(path: Path) -> tuple[str, int]:
    """A new hidden file beside ``path``, created here and only here: an unpredictable name
    opened with O_EXCL and O_NOFOLLOW, so a file or symlink planted in a shared folder is
    never written through. Its mode is what ``open`` gives (0o666 less the umask)."""
    for _ in range(100):
        temp = f"{path.parent}/.{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
        try:
            return temp, os.open(temp, _EXCLUSIVE, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", f"{path.parent}/.{path.name}.*")


def _replace(path: Path, data: bytes) -> None:
    temp, fd = _temporary(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class CacheError(Exception):
    """The cache database cannot be written; the message names the file and what to do."""


class ReplyCache:
    """Replies in one SQLite database, ``directory/replies.sqlite3``.

    WAL mode with ``synchronous=NORMAL``: a commit is an append to the write-ahead log, a
    process killed at any point loses at most the transaction it was writing, and readers
    never wait for a writer. Runs and xdist workers sharing the directory share the database
    (a writer waits up to ``timeout`` seconds for another's commit). Reads and writes each
    have their own connection, opened on first use and guarded by its own lock, so any
    thread may call any method; a lookup never creates the file.
    """

    def __init__(self, directory: Path, timeout: float = BUSY_TIMEOUT) -> None:
        self.directory = directory
        self.path = directory / DATABASE
        self.timeout = timeout
        self.error: str | None = None  # the first write that failed, for whoever reports it
        self.unavailable: str | None = None  # locked past the timeout: skipped from then on
        self.tampered = 0  # rows whose reply no longer matches its digest (edited by hand)
        self._reader: sqlite3.Connection | None = None
        self._reader_failed = False  # not a database we can read: every lookup misses
        self._writer: sqlite3.Connection | None = None
        self._writer_inode = 0  # to notice the file deleted or replaced under the writer
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    # reading ------------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        """The cached reply, or None: a miss, and so is a database that cannot be read."""
        if self.unavailable is not None:
            return None
        with self._read_lock:
            try:
                reader = self._reader or self._open_reader()
                if reader is None:
                    return None
                rows = when_not_busy(
                    lambda: reader.execute(
                        "SELECT reply, digest FROM replies WHERE key = ?", (key,)
                    ).fetchall(),
                    self.timeout,
                )
            except sqlite3.OperationalError as exc:
                self._locked(exc)
                return None
            except sqlite3.Error:
                return None
        if not rows or not isinstance(reply := rows[0][0], str):
            return None
        if rows[0][1] != digest(key, reply):  # edited, or from before digests: not trusted
            if rows[0][1] is not None:
                self.tampered += 1
            return None
        return reply

    def _locked(self, exc: sqlite3.OperationalError) -> None:
        """Another process held the database past the timeout: one wait is enough, so from
        now on this run neither reads nor writes it (lookups miss, replies are not stored)."""
        if "locked" in str(exc) or "busy" in str(exc):
            self.unavailable = (
                f"{self.path} stayed locked by another process for {self.timeout:g} s: "
                "from then on this run's lookups missed and its replies were not stored"
            )
            self.error = self.error or self.unavailable

    def _open_reader(self) -> sqlite3.Connection | None:
        if self._reader_failed or not os.path.exists(self.path):
            return None
        try:
            reader = _connect(self.path, self.timeout, create=False)
        except sqlite3.Error:
            self._reader_failed = True
            return None
        try:
            reader.execute("PRAGMA query_only = ON")
            version = when_not_busy(lambda: _user_version(reader), self.timeout)
        except sqlite3.OperationalError as exc:
            reader.close()
            self._locked(exc)  # still busy after the timeout: like any other lock
            if self.unavailable is not None:
                return None
            version = -1
        except sqlite3.Error:
            version = -1
        if version != SCHEMA_VERSION:
            reader.close()
            # 0: another run is creating it right now; anything else is not ours to read
            self._reader_failed = version != 0
            return None
        self._reader = reader
        return reader

    # writing ------------------------------------------------------------------------------
    def put(self, key: str, reply: str) -> None:
        self.put_many([(key, reply)])

    def put_many(self, entries: Iterable[tuple[str, str]]) -> None:
        """Store ``(key, reply)`` pairs in one transaction: all of them or, on CacheError,
        none."""
        rows = [(key, reply, digest(key, reply)) for key, reply in entries]
        if not rows:
            return
        if self.unavailable is not None:
            raise CacheError(self.unavailable)
        with self._write_lock:
            try:
                writer = self._current_writer()
                writer.execute("BEGIN IMMEDIATE")
                try:
                    writer.executemany(
                        "INSERT OR REPLACE INTO replies (key, reply, digest) VALUES (?, ?, ?)",
                        rows,
                    )
                    writer.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        writer.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError, ValueError, CacheError) as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    self._locked(exc)
                self._close_writer()  # the next batch opens the file afresh
                if isinstance(exc, CacheError):
                    error = exc
                else:
                    error = CacheError(self.unavailable or self._explain(exc))
                self.error = self.error or str(error)
                raise error from None

    def _current_writer(self) -> sqlite3.Connection:
        """The write connection, opened again when the file was deleted (``--hgd-clear-cache``
        in another run, or by hand) or replaced since it was opened."""
        if self._writer is not None:
            try:
                inode = os.stat(self.path).st_ino
            except OSError:
                inode = 0
            if inode == self._writer_inode:
                return self._writer
            self._close_writer()
        self.directory.mkdir(parents=True, exist_ok=True)
        writer = _connect(self.path, self.timeout, create=True)
        try:
            when_not_busy(lambda: writer.execute("PRAGMA journal_mode = WAL"), self.timeout)
            writer.execute("PRAGMA synchronous = NORMAL")
            writer.execute("BEGIN IMMEDIATE")  # one run creates the table, the others wait
            version = _user_version(writer)
            if version == 0:
                writer.execute(_SCHEMA)
                writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version == 1:  # replies without digests: keep them, they miss until rewritten
                writer.execute("ALTER TABLE replies ADD COLUMN digest TEXT")
                writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                version = SCHEMA_VERSION
            writer.execute("COMMIT")
            if version not in (0, SCHEMA_VERSION):
                raise CacheError(
                    f"{self.path} holds replies in format {version}, this pytest-hgd writes "
                    f"format {SCHEMA_VERSION}: delete it, or run once with --hgd-clear-cache"
                )
            self._writer_inode = os.stat(self.path).st_ino
        except BaseException:
            writer.close()
            raise
        self._writer = writer
        return writer

    def _explain(self, exc: BaseException) -> str:
        """What went wrong with the file, and what to do about it."""
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return (
                f"{self.path} is not a reply cache ({exc}): delete it, "
                "or run once with --hgd-clear-cache"
            )
        if isinstance(exc, ValueError):  # a reply SQLite cannot store: not a file problem
            return f"{self.path}: {exc}"
        return (
            f"{self.path}: {exc}: make {self.directory} a writable directory, "
            "or choose another with --hgd-cache-dir"
        )

    # housekeeping -------------------------------------------------------------------------
    def clear(self) -> int:
        """Delete every cached reply, even from a damaged file; returns how many there were
        (replies in a file that cannot be read are not counted)."""
        self.close()
        count = 0
        if os.path.exists(self.path):
            with contextlib.suppress(sqlite3.Error):
                counter = _connect(self.path, self.timeout, create=False)
                try:
                    counter.execute("PRAGMA query_only = ON")
                    count = counter.execute("SELECT count(*) FROM replies").fetchone()[0]
                finally:
                    counter.close()
        for suffix in _SUFFIXES:
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")
        old = self.directory / "replies"  # the old layout: one JSON file per reply
        if old.is_dir():
            count += sum(1 for _ in old.rglob("*.json"))
            shutil.rmtree(old, ignore_errors=True)
        return int(count)

    def close(self) -> None:
        """Close both connections (the last one out merges the write-ahead log into the
        database); the next call opens them again."""
        with self._read_lock:
            if self._reader is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._reader.close()
            self._reader = None
            self._reader_failed = False
        with self._write_lock:
            self._close_writer()

    def _close_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(sqlite3.Error):
                self._writer.close()
        self._writer = None
        self._writer_inode = 0


def when_not_busy(action: Callable[[], T], timeout: float) -> T:
    """``action()``, tried again while SQLite says busy or locked at once, up to ``timeout``
    seconds. Its busy handler covers most waits, not all: a reader that opens the database
    while another process recovers its write-ahead log, or changes its journal mode, is told
    "busy" at once. Two xdist workers starting together do exactly that."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.25)


def _connect(path: Path, timeout: float, *, create: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread
    (the cache serialises its use)."""
    mode = "rwc" if create else "rw"
    uri = f"file:{urllib.request.pathname2url(os.path.abspath(path))}?mode={mode}"
    return sqlite3.connect(
        uri, timeout=timeout, isolation_level=None, check_same_thread=False, uri=True
    )


def _user_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0
