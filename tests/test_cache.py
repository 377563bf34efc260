"""The reply cache: one SQLite database that several threads and processes share, and that a
damaged or foreign file never turns into a traceback or a failed item."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import Gate, conversation

from pytest_hgd.storage import cache as cache_module
from pytest_hgd.storage.cache import DATABASE, SCHEMA_VERSION, CacheError, ReplyCache


def _rows(directory: Path) -> dict[str, str]:
    """Every reply in the database, read with a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(directory / DATABASE)) as db:
        return dict(db.execute("SELECT key, reply FROM replies").fetchall())


def test_a_reply_put_is_got_back_by_a_new_cache_on_the_same_directory(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "cache")
    assert cache.get("k1") is None  # a lookup before anything is written
    assert not (tmp_path / "cache").exists()  # ...creates nothing
    cache.put("k1", "hello")
    cache.put("k1", "hello again")  # the same key again: the new reply
    cache.put_many([("k2", "two"), ("k3", "")])
    assert cache.get("k1") == "hello again"
    cache.close()
    fresh = ReplyCache(tmp_path / "cache")
    assert [fresh.get(k) for k in ("k1", "k2", "k3", "k4")] == ["hello again", "two", "", None]
    assert _rows(tmp_path / "cache") == {"k1": "hello again", "k2": "two", "k3": ""}


def test_close_leaves_only_the_database(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path)
    cache.put_many((f"k{i}", "r" * 500) for i in range(200))
    assert cache.get("k7") == "r" * 500
    cache.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATABASE]  # the log was merged
    assert ReplyCache(tmp_path).get("k199") == "r" * 500


def test_unicode_and_replies_of_several_megabytes_come_back_exactly(tmp_path: Path) -> None:
    replies = {
        "unicode": "Grüße, 你好, مرحبا, 🙂 — \u00a0nbsp, \r\nCRLF, \x00 a NUL byte",
        "big": "ünïcödé " * 600_000,  # 4.8 M characters, 6.6 MB of UTF-8
    }
    ReplyCache(tmp_path).put_many(replies.items())
    cache = ReplyCache(tmp_path)
    assert {key: cache.get(key) for key in replies} == replies


def test_a_batch_is_one_transaction_all_or_nothing(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path)
    cache.put("before", "kept")
    batch = [(f"k{i}", f"r{i}") for i in range(500)] + [("bad", "\ud800")]  # not storable
    with pytest.raises(CacheError, match="surrogates"):
        cache.put_many(batch)
    assert cache.get("k0") is None and cache.get("k499") is None  # none of the batch...
    assert _rows(tmp_path) == {"before": "kept"}  # ...and nothing else changed
    cache.put_many(batch[:-1])  # the next batch is written as usual
    assert len(_rows(tmp_path)) == 501


def test_a_batch_commits_once(tmp_path: Path) -> None:
    """A reader polling during a large batch sees none of it or all of it."""
    cache = ReplyCache(tmp_path)
    cache.put("seed", "x")  # the file exists, in WAL mode
    seen: set[int] = set()
    done = threading.Event()

    def poll() -> None:
        with sqlite3.connect(tmp_path / DATABASE) as db:
            while not done.is_set():
                seen.add(db.execute("SELECT count(*) FROM replies").fetchone()[0])

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for batch in range(3):
            cache.put_many((f"{batch}-{i}", "r" * 100) for i in range(20_000))
    finally:
        done.set()
        poller.join()
    assert seen <= {1, 20_001, 40_001, 60_001}, sorted(seen)[:10]


