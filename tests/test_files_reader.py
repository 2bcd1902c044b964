"""servicelog.reader: the records of a file set, in order, whatever the files went through."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicelog.reader import files_of, iter_lines, read_records


def _lines(*js: int) -> bytes:
    return b"".join(b'{"j":%d}\n' % j for j in js)


@pytest.fixture
def file_set_dir(tmp_path: Path) -> Path:
    """app.jsonl with rotated files in every compression, out of alphabetical order."""
    (tmp_path / "app_2026-11-27.jsonl.gz").write_bytes(gzip.compress(_lines(0, 1)))
    with zipfile.ZipFile(tmp_path / "app_2026-11-28.jsonl.zip", "w") as zf:
        zf.writestr("app_2026-11-28.jsonl", _lines(2, 3))
    (tmp_path / "app_2026-11-29.jsonl.bz2").write_bytes(bz2.compress(_lines(4)))
    (tmp_path / "app_2026-11-29.1.jsonl.xz").write_bytes(lzma.compress(_lines(5)))
    (tmp_path / "app_2026-11-29.2.jsonl").write_bytes(_lines(6, 7))
    (tmp_path / "app_2026-11-29.10.jsonl").write_bytes(_lines(8))
    (tmp_path / "app.jsonl").write_bytes(_lines(9) + b'{"j":10,"torn')
    (tmp_path / ".app.jsonl.lock").write_bytes(b"")
    (tmp_path / "error.jsonl").write_bytes(_lines(100))
    return tmp_path


def test_a_file_set_reads_oldest_first_across_compressions(file_set_dir: Path) -> None:
    """Rotated files by period and sequence number (10 after 2), then the active file; the
    torn last line of the active file is skipped."""
    assert [r["j"] for r in read_records(file_set_dir / "app.jsonl")] == list(range(10))


def test_a_directory_reads_every_set_by_name(file_set_dir: Path) -> None:
    assert [r["j"] for r in read_records(file_set_dir)] == [*range(10), 100]


def test_one_rotated_file_reads_alone(file_set_dir: Path) -> None:
    assert [r["j"] for r in read_records(file_set_dir / "app_2026-11-29.2.jsonl")] == [6, 7]


def test_several_paths_are_read_in_turn_without_repeats(file_set_dir: Path) -> None:
    paths = [file_set_dir / "error.jsonl", file_set_dir / "app.jsonl", file_set_dir]
    assert [r["j"] for r in read_records(paths)][:2] == [100, 0]
    assert len(files_of(paths)) == 8


def test_a_file_both_plain_and_compressed_is_read_once(tmp_path: Path) -> None:
    """A compression interrupted after its rename but before its unlink."""
    (tmp_path / "app_2026-11-29.jsonl").write_bytes(_lines(0))
    (tmp_path / "app_2026-11-29.jsonl.gz").write_bytes(gzip.compress(_lines(0)))
    assert [r["j"] for r in read_records(tmp_path / "app.jsonl")] == [0]


def test_a_fragment_ended_by_the_next_writer_is_skipped_or_reported(tmp_path: Path) -> None:
    """After a crash the next writer ends the fragment with a newline: the reader skips that
    line (and empty lines), or names it with strict=True."""
    path = tmp_path / "app.jsonl"
    path.write_bytes(_lines(0) + b'{"j":1,"mess\n\n' + _lines(2))
    assert [r["j"] for r in read_records(path)] == [0, 2]
    with pytest.raises(ValueError, match=r"app.jsonl:2: not a JSON object"):
        list(read_records(path, strict=True))
    lines = list(iter_lines(path))
    assert [(line.lineno, line.complete) for line in lines] == [
        (1, True),
        (2, True),
        (3, True),
        (4, True),
    ]


@pytest.mark.parametrize("name", ["nothing.jsonl", "no-such-dir"])
def test_a_path_that_names_nothing_is_reported_not_read_as_empty(tmp_path: Path, name: str) -> None:
    # A mistyped name must not look like an empty log.
    with pytest.warns(RuntimeWarning, match=f"{name}: cannot be read .*; skipped"):
        assert list(read_records([tmp_path / name, tmp_path])) == []
    with pytest.raises(ValueError, match=f"{name}: cannot be read") as raised:
        list(read_records(tmp_path / name, strict=True))
    assert "skipped" not in str(raised.value)


def test_a_rotated_file_compressed_since_it_was_listed_is_read_compressed(tmp_path: Path) -> None:
    listed = tmp_path / "app_2026-01-01.jsonl"
    (tmp_path / "app_2026-01-01.jsonl.gz").write_bytes(gzip.compress(_lines(4, 5)))
    assert [line.data for line in iter_lines([listed])] == [b'{"j":4}', b'{"j":5}']


def test_an_active_file_rotated_while_its_set_is_read_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "app_2026-01-01.jsonl").write_bytes(_lines(0))
    (tmp_path / "app.jsonl").write_bytes(_lines(1, 2))
    records = read_records(tmp_path / "app.jsonl")
    got = [next(records)["j"]]  # the rotated file is being read...
    # ... when the active file is rotated: renamed to its dated name, a new one created.
    (tmp_path / "app.jsonl").rename(tmp_path / "app_2026-01-02.jsonl")
    (tmp_path / "app.jsonl").write_bytes(_lines(3))
    got += [record["j"] for record in records]
    assert got == [0, 1, 2]  # 3 came after the read began


def test_a_set_whose_directory_cannot_be_listed_still_gives_its_active_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory with mode 711, as seen by another user (not reproducible as root, which
    # reads any directory): listing fails, opening a known name works.
    import os

    (tmp_path / "app.jsonl").write_bytes(_lines(1))
    listdir = os.listdir

    def refuse(path: object = ".") -> list[str]:
        if os.fspath(path) == str(tmp_path):  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", str(path))
        return listdir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "listdir", refuse)
    with pytest.warns(RuntimeWarning, match="rotated files cannot be listed") as warned:
        assert [r["j"] for r in read_records(tmp_path / "app.jsonl")] == [1]
    assert "skipped" not in str(warned[0].message)
    with pytest.raises(ValueError, match="rotated files cannot be listed"):
        list(read_records(tmp_path / "app.jsonl", strict=True))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_the_reader_never_raises_on_garbage(data: bytes) -> None:
    """Fuzz: any bytes in a log file give records or nothing, never an exception."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "app.jsonl"
        path.write_bytes(data)
        for record in read_records(path):
            assert isinstance(record, dict)


