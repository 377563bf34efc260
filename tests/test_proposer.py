"""The LLM proposer of candidate search against a real loopback server (tests/openai_server.py)."""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_server import Fault, OpenAIServer

from pytest_hgd.agents.proposer import (
    DEFAULT_TEMPLATE,
    LLMProposer,
    ProposerError,
    ProposerSettings,
    ProposerTemplateError,
)
from pytest_hgd.agents.proposer_template import (
    load_template,
    parse_prompts,
    render_failures,
    template_problem,
)
from pytest_hgd.core.errors import AgentError

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-hgdkey-Zq9xV2pL7mK4wR8t"  # shares no 8 characters with a name or URL
HEADER = "org-hgdhdr-Hd7fK2mQ9pXw"
ENV = {"HGD_PROPOSER_KEY": KEY}
PROMPT = "You are Sam from Acme Motors. Answer briefly."


def failure(number: int, **extra: Any) -> dict[str, Any]:
    made: dict[str, Any] = {
        "id": f"pair-{number}",
        "kind": "corrected" if number % 2 else "locked",
        "messages": [
            {"role": "assistant", "content": "Hi, this is Sam from Acme Motors."},
            {"role": "user", "content": f"Question number {number}?"},
        ],
        "reply": f"Wrong answer {number}.",
        "recorded": f"Right answer {number}.",
        "problems": [f"missing 'answer-{number}'"],
    }
    made.update(extra)
    return made


FAILURES = [failure(i) for i in range(1, 4)]


def answer(*prompts: Any) -> Fault:
    return Fault(content=json.dumps({"prompts": list(prompts)}))


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def make(base_url: str, **overrides: Any) -> LLMProposer:
    fields: dict[str, Any] = {
        "model": "proposer-test",
        "base_url": base_url,
        "api_key_env": "HGD_PROPOSER_KEY",
        "backoff_base": 0.01,
    }
    fields.update(overrides)
    return LLMProposer(ProposerSettings(**fields), env=ENV)


def sent_text(srv: OpenAIServer, index: int = -1) -> str:
    messages = srv.requests[index].body["messages"]
    assert [m["role"] for m in messages] == ["user"]
    return str(messages[0]["content"])


def test_the_request_carries_the_model_the_prompt_and_the_failures(server: OpenAIServer) -> None:
    server.push(answer("Rewrite one.", "Rewrite two."))
    with make(server.base_url, temperature=0.7, max_tokens=900) as proposer:
        got = proposer.propose(PROMPT, FAILURES, random.Random(1), 2)
    assert got == ["Rewrite one.", "Rewrite two."]
    request = server.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "proposer-test"
    assert request.body["temperature"] == 0.7 and request.body["max_tokens"] == 900
    assert request.headers["authorization"] == f"Bearer {KEY}"
    text = sent_text(server)
    assert f"<prompt>\n{PROMPT}\n</prompt>" in text
    assert "Write 2 rewritten versions" in text
    for item in FAILURES:
        assert f"pair {item['id']} ({item['kind']})" in text
        assert item["reply"] in text and item["recorded"] in text
        assert item["problems"][0] in text
        assert item["messages"][-1]["content"] in text
    assert '{"prompts": [' in text and "$" not in text


def test_the_extra_headers_are_sent_and_replace_the_default_ones(server: OpenAIServer) -> None:
    server.push(answer("A."))
    headers = (("X-Team", "search"), ("Authorization", "Bearer other"))
    with make(server.base_url, headers=headers) as proposer:
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
    sent = server.requests[-1].headers
    assert sent["x-team"] == "search" and sent["authorization"] == "Bearer other"


@pytest.mark.parametrize(
    "content",
    [
        '{"prompts": ["First.", "Second."]}',
        'Here you are:\n```json\n{"prompts": ["First.", "Second."]}\n```\nGood luck.',
        '["First.", "Second."]',
        '```\n["First.", {"prompt": "Second."}]\n```',
        'Sure! {"prompts": ["First.", "Second."]} Hope it helps.',
    ],
    ids=["plain", "fenced", "list", "bare-fence-objects", "prose-around"],
)
def test_the_reply_is_read_in_every_usual_shape(server: OpenAIServer, content: str) -> None:
    server.push(Fault(content=content))
    with make(server.base_url) as proposer:
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 5) == ["First.", "Second."]


def test_empty_duplicate_and_unchanged_prompts_are_dropped(server: OpenAIServer) -> None:
    server.push(answer("  New one.  ", "", "   ", 7, "New one.", f"{PROMPT}\n", "Other.", None))
    with make(server.base_url) as proposer:
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 5) == ["New one.", "Other."]


def test_only_unchanged_prompts_give_no_candidate_and_no_error(server: OpenAIServer) -> None:
    server.push(answer(PROMPT, PROMPT))
    with make(server.base_url) as proposer:
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 3) == []