def test_threads_read_and_write_at_once(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for batch in range(20):
                cache.put_many((f"t{n}-{batch}-{i}", f"reply {n} {batch} {i}") for i in range(25))
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            for i in range(2000):
                reply = cache.get(f"t0-{i % 20}-{i % 25}")
                assert reply in (None, f"reply 0 {i % 20} {i % 25}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(_rows(tmp_path)) == 3 * 20 * 25


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pytest_hgd.storage.cache import ReplyCache

    cache = ReplyCache(Path(sys.argv[1]))
    name = sys.argv[2]
    for batch in range(30):
        cache.put_many((f"{name}-{batch}-{i}", f"{name} " * 200) for i in range(50))
        cache.put_many((f"shared-{batch}-{i}", "the same reply") for i in range(50))
    cache.close()
    """
)


def test_processes_writing_at_once_lose_no_reply(tmp_path: Path) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"p{n}"]) for n in range(4)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    rows = _rows(tmp_path)
    assert len(rows) == 4 * 30 * 50 + 30 * 50
    assert all(rows[f"p{n}-29-49"] == f"p{n} " * 200 for n in range(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATABASE]


def test_a_write_waits_for_another_runs_transaction_then_fails_clearly(tmp_path: Path) -> None:
    ReplyCache(tmp_path).put("k", "v")
    other = sqlite3.connect(tmp_path / DATABASE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another run in the middle of its commit
    cache = ReplyCache(tmp_path, timeout=0.2)
    assert cache.get("k") == "v"  # readers never wait for a writer
    with pytest.raises(CacheError, match=r"stayed locked by another process for 0.2 s"):
        cache.put("k2", "v2")
    other.execute("COMMIT")
    other.close()
    # One bounded wait a run: once locked past the timeout, the cache is skipped for the
    # rest of the run (before, each lookup and each write waited again: 60 s, not 30).
    with pytest.raises(CacheError, match=r"from then on this run's lookups missed"):
        cache.put("k2", "v2")
    assert cache.get("k") is None
    ReplyCache(tmp_path).put("k2", "v2")  # the next run
    assert _rows(tmp_path) == {"k": "v", "k2": "v2"}


def test_a_file_that_is_not_a_database_is_a_miss_and_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DATABASE).write_text("I typed this here myself\n" * 100, encoding="utf-8")
    cache = ReplyCache(tmp_path)
    assert cache.get("k") is None
    with pytest.raises(CacheError) as raised:
        cache.put("k", "v")
    message = str(raised.value)
    assert str(tmp_path / DATABASE) in message and "not a reply cache" in message
    assert "delete it, or run once with --hgd-clear-cache" in message
    assert cache.error == message  # kept for the note at the end of the run
    assert cache.clear() == 0  # what it held is unknown, but it is gone
    assert list(tmp_path.iterdir()) == []
    cache.put("k", "v")
    assert cache.get("k") == "v"


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 999])
def test_another_format_is_left_alone_and_reported(tmp_path: Path, version: int) -> None:
    with sqlite3.connect(tmp_path / DATABASE) as db:
        db.execute("CREATE TABLE replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        db.execute("INSERT INTO replies VALUES ('k', 'from a newer pytest-hgd')")
        db.execute(f"PRAGMA user_version = {version}")
    db.close()
    cache = ReplyCache(tmp_path)
    assert cache.get("k") is None  # never read in a format this version does not know
    with pytest.raises(
        CacheError, match=rf"format {version}, this pytest-hgd writes format {SCHEMA_VERSION}"
    ):
        cache.put("k2", "v")
    assert _rows(tmp_path) == {"k": "from a newer pytest-hgd"}  # not written either
    assert cache.clear() == 1
    cache.put("k2", "v")
    assert cache.get("k2") == "v"


def test_an_unwritable_directory_names_the_file_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file, not a directory", encoding="utf-8")
    cache = ReplyCache(tmp_path / "afile")
    assert cache.get("k") is None
    with pytest.raises(CacheError) as raised:
        cache.put("k", "v")
    assert str(tmp_path / "afile" / DATABASE) in str(raised.value)
    assert "choose another with --hgd-cache-dir" in str(raised.value)
    assert cache.clear() == 0


def test_clear_counts_and_deletes_the_database_and_the_old_layout(tmp_path: Path) -> None:
    old = tmp_path / "replies" / "ab"
    old.mkdir(parents=True)
    (old / "ab12.json").write_text('{"reply": "old"}', encoding="utf-8")
    cache = ReplyCache(tmp_path)
    assert cache.get("ab12") is None  # the old layout is never read
    cache.put_many([("a", "1"), ("b", "2")])
    assert cache.get("a") == "1"  # open connections: clear closes them first
    assert cache.clear() == 3
    assert list(tmp_path.iterdir()) == []
    assert cache.get("a") is None
    assert ReplyCache(tmp_path).clear() == 0


def test_a_deleted_cache_is_created_again_mid_run(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "cache")
    cache.put("a", "1")
    ReplyCache(tmp_path / "cache").clear()  # another run, or a user, deletes it meanwhile
    cache.put("b", "2")  # not into the deleted file
    assert _rows(tmp_path / "cache") == {"b": "2"}


def test_a_damaged_cache_never_fails_an_item_and_is_reported(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs(
        "c.hgd.yaml", conversation({"id": "a", "customer": "a", "checks": [{"contains": "good"}]})
    )
    database = hgd.path / ".hgd" / "cache" / DATABASE
    database.parent.mkdir(parents=True)
    database.write_bytes(b"\x00garbage" * 1000)
    result = hgd.run("--hgd-candidate=p.txt")
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    result.stdout.fnmatch_lines(
        [
            f"hgd: cannot write the reply cache: {database} is not a reply cache (*): delete it, "
            "or run once with --hgd-clear-cache"
        ]
    )
    cleared = hgd.run("--hgd-candidate=p.txt", "--hgd-clear-cache")
    cleared.assert_outcomes(passed=1)
    cleared.stdout.fnmatch_lines([f"hgd: cleared 0 cached replies from {database.parent}"])
    assert "cannot write the reply cache" not in cleared.stdout.str()
    hgd.reset_calls()
    again = hgd.run("--hgd-candidate=p.txt", "--hgd-clear-cache")
    again.stdout.fnmatch_lines([f"hgd: cleared 1 cached replies from {database.parent}"])
    assert len(hgd.calls()) == 1  # cleared, so called again


def test_a_run_with_every_reply_cached_writes_nothing(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"*": "good"})
    pairs = [
        {"id": f"p{i}", "customer": f"m{i}", "checks": [{"contains": "good"}]} for i in range(5)
    ]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    hgd.run("--hgd-candidate=p.txt", "--hgd-no-ledger").assert_outcomes(passed=5)
    database = hgd.path / ".hgd" / "cache" / DATABASE
    assert len(_rows(database.parent)) == 5
    before = database.read_bytes(), database.stat().st_mtime_ns
    hgd.reset_calls()
    hgd.run("--hgd-candidate=p.txt", "--hgd-no-ledger").assert_outcomes(passed=5)
    assert hgd.calls() == []
    assert (database.read_bytes(), database.stat().st_mtime_ns) == before
    assert sorted(p.name for p in database.parent.iterdir()) == [DATABASE]


def test_a_run_killed_mid_way_keeps_every_committed_reply_and_the_next_run_uses_them(
    hgd: Gate, tmp_path: Path
) -> None:
    hgd.prompt("p.txt", {"*": "SLEEP:0.05"})
    check = [{"contains": "slept"}]
    pairs = [{"id": f"a{i:02}", "customer": f"a{i:02}", "checks": check} for i in range(60)]
    hgd.pairs("c.hgd.yaml", conversation(*pairs))
    command = [sys.executable, "-m", "pytest", "--hgd", "-p", "no:cacheprovider"]
    command += ["--hgd-candidate=p.txt", "--hgd-concurrency=4", "--hgd-no-ledger"]
    process = subprocess.Popen(command, cwd=hgd.path, stdout=subprocess.DEVNULL)
    cache = hgd.path / ".hgd" / "cache"
    deadline = time.monotonic() + 60
    while len(hgd.calls()) < 20 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until some replies are in, and more on their way
    process.kill()  # SIGKILL: no flush, no close, the write-ahead log left as it is
    process.wait(timeout=10)
    assert (cache / f"{DATABASE}-wal").exists()
    copy = tmp_path / "copy"  # read a copy: the next run must recover the log itself
    copy.mkdir()
    for path in cache.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    with contextlib.closing(sqlite3.connect(copy / DATABASE)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        replies = [reply for (reply,) in db.execute("SELECT reply FROM replies")]
    assert 0 < len(replies) < 60 and set(replies) == {"slept"}
    calls_before = len(hgd.calls())
    again = subprocess.run(command, cwd=hgd.path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout
    assert len(hgd.calls()) - calls_before == 60 - len(replies)
    assert len(_rows(cache)) == 60


def test_a_busy_answer_is_waited_out_not_taken_for_a_broken_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two xdist workers opening the cache together: SQLite may answer "busy" at once (WAL
    recovery), outside its busy handler. That once made a reader give up on the cache for
    the whole run, so a worker called the agent for every reply it had cached."""
    ReplyCache(tmp_path).put("k", "cached reply")
    busy = iter([True, True])
    real = cache_module._user_version

    def version(connection: sqlite3.Connection) -> int:
        if next(busy, False):
            raise sqlite3.OperationalError("database is locked")
        return real(connection)

    monkeypatch.setattr(cache_module, "_user_version", version)
    cache = ReplyCache(tmp_path)
    assert cache.get("k") == "cached reply"
    assert cache.unavailable is None and cache.error is None


def test_when_not_busy_retries_busy_only_and_gives_up_after_the_timeout() -> None:
    answers = iter(["busy", "busy", "ok"])

    def flaky() -> str:
        answer = next(answers)
        if answer == "busy":
            raise sqlite3.OperationalError("database is busy")
        return answer

    assert cache_module.when_not_busy(flaky, timeout=5) == "ok"
    with pytest.raises(sqlite3.OperationalError):  # not a lock: no retry
        cache_module.when_not_busy(lambda: sqlite3.connect(":memory:").execute("nonsense"), 5)
    calls = []

    def always_busy() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError):
        cache_module.when_not_busy(always_busy, timeout=0.05)
    assert 1 < len(calls) < 20
