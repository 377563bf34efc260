"""What a finished gate run hands out: the pressure warning, the report files, and the
report given to every ``pytest_hgd_report`` implementation."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_hgd.core.redact import Redactor
from pytest_hgd.core.settings import Settings
from pytest_hgd.plugin.selection import Selection
from pytest_hgd.plugin.warning_types import HGDPressureWarning
from pytest_hgd.reports.report import write_json
from pytest_hgd.reports.summary import write_markdown
from pytest_hgd.storage.ledger import append_record, read_ledger


def _write_html(report: Mapping[str, Any], path: Path) -> None:
    from pytest_hgd.reports.html_report import write_html  # only when an HTML report is asked

    write_html(report, path)


def report_paths(settings: Settings) -> list[tuple[str, Path]]:
    """(what, path) of each report file asked for."""
    asked = (
        ("JSON report", settings.report),
        ("Markdown report", settings.markdown),
        ("HTML report", settings.html),
    )
    return [(kind, path) for kind, path in asked if path is not None]


def write_reports(report: Mapping[str, Any], settings: Settings, errors: list[str]) -> set[Path]:
    """Write every report file asked for; the paths that could not be written (each with a
    line in ``errors``): the run then fails, as a lost report must not pass unnoticed."""
    writers: dict[str, Callable[[Mapping[str, Any], Path], None]] = {
        "JSON report": write_json,
        "Markdown report": write_markdown,
        "HTML report": _write_html,
    }
    unwritten = set()
    for kind, path in report_paths(settings):
        try:
            writers[kind](report, path)
        except OSError as exc:
            errors.append(f"cannot write {path}: {exc.strerror or exc}")
            unwritten.add(path)
    return unwritten


def warn_of_pressure(report: Mapping[str, Any], source: Path) -> None:
    """The ``HGDPressureWarning`` when pressure is high or rising (filterable with ``-W``)."""
    if report["pressure"].get("warning"):
        reasons = "; ".join(report["pressure"].get("warning_reasons", []))
        warnings.warn_explicit(
            HGDPressureWarning(f"constraint pressure: {reasons}"),
            HGDPressureWarning,
            filename=str(source),
            lineno=0,
        )


def hand_over(config: pytest.Config, report: Mapping[str, Any]) -> None:
    """Give the finished report to every ``pytest_hgd_report`` implementation; a failing
    one becomes a warning, never a lost report or a changed verdict."""
    for impl in config.hook.pytest_hgd_report.get_hookimpls():
        try:
            impl.function(
                **{name: {"config": config, "report": report}[name] for name in impl.argnames}
            )
        except Exception as exc:
            warnings.warn_explicit(
                pytest.PytestWarning(f"pytest_hgd_report in {impl.plugin_name} raised {exc!r}"),
                pytest.PytestWarning,
                filename=impl.plugin_name,
                lineno=0,
            )


def redecided_note(ids: Sequence[str]) -> str:
    """The note on pairs whose item outcome (an xdist worker's) the one decision overruled."""
    what = "1 pair's test outcome was" if len(ids) == 1 else f"{len(ids)} pairs' test outcomes were"
    more = f" (+{len(ids) - 5} more)" if len(ids) > 5 else ""
    return (
        f"{what} decided by an xdist worker on a share of --hgd-alpha; the gate's one "
        f"decision over every pair, which the verdict and the reports follow, differs for: "
        f"{', '.join(ids[:5])}{more}"
    )


def unpriced(report: Mapping[str, Any], prices: Mapping[str, object]) -> list[str]:
    """A note when ini ``hgd_prices`` is set but prices nothing this run reported tokens for."""
    usage = report.get("usage") or {}
    if not prices or usage.get("cost") is not None:
        return []
    if not any((usage.get(role) or {}).get("calls") for role in ("baseline", "candidate")):
        return []
    return [f"hgd_prices has no line for {usage.get('model')!r} and no '*' line: no cost"]


def redact_report(report: pytest.TestReport, redactor: Redactor) -> None:
    """No secret in what pytest prints or writes (terminal, JUnit XML): the failure text, a
    skip's or an xfail's reason."""
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = redactor.text(str(report.longrepr))
    elif isinstance(report.longrepr, tuple):
        path, line, reason = report.longrepr
        report.longrepr = (path, line, redactor.text(reason))
    if isinstance(getattr(report, "wasxfail", None), str):
        report.wasxfail = redactor.text(report.wasxfail)


def ledger_history(ledger: Path | None, notes: list[str]) -> list[dict[str, Any]]:
    """The ledger's earlier runs (pressure leaves the partial ones out); its problems noted."""
    if ledger is None:
        return []
    read = read_ledger(ledger)
    notes.extend(f"ledger: {problem}" for problem in read.problems)
    return read.records


def append_to_ledger(ledger: Path | None, record: dict[str, Any], notes: list[str]) -> None:
    """Append the run's record; a failure to write is a note, not a crash."""
    if ledger is not None:
        try:
            append_record(ledger, record)
        except OSError as exc:
            notes.append(f"ledger: cannot append to {ledger}: {exc.strerror or exc}")


def nothing_gated(
    selection: Selection, exitstatus: int, session: pytest.Session, errors: list[str]
) -> None:
    """``pytest --hgd`` that collected no pair file at all gates nothing: an error, and
    exit status 5 (no tests) when the run would otherwise pass. Pairs deselected (``-k``)
    or left to other shards are a partial run, not this."""
    if selection.collected or selection.deselected or selection.sharded:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    errors.append(
        "no pair file (*.hgd.yaml, *.hgd.yml) was collected: --hgd gated nothing. Hint: "
        "check testpaths in the pytest configuration, or name the pairs' directory "
        "(pytest --hgd pairs/)"
    )
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def junit_properties(payload: Mapping[str, Any]) -> list[tuple[str, object]]:
    """A pair's or rollout's evidence as JUnit XML ``<property>`` entries (pytest's
    ``user_properties``): its delta, kind, each prompt's pass rate and failed check."""
    found: list[tuple[str, object]] = [("hgd_delta", payload.get("delta") or payload.get("status"))]
    if payload.get("kind"):
        found.append(("hgd_kind", payload["kind"]))
    for role in ("baseline", "candidate"):
        side = payload.get(role)
        if not isinstance(side, Mapping):
            continue
        if "runs" in side:
            found.append((f"hgd_{role}_pass_rate", f"{side['passes']}/{side['runs']}"))
        elif "passed" in side:  # a rollout: its turns passed or not, and where it failed
            found.append((f"hgd_{role}_passed", str(bool(side["passed"])).lower()))
            if not side["passed"]:
                turn = side.get("first_failed_turn")
                found.append((f"hgd_{role}_failed_turn", str(turn) if turn else "final"))
        if side.get("failed_check"):
            check = f"{side['failed_check']}: {side.get('message') or ''}".rstrip(": ")
            found.append((f"hgd_{role}_failed_check", check))
    for key in ("p_value", "reason", "error"):
        if payload.get(key) is not None:
            found.append((f"hgd_{key}", payload[key]))
    return found


def budget_note(left: int | None, budget: int | None) -> list[str]:
    """What the --hgd-max-calls budget paid for."""
    if left is None or budget is None:
        return []
    return [f"--hgd-max-calls={budget}: {budget - left} spent, {left} left"]
