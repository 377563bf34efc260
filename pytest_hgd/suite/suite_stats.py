"""A suite on disk: its pairs, their dedup index, the pairs pending review, its size (no pytest).

The dedup rule: two pairs are the same when the roles and the normalised texts (whitespace
collapsed, case folded) of their history plus the customer message are equal.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_hgd.core.checks import BUILTIN_CHECKS, CheckType
from pytest_hgd.core.errors import PairFileError
from pytest_hgd.core.model import Pair
from pytest_hgd.storage.cache import write_atomic
from pytest_hgd.suite.pairfile import conversation_name, is_pair_file, load_pairs, read_pair_file
from pytest_hgd.suite.yamlreader import MAX_NODES, YamlReader

INDEX_PATH = Path(".hgd") / "ingest-index.json"
INDEX_VERSION = 2  # 2: keys of NFC-normalised text
ROLES = ("agent", "customer")
Turn = tuple[str, str]  # (role, text)


def builtin_registry() -> dict[str, CheckType]:
    return {c.name: c for c in BUILTIN_CHECKS}


@dataclass
class Suite:
    """Every pair that loaded, the files read, and the problem of every file that did not."""

    pairs: list[Pair] = field(default_factory=list)
    files: int = 0
    problems: list[str] = field(default_factory=list)


def pair_files(directory: Path) -> Iterator[Path]:
    """Every ``*.hgd.yaml`` / ``*.hgd.yml`` under directory, sorted, hidden folders skipped."""
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root, name)
            if is_pair_file(path):
                yield path


def load_suite(directory: Path) -> Suite:
    """Load every pair file under directory with the real loader and the built-in checks."""
    registry = builtin_registry()
    suite = Suite()
    for path in pair_files(directory):
        suite.files += 1
        try:
            suite.pairs.extend(load_pairs(path, str(path), registry))
        except PairFileError as exc:
            suite.problems.append(exc.render())
    return suite


def normalise(text: str) -> str:
    """Unicode NFC, whitespace collapsed and case folded: what the dedup rule compares."""
    return unicodedata.normalize("NFC", " ".join(text.split())).casefold()


class KeyBuilder:
    """The dedup key of a conversation prefix, fed one turn at a time."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def add(self, role: str, text: str) -> None:
        data = normalise(text).encode("utf-8", "surrogatepass")
        self._hash.update(f"{role}\x00{len(data)}\x00".encode())
        self._hash.update(data)

    def key(self) -> str:
        return self._hash.hexdigest()


def pair_key(history: Iterable[Turn], customer: str) -> str:
    """The dedup key: roles and normalised texts of the history plus the customer message."""
    builder = KeyBuilder()
    for role, text in history:
        builder.add(role, text)
    builder.add("customer", customer)
    return builder.key()


def _read_keys(path: Path) -> list[str] | None:
    """The dedup keys of a pair file's pairs, read fast; None when it is not that simple."""
    try:  # the gate's own reading: a regular file within the limit, hostile YAML refused
        text = read_pair_file(path, str(path)).decode("utf-8")
        document = YamlReader(str(path)).read(text)
    except (PairFileError, UnicodeDecodeError):
        return None  # the real loader reads it again and words the problem
    pairs = document.get("pairs") if isinstance(document, dict) else None
    if not isinstance(pairs, list):
        return None
    keys, budget = [], MAX_NODES  # aliases could multiply the work: bounded
    for raw in pairs:
        history = raw.get("history", []) if isinstance(raw, dict) else None
        if not isinstance(history, list) or not isinstance(raw.get("customer"), str):
            return None
        budget -= len(history) + 1
        if budget < 0:
            return None
        turns = []
        for turn in history:
            if not isinstance(turn, dict) or len(turn) != 1:
                return None
            ((role, text),) = turn.items()
            if role not in ROLES or not isinstance(text, str):
                return None
            turns.append((role, text))
        keys.append(pair_key(turns, raw["customer"]))
    return keys


