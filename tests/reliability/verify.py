"""The verifier: read a file set back and check it against what the writers produced.

Every record a test writer logs carries ``p`` (process), ``t`` (thread) and ``j`` (a counter
per thread, from 0). :func:`verify` reads every line of the files, in the reader's order, and
counts what a test asserts on:

* ``unparseable``: complete lines that are not JSON objects (a torn last line, with no
  newline, is the only thing tolerated, and counted as ``torn``);
* ``fragments``: among those, lines that are the head of a torn record which the next writer
  ended with a newline (allowed only where a test killed a writer or filled the disk);
* ``glued``: lines where a complete record follows a fragment on the same line (the stdlib's
  failure after a crash, M7): never allowed;
* ``duplicates``: a ``(p, t, j)`` seen twice;
* ``out_of_order``: a thread's ``j`` not increasing in reading order (oldest file first);
* ``missing``: records a thread produced (``expected``) that are not in the files.

``log.dropped`` summary records are collected apart (``dropped``: count by reason).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from servicelog.reader import files_of, iter_lines

Key = tuple[int, int]


@dataclass
class Verdict:
    files: list[str] = field(default_factory=list)
    records: int = 0
    torn: list[str] = field(default_factory=list)
    unparseable: list[tuple[str, int, bytes]] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: list[tuple[Key, int, int]] = field(default_factory=list)
    missing: dict[Key, int] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    seen: dict[Key, list[int]] = field(default_factory=dict)
    per_file: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    glued: int = 0

    @property
    def fragments(self) -> int:
        """Unparseable lines that are the head of a record (a write torn by a kill)."""
        return sum(1 for _, _, data in self.unparseable if data.startswith(b"{")) - self.glued

    @property
    def lost(self) -> int:
        return sum(self.missing.values())

    def summary(self) -> str:
        return (
            f"{self.records} records in {len(self.files)} files; lost {self.lost}, "
            f"duplicated {self.duplicates}, unparseable {len(self.unparseable)} "
            f"(fragments {self.fragments}, glued {self.glued}), torn last lines {len(self.torn)}, "
            f"out of order {len(self.out_of_order)}, dropped {dict(self.dropped)}"
        )


def verify(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    expected: Mapping[Key, int] | None = None,
    *,
    keep_records: bool = False,
) -> Verdict:
    """Check the files of *paths*; *expected* maps ``(p, t)`` to the records it produced."""
    verdict = Verdict(files=files_of(paths))
    last: dict[Key, int] = {}
    seen: dict[Key, set[int]] = {}
    for line in iter_lines(verdict.files):
        if not line.complete:
            verdict.torn.append(line.path)
            continue
        try:
            record = orjson.loads(line.data)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            verdict.unparseable.append((line.path, line.lineno, line.data[:200]))
            if _has_glued_record(line.data):
                verdict.glued += 1
            continue
        if keep_records:
            verdict.per_file.setdefault(line.path, []).append(record)
        if record.get("event.action") == "log.dropped":
            verdict.dropped[record["servicelog.dropped.reason"]] += record[
                "servicelog.dropped.count"
            ]
            continue
        if "j" not in record:
            continue
        verdict.records += 1
        key = (int(record["p"]), int(record["t"]))
        j = int(record["j"])
        got = seen.setdefault(key, set())
        if j in got:
            verdict.duplicates += 1
            continue
        got.add(j)
        if key in last and j < last[key]:
            verdict.out_of_order.append((key, last[key], j))
        last[key] = j
    verdict.seen = {k: sorted(v) for k, v in seen.items()}
    if expected is not None:
        for key, count in expected.items():
            have = seen.get(key, set())
            missing = count - len({j for j in have if j < count})
            if missing:
                verdict.missing[key] = missing
    return verdict


def _has_glued_record(data: bytes) -> bool:
    """Whether a complete JSON object starts somewhere after the start of *data*."""
    start = data.find(b'{"', 1)
    while start > 0:
        try:
            if isinstance(orjson.loads(data[start:]), dict):
                return True
        except orjson.JSONDecodeError:
            pass
        start = data.find(b'{"', start + 1)
    return False
