"""The HTML report: unit tests of ``render_html`` and the page driven in headless Chromium."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import Browser, Page, find_chromium
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hgd.core.decision import Policy, RunEvidence, decide_run
from pytest_hgd.core.text import printable
from pytest_hgd.reports import report as hgd_report
from pytest_hgd.reports.html_report import render_html, write_html

SCRIPT_REPLY = '<script>window.pwned = 1</script> & "quotes" </div></td></tr></table>'
IMG_MESSAGE = "missing 'sales rep' <img src=x onerror=\"window.pwned = 2\">"
TREND = [
    ("2026-11-20T09:00:00+00:00", 0.2, 10, "pass", True),
    ("2026-11-21T09:00:00+00:00", 0.35, 12, "fail", True),
    ("2026-11-21T10:00:00+00:00", 0.3, 12, "pass", False),
    ("2026-11-22T09:00:00+00:00", 0.45, 14, "fail", True),
    ("2026-11-22T15:30:00+00:00", 0.5, 15, "pass", True),
    ("2026-11-23T12:00:00+00:00", 0.62, 16, "fail", True),
]


def result(passes: int, runs: int = 5, check: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "passes": passes,
        "runs": runs,
        "interval": [0.1, 0.9],
        "failed_check": check,
        "message": extra.pop("message", f"{check} failed" if check else None),
        "reply": extra.pop("reply", "Would you like a sales rep to call you back?"),
        **extra,
    }


def pair(
    pid: str, kind: str, delta: str, tags: list[str], base: Any, cand: Any, **extra: Any
) -> dict[str, Any]:
    return {
        "id": pid,
        "kind": kind,
        "delta": delta,
        "tags": tags,
        "conversation": pid.split("::")[0],
        "baseline": base,
        "candidate": cand,
        "error": extra.pop("error", None),
        "p_value": extra.pop("p_value", 1.0),
        "flaky": extra.pop("flaky", False),
        **extra,
    }


def sample_report() -> dict[str, Any]:
    """A sampled gate run with one pair of every kind the page shows, valid against the schema."""
    pairs = [
        pair(
            "pairs/call-1.hgd.yaml::price",
            "locked",
            "regressed",
            ["suv", "pricing"],
            result(5, reply="The RAV4 starts at $29,250. A sales rep will call."),
            result(0, check="contains", message=IMG_MESSAGE, reply=SCRIPT_REPLY),
            p_value=0.004,
        ),
        pair("pairs/call-1.hgd.yaml::greeting", "locked", "kept", ["suv"], result(5), result(5)),
        pair(
            "pairs/call-2.hgd.yaml::financing",
            "corrected",
            "fixed",
            ["pricing", "financing"],
            result(0, check="regex", message="no match for '\\$\\d'"),
            result(5),
        ),
        pair(
            "pairs/call-2.hgd.yaml::goodbye",
            "corrected",
            "still_failing",
            ["financing"],
            result(0, check="not_contains", message="found 'guarantee'"),
            result(0, check="not_contains", message="found 'guarantee'"),
        ),
        pair(
            "pairs/call-3.hgd.yaml::test-drive",
            "locked",
            "kept",
            ["sedan", "test drive"],
            result(3, check="similar", message="similarity 0.41 < 0.60"),
            result(4, check="similar", message="similarity 0.52 < 0.60"),
            flaky=True,
        ),
        pair(
            "pairs/call-3.hgd.yaml::timeout",
            "locked",
            "error",
            ["sedan"],
            result(5),
            None,
            error="TimeoutError: the agent call took longer than 60 s",
        ),
    ]
    skipped = [
        {
            "id": "pairs/call-4.hgd.yaml::old-offer",
            "kind": "locked",
            "tags": ["pricing"],
            "status": "retired",
            "reason": "obsolete <offer>",
        },
        {
            "id": "pairs/call-4.hgd.yaml::new-question",
            "kind": "corrected",
            "tags": [],
            "status": "pending_review",
            "reason": "needs a reply",
        },
    ]
    pressure = {
        "value": 0.62,
        "band": [0.41, 0.83],
        "estimator": "beta(survival+acceptance+probe)",
        "warning": False,
        "warning_reasons": [],
        "constraints": {
            "value": 16,
            "locked": 12,
            "corrected": 4,
            "retired": 1,
            "pending_review": 1,
            "growth": 6,
            "runs": 6,
        },
        "epsilon": {"value": 0.333, "failing": 4, "passing": 12, "share": 0.25},
        "survival": {"value": 0.871, "band": [0.7, 0.95], "reruns": 40},
        "acceptance": {
            "value": 0.5,
            "band": [0.2, 0.8],
            "candidates": 5,
            "accepted": 2,
            "mean_broken": 1.4,
        },
        "probe": {"value": 0.3, "band": [0.1, 0.6], "passed": 3, "mutants": 10},
        "binding": [{"id": "pairs/call-1.hgd.yaml::price", "blocked": 3, "kind": "locked"}],
    }
    evidence = RunEvidence(
        pairs=pairs,
        skipped=skipped,
        rollouts=(),
        baseline_hash="b" * 64,
        candidate_hash="c" * 64,
        agent={"kind": "python", "target": "agent:reply", "source_sha256": "a" * 64},
    )
    decision = dataclasses.replace(
        decide_run(evidence, Policy()),
        calls={"baseline": 0, "candidate": 30, "cache_hits": {"baseline": 30, "candidate": 0}},
        pressure=pressure,
        reasons=["1 regressed", "1 error"],
        verdict="fail",
        samples={"max": 5, "alpha": 0.05},
        trend=[
            {"time": t, "pressure": p, "constraints": c, "verdict": v, "candidate": cand}
            for t, p, c, v, cand in TREND
        ],
    )
    built = hgd_report.build_report(
        evidence,
        decision,
        strict=False,
        prompts={
            "candidate": {"source": "prompts/<candidate>.txt", "sha256": "c" * 64},
            "baseline": {"source": "git:main:prompts/system.txt", "sha256": "b" * 64},
        },
    )
    hgd_report.validate(built)
    return built


SAMPLE = sample_report()


class Tags(HTMLParser):
    """Start tags, and the text inside elements of one class."""

    def __init__(self, text_class: str = "reply") -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: set[str] = set()
        self.texts: list[str] = []
        self.text_class = text_class
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.update(name for name, _ in attrs)
        if self.depth:
            self.depth += 1
        elif ("class", self.text_class) in attrs:
            self.depth = 1
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.texts[-1] += data


def parse(html: str, text_class: str = "reply") -> Tags:
    parser = Tags(text_class)
    parser.feed(html)
    parser.close()
    return parser


# ---- render_html, no browser -------------------------------------------------------------


def test_replies_messages_and_prompts_are_escaped() -> None:
    html = render_html(sample_report())
    assert "<script>window.pwned" not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; &amp; &quot;quotes&quot;" in html
    assert "<img" not in html
    assert "prompts/&lt;candidate&gt;.txt" in html
    assert "obsolete &lt;offer&gt;" in html
    parsed = parse(html)
    assert parsed.tags.count("script") == 1
    assert SCRIPT_REPLY in parsed.texts
    assert parse(html, "check").texts.count(f"contains {IMG_MESSAGE}") == 1


def test_page_is_self_contained() -> None:
    html = render_html(sample_report())
    for needle in ('src="http', 'href="http', "@import", "url(http", "url(", "<link", "<iframe"):
        assert needle not in html.lower()
    assert not parse(html).attrs & {"src", "href", "srcset", "action", "xlink:href", "poster"}
    assert "default-src 'none'" in html


def test_csp_hashes_match_the_inline_style_and_script() -> None:
    html = render_html(sample_report())
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp
    for tag in ("style", "script"):
        match = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        assert match
        digest = base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp.group(1)


def test_numbers_are_on_the_page() -> None:
    html = render_html(sample_report())
    for delta, n in (
        ("kept", 2),
        ("fixed", 1),
        ("regressed", 1),
        ("still_failing", 1),
        ("error", 1),
    ):
        assert f'data-delta="{delta}"><b>{n}</b>{delta}</button>' in html
    assert '<span class=big id="pressure-value">0.62</span>' in html
    assert "band [0.41, 0.83]" in html
    assert "3 of 10 mutants of the candidate passed" in html
    assert "12 locked + 4 corrected enforced, 1 retired, 1 pending review; growth +6" in html
    assert "Suite sign test: 2 improved, 1 worsened, 2 unchanged" in html
    assert re.findall(r'data-pressure="([\d.]+)"', html) == [str(p[1]) for p in TREND]
    assert re.findall(r'data-constraints="(\d+)"', html) == [str(p[2]) for p in TREND]
    assert (
        'data-tag="pricing"><td><span class=tag>pricing</span></td><td class=num>2</td><td class=num>50%</td><td class=num>50%</td>'
        in html
    )
    assert "Flaky pairs (1)" in html and "<td class=num>3/5</td>" in html
    assert "Skipped pairs (2)" in html and "pending review" in html
    assert "5 per pair and prompt, alpha 0.05" in html


def test_pairs_worst_first_with_failed_checks_highlighted() -> None:
    html = render_html(sample_report())
    order = re.findall(r'<tr data-delta="(\w+)"', html)
    assert order == ["regressed", "error", "still_failing", "fixed", "kept", "kept"]
    regressed = html[
        html.index('<tr data-delta="regressed"') : html.index('<tr data-delta="error"')
    ]
    assert regressed.count('<td class="failed">') == 1
    assert "<code>contains</code>" in regressed
    error_row = html[
        html.index('<tr data-delta="error"') : html.index('<tr data-delta="still_failing"')
    ]
    assert (
        "not run" in error_row and "TimeoutError: the agent call took longer than 60 s" in error_row
    )


def test_minimal_report_renders() -> None:
    minimal = {
        "schema_version": 1,
        "verdict": "pass",
        "counts": dict.fromkeys(
            ("kept", "fixed", "regressed", "still_failing", "new_pass", "new_fail", "error"), 0
        ),
        "pairs": [],
        "pressure": {"value": 0.0, "warning": False},
    }
    hgd_report.validate(minimal)
    html = render_html(minimal)
    assert "HGD gate: <span>PASS</span>" in html
    assert "No ledger runs recorded" in html
    assert '<b id="shown">0</b> of 0 pairs shown' in html


def test_no_baseline_and_pressure_warning() -> None:
    report = sample_report()
    report["pairs"] = [
        pair("p.hgd.yaml::a", "locked", "new_fail", [], None, result(0, runs=1, check="max_chars"))
    ]
    report["prompts"]["baseline"] = None
    report["pressure"].update(
        warning=True, warning_reasons=["pressure 0.62 reached hgd_pressure_warn 0.5"]
    )
    html = render_html(report)
    assert "no baseline" in html
    assert "HGDPressureWarning: pressure 0.62 reached hgd_pressure_warn 0.5" in html
    assert "<dt>baseline</dt><dd><span class=muted>none</span>" in html


def test_render_is_pure_and_write_is_atomic(tmp_path: Path) -> None:
    report = sample_report()
    before = copy.deepcopy(report)
    assert render_html(report) == render_html(report)
    assert report == before
    target = tmp_path / "out" / "gate.html"
    write_html(report, target)
    assert target.read_text(encoding="utf-8") == render_html(report)
    assert [p.name for p in target.parent.iterdir()] == ["gate.html"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(), tag=st.text(min_size=1))
def test_any_text_is_shown_as_text(text: str, tag: str) -> None:
    report = copy.deepcopy(SAMPLE)
    report["pairs"][0]["candidate"]["reply"] = text
    report["pairs"][0]["tags"] = [tag]
    report["pairs"][0]["id"] = text + "::" + tag
    html = render_html(report)
    parsed = parse(html)
    assert set(parsed.tags) <= set(parse(render_html(SAMPLE)).tags)
    assert parsed.tags.count("script") == 1
    shown = printable(text, keep="\n\t")  # invisible and bidi characters as escapes
    assert any(t == shown for t in parsed.texts)


# ---- the page in headless Chromium ---------------------------------------------------------

CHROMIUM = find_chromium()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser, tmp_path: Path) -> Iterator[Page]:
    path = tmp_path / "gate.html"
    write_html(sample_report(), path)
    tab = chromium.new_page()
    tab.open(path.as_uri())
    yield tab
    tab.close()


VISIBLE_ROWS = """Array.from(document.querySelectorAll("#pair-table tbody tr"))
  .filter(row => row.getClientRects().length > 0).map(row => row.dataset.delta)"""


def choose(page: Page, select: str, value: str) -> list[str]:
    """Pick a filter value as a user would (value + change event); the rows still shown."""
    page.evaluate(
        f"(() => {{ const s = document.getElementById('f-{select}'); s.value = {value!r};"
        " s.dispatchEvent(new Event('change')); })()"
    )
    rows: list[str] = page.evaluate(VISIBLE_ROWS)
    assert page.evaluate("document.getElementById('shown').textContent") == str(len(rows))
    return rows


def test_page_loads_offline_with_no_console_errors(page: Page) -> None:
    assert page.problems() == []
    assert page.requests() == [page.evaluate("location.href")]
    assert page.evaluate("document.title") == "HGD gate: FAIL"
    # The style applied (its CSP hash matched) and the reply's markup stayed text.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 248, 250)"
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("window.pwned") is None
    assert SCRIPT_REPLY in page.evaluate(
        "document.querySelector('.reply.failed, td.failed .reply').textContent"
    )


def test_chart_and_numbers(page: Page) -> None:
    points = page.evaluate(
        """Array.from(document.querySelectorAll('#trend-chart circle.pressure-point'))
          .map(c => [Number(c.dataset.pressure), c.dataset.verdict, Number(c.getAttribute('cy'))])"""
    )
    assert [p[:2] for p in points] == [[t[1], t[3]] for t in TREND]
    heights = [p[2] for p in points]  # higher pressure is drawn higher (smaller y)
    assert sorted(heights, reverse=True) == [
        heights[i] for i in sorted(range(6), key=lambda i: TREND[i][1])
    ]
    bars = page.evaluate(
        """Array.from(document.querySelectorAll('#trend-chart rect.constraints-bar'))
          .map(r => [Number(r.dataset.constraints), r.getBBox().height])"""
    )
    assert [b[0] for b in bars] == [t[2] for t in TREND]
    assert bars[-1][1] > bars[0][1] > 0
    box = page.evaluate(
        "(() => { const r = document.getElementById('trend-chart').getBoundingClientRect(); return [r.width, r.height]; })()"
    )
    assert box[0] > 400 and box[1] > 150
    cards = page.evaluate(
        "Array.from(document.querySelectorAll('button.count')).map(b => b.innerText.replace(/\\s+/g, ' '))"
    )
    assert cards == [
        "2 kept",
        "1 fixed",
        "1 regressed",
        "1 still_failing",
        "0 new_pass",
        "0 new_fail",
        "1 error",
        "0 undecided",
    ]
    assert page.evaluate("document.getElementById('pressure-value').textContent") == "0.62"
    assert page.evaluate("document.querySelectorAll('#components tr').length") == 5
    tags = page.evaluate(
        "Array.from(document.querySelectorAll('#tag-table tbody tr')).map(r => r.innerText.split('\\t').map(s => s.trim()))"
    )
    assert tags[0][:4] == ["financing", "2", "0%", "50%"]
    assert len(tags) == 5
    assert "2 improved, 1 worsened, 2 unchanged" in page.evaluate(
        "document.getElementById('suite').textContent"
    )
    assert (
        page.evaluate("document.querySelectorAll('#flaky tbody tr, #skipped tbody tr').length") == 3
    )


def test_filters(page: Page) -> None:
    everything = page.evaluate(VISIBLE_ROWS)
    assert everything == ["regressed", "error", "still_failing", "fixed", "kept", "kept"]
    assert choose(page, "delta", "regressed") == ["regressed"]
    assert choose(page, "delta", "kept") == ["kept", "kept"]
    assert choose(page, "kind", "corrected") == []
    assert page.evaluate("document.getElementById('no-match').getClientRects().length") == 1
    assert choose(page, "delta", "") == ["still_failing", "fixed"]
    assert choose(page, "tag", "financing") == ["still_failing", "fixed"]
    assert choose(page, "kind", "") == ["still_failing", "fixed"]
    assert choose(page, "tag", "test drive") == ["kept"]
    page.evaluate("document.getElementById('f-reset').click()")
    assert page.evaluate(VISIBLE_ROWS) == everything
    page.evaluate("document.querySelector('button.count[data-delta=\"fixed\"]').click()")
    assert page.evaluate("document.getElementById('f-delta').value") == "fixed"
    assert page.evaluate(VISIBLE_ROWS) == ["fixed"]
    assert page.problems() == []


def test_screenshot(page: Page, tmp_path: Path) -> None:
    shot = page.screenshot(tmp_path / "hgd-report.png")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1280 and height > 900
    shutil.copyfile(shot, Path(tempfile.gettempdir()) / "hgd-html-screenshot.png")
