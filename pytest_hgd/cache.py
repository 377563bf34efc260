"""The reply cache: one JSON file per agent call, keyed by everything that changes a reply."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_VERSION = 1


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


def _replace(path: Path, data: bytes) -> None:
    # The temporary name is this process's and thread's own: no other writer can use it
    # at the same time, so it needs none of mkstemp's random names and retries.
    temp = f"{path.parent}/.{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
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


class ReplyCache:
    """Replies on disk under ``directory/replies/<2 hex>/<key>.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: set[str] = set()  # shard directories known to exist

    def _path(self, key: str) -> Path:
        return self.directory / "replies" / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:  # plain strings: most lookups of a fresh run miss, and pathlib costs more than that
            with open(f"{self.directory}/replies/{key[:2]}/{key}.json", "rb") as handle:
                entry: Any = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError):
            return None
        reply = entry.get("reply") if isinstance(entry, dict) else None
        return reply if isinstance(reply, str) else None

    def put(self, key: str, reply: str) -> None:
        path = self._path(key)
        data = json.dumps({"reply": reply}, ensure_ascii=False).encode("utf-8")
        if key[:2] in self._made:
            try:
                _replace(path, data)
                return
            except FileNotFoundError:  # the directory was deleted meanwhile
                pass
        path.parent.mkdir(parents=True, exist_ok=True)
        self._made.add(key[:2])
        _replace(path, data)

    def clear(self) -> int:
        """Delete every cached reply; returns how many there were."""
        replies = self.directory / "replies"
        count = sum(1 for _ in replies.rglob("*.json")) if replies.is_dir() else 0
        shutil.rmtree(replies, ignore_errors=True)
        self._made.clear()
        return count
