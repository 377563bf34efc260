"""Checks decide on the reply alone: no network, no disk, no endless regex, no empty needle."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Gate, conversation

CATASTROPHIC = "(a+)+$"  # exponential backtracking on "aaa…ab"
RUNAWAY_REPLY = "a" * 60 + "b"


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 that serves a schema and records every request it gets."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/schema.json", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["http", "file", "nested"])
def test_a_schema_reference_outside_the_schema_is_a_collection_error(
    hgd: Gate, recording_server: tuple[str, list[str]], tmp_path: Path, kind: str
) -> None:
    """Before: `$ref: http://…` was fetched at check time, so a server decided the verdict
    (and one that never answered hung the run); `file:///…` read the disk."""
    url, seen = recording_server
    local = tmp_path / "schema.json"
    local.write_text('{"type": "string"}', encoding="utf-8")
    ref = {"http": url, "file": local.as_uri(), "nested": url}[kind]
    schema: dict[str, object] = {"$ref": ref}
    if kind == "nested":
        schema = {"type": "object", "properties": {"a": {"prefixItems": [{"$ref": ref}]}}}
    hgd.prompt("p.txt", {"*": '"text"'})
    hgd.pairs(
        "s.hgd.yaml",
        conversation({"customer": "hi", "checks": [{"json_schema": schema}]}),
    )
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            f"s.hgd.yaml:*: pairs[[]0]*checks[[]0]: json_schema: $ref {ref!r} points outside the schema*"
        ]
    )
    assert seen == []


def test_references_inside_the_schema_still_work(hgd: Gate) -> None:
    hgd.prompt("p.txt", {"good": '{"name": "Sam"}', "bad": '{"name": 5}'})
    schema = {
        "$defs": {"name": {"type": "string"}},
        "type": "object",
        "properties": {"name": {"$ref": "#/$defs/name"}},
    }
    checks = [{"json_schema": schema}]
    hgd.pairs(
        "s.hgd.yaml",
        conversation(
            {"id": "good", "customer": "good", "checks": checks},
            {"id": "bad", "customer": "bad", "checks": checks},
        ),
    )
    result = hgd.run("--hgd-candidate=p.txt")
    result.assert_outcomes(passed=1, failed=1)


@pytest.mark.parametrize("where", ["regex", "schema pattern"])
def test_a_runaway_regex_is_an_error_naming_the_check_not_a_hang(hgd: Gate, where: str) -> None:
    """Before: `(a+)+$` on a long reply ran for hours (exponential backtracking)."""
    hgd.prompt("p.txt", {"*": RUNAWAY_REPLY if where == "regex" else f'"{RUNAWAY_REPLY}"'})
    check = (
        {"regex": CATASTROPHIC}
        if where == "regex"
        else {"json_schema": {"type": "string", "pattern": CATASTROPHIC}}
    )
    name = "regex" if where == "regex" else "json_schema"
    hgd.pairs(
        "r.hgd.yaml",
        conversation(
            {"id": "runaway", "customer": "hi", "checks": [check]},
            {"id": "fine", "customer": "hi", "checks": [{"max_chars": 100}]},
        ),
    )
    started = time.monotonic()
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-report=report.json")
    assert time.monotonic() - started < 60
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*check {name!r} ran past the 2 s limit of a check*"])
    assert hgd.report()["verdict"] == "fail"


@pytest.mark.parametrize(
    "check", [{"contains": ""}, {"contains": ["sales", ""]}, {"not_contains": ""}]
)
def test_an_empty_needle_is_refused(hgd: Gate, check: dict[str, object]) -> None:
    """Before: `contains: ''` passed every reply."""
    hgd.prompt("p.txt", {"*": "anything"})
    hgd.pairs("e.hgd.yaml", conversation({"customer": "hi", "checks": [check]}))
    result = hgd.run("--hgd-candidate=p.txt")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["e.hgd.yaml:*: pairs[[]0].checks[[]0]: an empty string is in every reply, so it checks*"]
    )


def test_a_timer_of_someone_else_is_put_back(hgd: Gate) -> None:
    """The check clock borrows SIGALRM: a handler and timer set before (pytest-timeout's,
    say) are restored afterwards."""
    import signal

    from pytest_hgd.core.checks import CheckClock

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with CheckClock(1):
            pass
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.3
        time.sleep(0.5)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


SNEAKY_AGENT = """
class Sneaky(str):
    def casefold(self):
        return "sales rep"
    def lower(self):
        return "sales rep"
    def __len__(self):
        return 1

def reply(prompt, messages):
    return Sneaky("x" * 500)
"""


def test_a_str_subclass_reply_checks_the_same_fresh_and_from_the_cache(hgd: Gate) -> None:
    """Before: a `str` subclass overriding casefold/__len__ passed `contains` and `max_chars`
    on a fresh run and failed from the cache: the verdict depended on cache warmth."""
    hgd.pytester.makepyfile(sneaky=SNEAKY_AGENT)
    hgd.prompt("p.txt", {})
    checks = [{"contains": "sales rep"}, {"max_chars": 10}]
    hgd.pairs("s.hgd.yaml", conversation({"customer": "hi", "checks": checks}))
    outcomes = []
    for _ in range(2):  # fresh, then from the cache
        result = hgd.pytester.runpytest(
            "--hgd", "-p", "no:cacheprovider", "--hgd-agent=sneaky:reply", "--hgd-candidate=p.txt"
        )
        outcomes.append(result.parseoutcomes())
        result.stdout.fnmatch_lines(["*missing 'sales rep'*"])
    assert outcomes[0] == outcomes[1] == {"failed": 1}


def test_a_file_without_pairs_is_a_collection_error(hgd: Gate) -> None:
    """Before: `pairs: []` (as the only file) exited 5 with no report and no word why."""
    hgd.prompt("p.txt", {"*": "good"})
    hgd.pairs("empty.hgd.yaml", "outcome: lead\npairs: []\n")
    result = hgd.run("--hgd-candidate=p.txt", "--hgd-report=report.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["empty.hgd.yaml:2: has no pairs (`pairs:` is empty)*"])
