"""The write rules: nothing of the user's is replaced, a failure leaves no temporary file, outputs are checked first."""

from __future__ import annotations

import contextlib
import errno
import json
import os

import pytest

import ovdet
from ovdet.errors import OutputError
from ovdet.fileio import JsonArrayWriter, atomic_folder, check_output_dir, check_output_file, prepare_output_dir


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def model():
    return ovdet.load()


def test_saving_over_a_folder_of_the_users_touches_nothing(model, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("mine")
    with pytest.raises(OutputError, match=r"holds files ovdet did not write \(keep\)"):
        model.save(tmp_path / "d")
    assert listing(tmp_path / "d") == ["keep"] and listing(tmp_path) == ["d"]  # and no temporary folder


def test_a_saved_model_or_an_empty_folder_is_replaced(model, tmp_path):
    (tmp_path / "empty").mkdir()
    model.save(tmp_path / "empty")
    model.save(tmp_path / "empty")  # now a model folder: replaced as a whole
    assert listing(tmp_path / "empty") == ["config.json", "model.safetensors"]
    (tmp_path / "empty" / "notes.txt").write_text("mine")  # a model folder with the user's file in it: not ovdet's
    with pytest.raises(OutputError, match="notes.txt"):
        model.save(tmp_path / "empty")
    model.save(tmp_path / "empty", overwrite=True)
    assert listing(tmp_path / "empty") == ["config.json", "model.safetensors"]
    assert listing(tmp_path) == ["empty"]


def test_saving_onto_a_file_is_refused(model, tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(OutputError, match="is a file"):
        model.save(tmp_path / "f")
    assert (tmp_path / "f").read_text() == "mine" and listing(tmp_path) == ["f"]


def test_saving_into_the_working_directory(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").write_text("mine")
    with pytest.raises(OutputError, match="keep"):
        model.save(".")
    assert listing(tmp_path) == ["keep"]  # no "..XXXX.tmp" left behind
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    model.save(".")
    model.save(".")  # replacing the folder the process stands in: it still stands in it afterwards
    assert os.getcwd() == str(tmp_path / "here") and listing(tmp_path / "here") == ["config.json", "model.safetensors"]
    assert ovdet.load(".").names == model.names and listing(tmp_path) == ["here", "keep"]


def test_a_failing_save_leaves_the_old_folder_and_no_temporary(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / ".ovdet.json").write_text(json.dumps({"kind": "test"}))
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(target, owned=lambda p: (p / ".ovdet.json").exists()) as tmp:
            (tmp / "half").write_text("x")
            raise KeyboardInterrupt  # Ctrl-C in the middle
    assert listing(tmp_path) == ["out"] and listing(target) == [".ovdet.json"]


def test_output_checks_name_the_problem(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path / "dir")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_file(tmp_path / "file" / "out.json")
    with pytest.raises(OutputError, match="is a file; give a folder"):
        check_output_dir(tmp_path / "file")
    assert check_output_file(tmp_path / "file") == tmp_path / "file"  # a file the user names is replaced


def test_prepare_output_dir_marks_and_reuses_its_own(tmp_path):
    out = prepare_output_dir(tmp_path / "o", kind="predict")
    (out / "a.jpg").write_bytes(b"x")
    assert prepare_output_dir(tmp_path / "o", kind="predict") == out  # an earlier run's folder: reused
    with pytest.raises(OutputError):
        prepare_output_dir(tmp_path / "o", kind="eval")  # another kind's folder is not this one's


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: tests/cli/test_reliability.py pretends instead")
def test_a_read_only_folder_is_refused_before_work(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(OutputError, match="not writable"):
        check_output_file(tmp_path / "ro" / "x.json")


def test_json_array_is_valid_at_every_stop(tmp_path):
    path = tmp_path / "d.json"
    with pytest.raises(RuntimeError):
        with JsonArrayWriter(path) as writer:
            writer.write({"a": 1})
            writer.write({"b": "ü"})
            raise RuntimeError("stopped")
    assert json.loads(path.read_text()) == [{"a": 1}, {"b": "ü"}] and listing(tmp_path) == ["d.json"]
    with JsonArrayWriter(path):
        pass
    assert json.loads(path.read_text()) == []


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Files of this process cannot grow past ``limit`` bytes (as on a disk that fills up): a write stops part-way,
    then fails (EFBIG), as a write to a full disk does (ENOSPC)."""
    import resource
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize("kind", ["array", "lines"])
def test_a_record_cut_by_a_full_disk_is_taken_back_so_the_file_stays_valid(tmp_path, kind):
    from ovdet.fileio import JsonLinesWriter

    path = tmp_path / "d.json"
    writer = JsonArrayWriter(path) if kind == "array" else JsonLinesWriter(path)
    writer.write({"a": 1})
    written = os.path.getsize(next(tmp_path.iterdir()))  # the temporary file, or the lines file itself
    with file_size_limit(written + 20):  # room for the array's closing bracket, not for the next record
        with pytest.raises(OSError) as error:
            writer.write({"b": "x" * 100})
        writer.close()
    assert error.value.errno == errno.EFBIG
    text = path.read_text()
    records = json.loads(text) if kind == "array" else [json.loads(line) for line in text.splitlines()]
    assert records == [{"a": 1}] and listing(tmp_path) == ["d.json"]
