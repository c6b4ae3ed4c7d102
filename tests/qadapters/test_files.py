import os
import stat

import pytest

from qadapters import files


def test_atomic_write_replaces_and_leaves_only_the_file(tmp_path) -> None:
    path = tmp_path / "sub" / "f.bin"
    files.atomic_write(path, b"one")
    files.atomic_write(path, "two")
    assert path.read_bytes() == b"two" and os.listdir(path.parent) == ["f.bin"]


def test_failed_replace_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch) -> None:
    path = tmp_path / "f.txt"
    files.atomic_write(path, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_follow_the_umask(tmp_path, umask) -> None:
    old = os.umask(umask)
    try:
        path = files.atomic_write(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_replaced_file_keeps_its_mode(tmp_path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    path.chmod(0o640)
    files.atomic_write(path, "y")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_missing_directory_is_an_error_when_parents_are_not_made(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="expected an existing directory"):
        files.atomic_write(tmp_path / "nope" / "f.txt", "x", make_parents=False)


def test_write_json_round_trips(tmp_path) -> None:
    path = files.write_json(tmp_path / "r.json", {"a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
