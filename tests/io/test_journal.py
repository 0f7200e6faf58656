"""The label journal: whole records only, a torn last line cut, nothing lost to a kill."""

import pytest

from ovdet.io.journal import Journal, read_journal


def test_a_torn_last_line_is_dropped_and_cut_before_appending(tmp_path):
    path = tmp_path / "records.jsonl"
    with Journal(path) as j:
        j.write({"key": "a"})
        j.write({"key": "b"})
    assert read_journal(path) == [{"key": "a"}, {"key": "b"}]
    with open(path, "a") as f:
        f.write('{"key": "c", "bo')  # what a SIGKILL inside a write leaves
    assert read_journal(path) == [{"key": "a"}, {"key": "b"}]
    with Journal(path) as j:
        j.write({"key": "c"})
    assert read_journal(path) == [{"key": "a"}, {"key": "b"}, {"key": "c"}]
    assert path.read_text().count("\n") == 3
    assert read_journal(tmp_path / "none.jsonl") == []


def test_a_damaged_line_inside_is_an_error(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_journal(path)
