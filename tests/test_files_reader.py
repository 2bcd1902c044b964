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


def test_a_missing_file_set_reads_as_nothing(tmp_path: Path) -> None:
    assert list(read_records(tmp_path / "nothing.jsonl")) == []


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