def test_at_most_n_are_returned(server: OpenAIServer) -> None:
    server.push(answer(*(f"Prompt {i}." for i in range(6))))
    with make(server.base_url) as proposer:
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 2) == ["Prompt 0.", "Prompt 1."]
    assert server.calls == 1


def test_no_call_without_failures_or_for_n_below_one(server: OpenAIServer) -> None:
    with make(server.base_url) as proposer:
        assert proposer.propose(PROMPT, [], random.Random(1), 3) == []
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 0) == []
    assert server.calls == 0 and proposer.calls == 0


def test_the_failures_shown_are_a_seeded_sample_in_their_given_order(
    server: OpenAIServer,
) -> None:
    many = [failure(i) for i in range(1, 21)]
    texts = []
    for seed in (5, 5, 6):
        server.push(answer("A."))
        with make(server.base_url, max_failures=3) as proposer:
            proposer.propose(PROMPT, many, random.Random(seed), 1)
        texts.append(sent_text(server))
    assert texts[0] == texts[1] != texts[2]
    shown = [
        int(line.split("pair-")[1].split()[0]) for line in texts[0].splitlines() if "### " in line
    ]
    assert len(shown) == 3 and shown == sorted(shown)
    rng = random.Random(5)
    proposer = make(server.base_url, max_failures=3)
    assert [f["id"] for f in proposer.sample(many, rng)] == [f"pair-{i}" for i in shown]


def test_retries_do_not_move_the_callers_rng(server: OpenAIServer) -> None:
    used, fresh = random.Random(3), random.Random(3)
    server.push(Fault(status=503), answer("A."))
    with make(server.base_url) as proposer:
        proposer.propose(PROMPT, FAILURES, used, 1)  # three failures: no draw at all
    assert used.random() == fresh.random()


def test_long_texts_are_cut_and_long_conversations_keep_their_end() -> None:
    messages = [{"role": "user", "content": f"message {i} " + "x" * 1000} for i in range(10)]
    text = render_failures([failure(1, messages=messages)], max_chars=50, max_messages=3)
    assert "(7 earlier messages left out)" in text
    assert "message 6" not in text and "message 7" in text and "message 9" in text
    assert all(len(line) <= 4 + len("user: ") + 50 for line in text.splitlines())
    assert "[…]" in text


def test_a_429_is_retried_after_its_retry_after(server: OpenAIServer) -> None:
    server.push(Fault(status=429, retry_after="0.3"), answer("After the wait."))
    with make(server.base_url) as proposer:
        started = time.monotonic()
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 1) == ["After the wait."]
        assert time.monotonic() - started >= 0.3
    assert server.calls == 2 and proposer.calls == 2


def test_a_long_retry_after_is_capped(server: OpenAIServer) -> None:
    server.push(Fault(status=429, retry_after="600"), answer("Soon."))
    with make(server.base_url, retry_after_max=0.2) as proposer:
        started = time.monotonic()
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 1) == ["Soon."]
        assert time.monotonic() - started < 5


def test_a_lasting_500_is_an_error_naming_the_model_and_the_url(server: OpenAIServer) -> None:
    server.push(*[Fault(status=500, message="boom")] * 3)
    with make(server.base_url) as proposer, pytest.raises(ProposerError) as caught:
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
    message = str(caught.value)
    assert isinstance(caught.value, AgentError)
    assert "proposer-test" in message and server.base_url in message
    assert "HTTP 500" in message and "boom" in message and "gave up after 3 attempts" in message
    assert server.calls == 3


def test_a_400_is_not_retried(server: OpenAIServer) -> None:
    server.push(Fault(status=400, message="bad model"))
    with make(server.base_url) as proposer, pytest.raises(ProposerError, match="HTTP 400"):
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
    assert server.calls == 1


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (Fault(content="I would rewrite it like this: be kind."), "the reply is not JSON"),
        (Fault(content='{"ideas": ["x"]}'), "the reply has no prompts"),
        (Fault(content='{"prompts": ["", "  "]}'), "the reply has no prompts"),
        (Fault(malformed=True), "is not JSON"),
        (Fault(body='{"choices": []}'), "no text at choices[0].message.content"),
    ],
    ids=["prose", "other-key", "only-empty", "malformed-body", "no-choices"],
)
def test_an_unusable_answer_is_an_error_naming_the_model_and_the_url(
    server: OpenAIServer, fault: Fault, problem: str
) -> None:
    server.push(fault)
    with make(server.base_url) as proposer, pytest.raises(ProposerError) as caught:
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
    message = str(caught.value)
    assert problem in message
    assert "proposer-test" in message and server.base_url in message