def _signature(path: Path) -> list[int] | None:
    """Size, mtime and ctime: any edit changes one of them."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


class SuiteIndex:
    """The dedup keys and file names of every pair file under a directory.

    Keys are cached in ``DIR/.hgd/ingest-index.json`` per file with its size, mtime and
    ctime; a file whose stat differs (a person edited it) is read again.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keys: set[str] = set()
        self.names: set[str] = set()
        self.problems: list[str] = []
        self.entries: dict[str, list[Any]] = {}
        self.changed = False

    def load(self, progress: Callable[[str], None] | None = None) -> None:
        cached = self._read_cache()
        registry = builtin_registry()
        for count, path in enumerate(pair_files(self.directory), 1):
            rel = path.relative_to(self.directory).as_posix()
            self.names.add(conversation_name(path).casefold())
            signature = _signature(path)
            old = cached.get(rel)
            if old is not None and signature is not None and old[:3] == signature:
                keys: list[str] = old[3]
            else:
                self.changed = True
                fast = _read_keys(path)
                if fast is not None:
                    keys = fast
                else:  # the real loader words the problem
                    try:
                        pairs = load_pairs(path, str(path), registry)
                    except PairFileError as exc:
                        self.problems.append(exc.render())
                        continue
                    keys = [
                        pair_key(((t.speaker, t.text) for t in p.history), p.customer)
                        for p in pairs
                    ]
            if signature is not None:
                self.entries[rel] = [*signature, keys]
            self.keys.update(keys)
            if progress is not None:
                progress(f"reading the suite: {count} files")
        if set(cached) - set(self.entries):
            self.changed = True

    def _read_cache(self) -> dict[str, list[Any]]:
        try:
            data = json.loads((self.directory / INDEX_PATH).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return {}
        files = data.get("files")
        if not isinstance(files, dict):
            return {}
        return {
            k: v
            for k, v in files.items()
            if isinstance(v, list)
            and len(v) == 4
            and isinstance(v[3], list)
            and all(isinstance(key, str) for key in v[3])
        }

    def reserve(self, folder: Path, stem: str) -> Path:
        """A new file path for stem in folder: ``stem``, else ``stem-2``, ``stem-3``, ..."""
        candidate, number = stem, 1
        while candidate.casefold() in self.names or (folder / f"{candidate}.hgd.yaml").exists():
            number += 1
            candidate = f"{stem}-{number}"
        self.names.add(candidate.casefold())
        return folder / f"{candidate}.hgd.yaml"

    def record(self, path: Path, keys: Sequence[str]) -> None:
        """Note a file ingest wrote, with its stat as written."""
        signature = _signature(path)
        if signature is not None:
            rel = path.relative_to(self.directory).as_posix()
            self.entries[rel] = [*signature, list(keys)]
        self.changed = True

    def save(self) -> None:
        data = {"version": INDEX_VERSION, "files": self.entries}
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        write_atomic(self.directory / INDEX_PATH, text)


def status(pair: Pair) -> str:
    if pair.retired is not None:
        return "retired"
    if pair.review is not None:
        return "pending review"
    return "enforced"


def review_lines(pairs: Sequence[Pair]) -> list[str]:
    """``file:line: id: reason`` for every pair pending review."""
    pending = [p for p in pairs if p.review is not None and p.retired is None]
    lines = [f"{p.path}:{p.line}: {p.id}: {p.review}" for p in pending]
    files = len({p.path for p in pending})
    if pending:
        pairs_word = "pair" if len(pending) == 1 else "pairs"
        files_word = "file" if files == 1 else "files"
        lines.append(f"{len(pending)} {pairs_word} pending review in {files} {files_word}")
    else:
        lines.append("no pairs pending review")
    return lines


def suite_counts(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Pairs by kind, by status, and by tag (each tag split by kind)."""
    tags: dict[str, Counter[str]] = {}
    for pair in pairs:
        for tag in pair.tags:
            tags.setdefault(tag, Counter())[pair.kind.value] += 1
    return {
        "pairs": len(pairs),
        "kind": dict(Counter(p.kind.value for p in pairs)),
        "status": dict(Counter(status(p) for p in pairs)),
        "tags": {
            t: dict(c) for t, c in sorted(tags.items(), key=lambda kv: (-kv[1].total(), kv[0]))
        },
    }


def growth_series(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(time, suite size) per ledger run, from ``pressure.constraints.value``; partial runs
    (pairs left out, ``"partial": true``) measure no suite and are left out."""
    series = []
    for record in records:
        if record.get("partial") is True:
            continue
        pressure = record.get("pressure")
        constraints = pressure.get("constraints") if isinstance(pressure, dict) else None
        if isinstance(constraints, dict):
            constraints = constraints.get("value")
        if isinstance(constraints, int) and not isinstance(constraints, bool):
            series.append((str(record.get("time", "?")), constraints))
    return series


def calls_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Agent calls, tokens and cost summed over the ledger's runs that recorded them."""
    made = cached = fixed = tokens_in = tokens_out = runs = searched = 0
    cost: float | None = None
    for record in records:
        calls = record.get("calls")
        if not isinstance(calls, Mapping):
            continue
        runs += 1
        search = record.get("search")
        if isinstance(search, Mapping) and isinstance(search.get("calls"), int):
            searched += search["calls"]  # --hgd-search: its candidates' calls
        sides = [calls.get(r, 0) for r in ("baseline", "candidate")]
        hits = calls.get("cache_hits") or {}
        made += sum(x for x in sides if isinstance(x, int))
        cached += sum(x for x in hits.values() if isinstance(x, int))
        would = calls.get("fixed_k") or {}
        fixed += sum(x for x in would.values() if isinstance(x, int)) or sum(sides)
        usage = record.get("usage") or {}
        for role in ("baseline", "candidate"):
            side = usage.get(role) or {}
            tokens_in += side.get("input_tokens", 0)
            tokens_out += side.get("output_tokens", 0)
        priced = usage.get("cost")
        if isinstance(priced, Mapping) and isinstance(priced.get("total"), int | float):
            cost = (cost or 0.0) + priced["total"]
    if not runs:
        return []
    lines = [
        f"agent calls over {runs} ledger runs: {made} made, {cached} from the cache; "
        f"fixed K would have made {fixed}"
    ]
    if searched:
        lines.append(f"  candidate searches (--hgd-search) made {searched} more")
    if tokens_in or tokens_out:
        priced_text = f"; cost {cost:.4g}" if cost is not None else ""
        lines.append(f"  tokens: {tokens_in} in / {tokens_out} out{priced_text}")
    return lines


def _by(counter: Mapping[str, int], order: Sequence[str]) -> str:
    return ", ".join(f"{name} {counter.get(name, 0)}" for name in order)


def render_stats(
    directory: str, suite: Suite, series: Sequence[tuple[str, int]] | None, last: int = 20
) -> list[str]:
    """The lines of ``hgd stats``."""
    counts = suite_counts(suite.pairs)
    lines = [
        f"suite {directory}: {counts['pairs']} pairs in {suite.files} files",
        f"  by kind:   {_by(counts['kind'], ('locked', 'corrected'))}",
        f"  by status: {_by(counts['status'], ('enforced', 'pending review', 'retired'))}",
    ]
    if counts["tags"]:
        width = max(len(t) for t in counts["tags"])
        lines.append("  by tag:")
        for tag, kinds in counts["tags"].items():
            total = sum(kinds.values())
            lines.append(f"    {tag:<{width}}  {total:>6}  ({_by(kinds, ('locked', 'corrected'))})")
    if series is None:
        return lines
    if not series:
        lines.append("growth: no runs with a suite size in the ledger")
        return lines
    first, final = series[0][1], series[-1][1]
    lines.append(
        f"growth over {len(series)} ledger runs: {first} -> {final} enforced pairs "
        f"({final - first:+d})"
    )
    shown = series[-last:]
    if len(series) > len(shown):
        lines.append(f"  ... {len(series) - len(shown)} earlier runs")
    previous = series[-len(shown) - 1][1] if len(series) > len(shown) else shown[0][1]
    for time, size in shown:
        lines.append(f"  {time}  {size:>6}  {size - previous:+d}")
        previous = size
    return lines