@pytest.mark.parametrize("name", ["gz", "bz2", "xz", "zip"])
def test_a_corrupt_archive_is_skipped_and_reported(tmp_path: Path, name: str) -> None:
    """One bad rotated file does not hide the others: it is named in a warning, or in a
    ValueError with strict=True."""
    (tmp_path / f"app_2026-11-28.jsonl.{name}").write_bytes(b"not an archive")
    (tmp_path / "app_2026-11-29.jsonl.gz").write_bytes(gzip.compress(_lines(0)))
    (tmp_path / "app.jsonl").write_bytes(_lines(1))
    (tmp_path / "error.jsonl").write_bytes(_lines(2))
    with pytest.warns(RuntimeWarning, match=rf"app_2026-11-28\.jsonl\.{name}: cannot be read"):
        assert [r["j"] for r in read_records(tmp_path)] == [0, 1, 2]
    with pytest.raises(ValueError, match=rf"app_2026-11-28\.jsonl\.{name}: cannot be read"):
        list(read_records(tmp_path, strict=True))


def test_an_archive_cut_short_is_reported_not_passed_over(tmp_path: Path) -> None:
    """A rotated archive is renamed into place only when whole: cut short, it is damaged
    (a full disk, a copy that stopped), and its lost tail is reported like any damage."""
    whole = gzip.compress(b"".join(_lines(0) for _ in range(500)))
    (tmp_path / "app_2026-11-28.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "app.jsonl").write_bytes(_lines(1))
    with pytest.warns(RuntimeWarning, match=r"app_2026-11-28\.jsonl\.gz: cannot be read"):
        assert [r["j"] for r in read_records(tmp_path)][-1] == 1
    with pytest.raises(ValueError, match="EOFError"):
        list(read_records(tmp_path, strict=True))


def test_abandoning_a_read_closes_every_file_even_one_gone_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import servicelog.reader as reader

    (tmp_path / "a.jsonl").write_bytes(_lines(1, 2))
    (tmp_path / "b.jsonl").write_bytes(_lines(3))
    gone = str(tmp_path / "gone.jsonl")  # listed, then rotated away before it was opened
    listed = [str(tmp_path / "a.jsonl"), gone, str(tmp_path / "b.jsonl")]
    monkeypatch.setattr(reader, "files_of", lambda paths, strict=False: listed)
    opened = []
    open_file = reader._open

    def tracked(path: str) -> object:
        stream = open_file(path)
        opened.append(stream)
        return stream

    monkeypatch.setattr(reader, "_open", tracked)
    lines = iter_lines(tmp_path)
    assert next(lines).data == b'{"j":1}'
    lines.close()  # abandoned part-way: no error, nothing left open
    streams = [stream for stream in opened if stream is not None]
    assert len(streams) == 2 and all(stream.closed for stream in streams)