def test_a_timeout_and_a_refused_connection_are_errors() -> None:
    with OpenAIServer() as srv:
        srv.push(Fault(delay=1.0, content="{}"))
        with make(srv.base_url, timeout=0.2) as proposer, pytest.raises(ProposerError) as caught:
            proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
        assert "timed out after 0.2 s" in str(caught.value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with make(url) as proposer, pytest.raises(ProposerError) as caught:
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
    assert "connection to" in str(caught.value) and url in str(caught.value)


def test_the_usage_of_each_call_is_counted(server: OpenAIServer) -> None:
    server.push(answer("One two three."), answer("Four."))
    with make(server.base_url) as proposer:
        assert proposer.usage == (0, 0) and proposer.last_usage is None
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
        first = proposer.last_usage
        assert first is not None and first[0] > 50 and first[1] > 0
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
        second = proposer.last_usage
        assert second is not None
        assert proposer.usage == (first[0] + second[0], first[1] + second[1])
    server.push(Fault(body=json.dumps({"choices": [{"message": {"content": '["X."]'}}]})))
    with make(server.base_url) as proposer:
        assert proposer.propose(PROMPT, FAILURES, random.Random(1), 1) == ["X."]
        assert proposer.last_usage is None and proposer.usage == (0, 0)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=401, message=f"invalid key {KEY} (header {HEADER})"),
        Fault(status=500, body=f"upstream said {KEY} and {HEADER}"),
        Fault(content=f"not json, but the key: {KEY} {HEADER}"),
        Fault(content=json.dumps({"other": f"{KEY} {HEADER}"})),
        Fault(body=json.dumps({"data": [KEY, HEADER]})),
    ],
    ids=["error-message", "error-body", "prose-reply", "no-prompts", "no-choices"],
)
def test_the_key_and_secret_headers_are_never_in_an_error_or_a_repr(
    server: OpenAIServer, fault: Fault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HGD_PROPOSER_KEY", KEY)
    server.push(*[fault] * 3)
    settings = ProposerSettings(
        model="proposer-test",
        base_url=server.base_url,
        api_key_env="HGD_PROPOSER_KEY",
        headers=(("X-Org", HEADER),),
        backoff_base=0.01,
    )
    with LLMProposer(settings) as proposer, pytest.raises(ProposerError) as caught:
        proposer.propose(PROMPT, FAILURES, random.Random(1), 1)
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    shown = [str(caught.value), repr(caught.value), repr(proposer), repr(settings)]
    shown.append(json.dumps(proposer.identity))
    for text in shown:
        assert KEY not in text and HEADER not in text
        assert KEY[:12] not in text and HEADER[-10:] not in text
    assert "***" in str(caught.value)


def test_a_custom_template_file_is_loaded_and_used(server: OpenAIServer, tmp_path: Path) -> None:
    path = tmp_path / "proposer.txt"
    path.write_text(
        "Fix this prompt ($$0 budget):\n$prompt\n---\n${failures}\nGive $n as JSON.", "utf-8"
    )
    template = load_template(path)
    server.push(answer("Fixed."))
    with make(server.base_url, template=template) as proposer:
        assert proposer.propose(PROMPT, FAILURES[:1], random.Random(1), 4) == ["Fixed."]
    text = sent_text(server)
    assert text.startswith(
        f"Fix this prompt ($0 budget):\n{PROMPT}\n---\n### Failure 1: pair pair-1"
    )
    assert text.endswith("Give 4 as JSON.")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("Rewrite $prompt using $failure.", "line 1: unknown placeholder $failure"),
        ("Rewrite $prompt.\nCost: $5", "line 2: a $ that starts no placeholder"),
        ("Rewrite ${prompt} for ${count}", "unknown placeholder $count"),
        ("Rewrite this: $failures, $n of them", "no $prompt placeholder"),
    ],
)
def test_a_bad_template_file_is_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, "utf-8")
    with pytest.raises(ProposerTemplateError) as caught:
        load_template(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)
    with pytest.raises(ValueError, match="template: "):
        ProposerSettings(model="m", template=content)


def test_a_missing_or_unreadable_template_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(ProposerTemplateError, match="no such proposer template file") as caught:
        load_template(missing)
    assert str(missing) in str(caught.value)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe$prompt")
    with pytest.raises(ProposerTemplateError, match="not UTF-8"):
        load_template(binary)


def test_the_default_template_is_valid_and_quoted_verbatim_in_the_docs() -> None:
    assert template_problem(DEFAULT_TEMPLATE) is None
    for placeholder in ("$prompt", "$failures", "$n"):
        assert placeholder in DEFAULT_TEMPLATE
    docs = (ROOT / "docs" / "proposer.md").read_text(encoding="utf-8")
    assert DEFAULT_TEMPLATE in docs


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError) as caught:
        ProposerSettings(model="", base_url="ftp://x", timeout=0, max_failures=0)
    for part in ("model must not be empty", "base_url", "timeout", "max_failures"):
        assert part in str(caught.value)


def test_parse_prompts_without_a_list_is_none_and_without_json_raises() -> None:
    assert parse_prompts('{"prompts": "one"}') is None
    assert parse_prompts("[]") == []
    with pytest.raises(ValueError):
        parse_prompts("no json here")
