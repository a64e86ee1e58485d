"""condense.io: the one atomic writer for files and folders, and the cache root."""
import json
import os
import stat

import numpy as np
import pytest

from condense.io import atomic_write, cache_root, staged_folder, write_json, write_npz, write_text


@pytest.fixture
def umask():
    """Set the process umask for one test and restore the earlier one afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temp_file(tmp_path, error):
    path = tmp_path / "out.txt"
    write_text(str(path), "earlier")

    def half_write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half of the new cont")
        raise error("stop")

    with pytest.raises(error):
        atomic_write(str(path), half_write)
    assert path.read_text() == "earlier"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_a_failed_first_write_leaves_nothing(tmp_path):
    def fail(tmp: str) -> None:
        raise Boom("no")

    with pytest.raises(Boom):
        atomic_write(str(tmp_path / "new.txt"), fail)
    assert os.listdir(tmp_path) == []


def test_atomic_write_returns_the_path_and_creates_the_folder(tmp_path):
    path = str(tmp_path / "a" / "b" / "f.bin")
    assert atomic_write(path, lambda tmp: open(tmp, "wb").write(b"\x00\x01")) == path
    assert open(path, "rb").read() == b"\x00\x01"
    assert os.listdir(tmp_path / "a" / "b") == ["f.bin"]


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    for name, write in [("t.txt", lambda p: write_text(p, "x")), ("j.json", lambda p: write_json(p, {})),
                        ("a.npz", lambda p: write_npz(p, a=np.zeros(2)))]:
        path = str(tmp_path / name)
        write(path)
        assert mode(path) == expected, name
    write_text(str(tmp_path / "t.txt"), "again")  # replacing keeps following the umask
    assert mode(tmp_path / "t.txt") == expected


def test_write_text_and_json_round_trip(tmp_path):
    text = "héllo\nwörld ✓\n"
    assert open(write_text(str(tmp_path / "t.txt"), text), encoding="utf-8").read() == text
    obj = {"b": [1, 2.5, None, True], "a": {"nested": "ü"}}
    path = write_json(str(tmp_path / "o.json"), obj, sort_keys=True)
    raw = open(path, encoding="utf-8").read()
    assert json.loads(raw) == obj and raw.endswith("}\n")
    assert raw.index('"a"') < raw.index('"b"')  # dump options are passed on


@pytest.mark.parametrize("name", ["arrays.npz", "arrays.bin", "arrays"])
def test_write_npz_round_trips_plain_arrays_under_the_exact_name(tmp_path, name):
    arrays = {"f": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
              "i": np.arange(5, dtype=np.int64), "b": np.array([True, False])}
    path = str(tmp_path / name)
    assert write_npz(path, **arrays) == path
    assert os.listdir(tmp_path) == [name]  # no ".npz" appended, no temp file left
    with np.load(path, allow_pickle=False) as back:
        assert sorted(back.files) == sorted(arrays)
        for key, value in arrays.items():
            assert back[key].dtype == value.dtype and np.array_equal(back[key], value)


def test_staged_folder_swaps_a_new_folder_in_whole(tmp_path, umask):
    umask(0o022)
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    (final / "sub").mkdir()
    (final / "sub" / "deep.txt").write_text("old")
    with staged_folder(str(final)) as staging:
        assert os.path.dirname(staging) == str(tmp_path) and os.listdir(staging) == []
        open(os.path.join(staging, "new.txt"), "w").write("new")
        assert sorted(os.listdir(final)) == ["old.txt", "sub"]  # nothing visible before the swap
    assert os.listdir(final) == ["new.txt"] and (final / "new.txt").read_text() == "new"
    assert os.listdir(tmp_path) == ["out"]  # no staging or ".old" folder left behind
    assert mode(final) == 0o755


def test_staged_folder_creates_a_missing_folder(tmp_path):
    final = tmp_path / "parent" / "out"
    with staged_folder(str(final)) as staging:
        open(os.path.join(staging, "f"), "w").write("1")
    assert os.listdir(final) == ["f"] and os.listdir(tmp_path / "parent") == ["out"]


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_a_failed_staged_folder_leaves_the_earlier_folder_untouched(tmp_path, error):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(error):
        with staged_folder(str(final)) as staging:
            open(os.path.join(staging, "new.txt"), "w").write("new")
            raise error("stop")
    assert os.listdir(final) == ["old.txt"] and (final / "old.txt").read_text() == "old"
    assert os.listdir(tmp_path) == ["out"]


def test_cache_root_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    assert cache_root() == str(tmp_path / "cache")
    assert cache_root("datasets", "digits") == os.path.join(str(tmp_path / "cache"), "datasets", "digits")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unset in (monkeypatch.delenv, lambda k: monkeypatch.setenv(k, "")):  # unset or empty: the default
        unset("CONDENSE_CACHE")
        assert cache_root("teachers") == os.path.join(str(tmp_path / "home"), ".cache", "condense", "teachers")
