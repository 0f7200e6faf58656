"""One rule for class names: API and CLI agree on cleaning, duplicates, the NAME=PROMPT|PROMPT syntax and files."""

from __future__ import annotations

import pytest

from ovdet.classes import normalize_classes, parse_class_list, read_class_file
from ovdet.errors import VocabularyError


def test_names_differing_in_case_spacing_or_width_are_one_class():
    for names in (["red circle", "Red circle", "RED CIRCLE"], ["red circle", "red  circle "], ["ｒｅｄ", "red"],
                  ["fish &amp; chips", "fish & chips"]):  # fmt: skip
        with pytest.raises(VocabularyError, match="duplicate classes"):
            normalize_classes(names)
    assert normalize_classes(["  red   circle ", "blue ring"])[0] == ("red circle", "blue ring")


def test_api_and_cli_give_the_same_error_for_duplicates(tiny_model, cache_dir):
    with pytest.raises(VocabularyError, match="'red circle' twice"):
        parse_class_list("red circle, red circle, star")
    with pytest.raises(VocabularyError, match="'red circle' twice"):
        tiny_model.set_classes(["red circle", "red circle", "star"])
    with pytest.raises(VocabularyError, match="'red circle' and 'RED CIRCLE'"):
        tiny_model.set_classes(["red circle", "RED CIRCLE"])


def test_cli_syntax_gives_several_prompts_to_a_class():
    assert parse_class_list("car=car|automobile, dog") == {"car": ["car", "automobile"], "dog": ["dog"]}
    assert parse_class_list(" worker = person | worker ,pallet") == {"worker": ["person", "worker"], "pallet": ["pallet"]}
    for bad in ("car=", "=car", "car=a||b"):
        with pytest.raises(VocabularyError, match="NAME=PROMPT"):
            parse_class_list(bad)
    with pytest.raises(VocabularyError, match="empty"):
        parse_class_list(" , ")


def test_class_files_skip_comments_and_blank_lines(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# my classes\n\nperson\n  # indented comment\ncar=car|automobile\n", encoding="utf-8")
    assert read_class_file(path) == {"person": ["person"], "car": ["car", "automobile"]}
    path.write_text("# nothing\n\n")
    with pytest.raises(VocabularyError, match="names no class"):
        read_class_file(path)
    with pytest.raises(VocabularyError, match="does not exist"):
        read_class_file(tmp_path / "missing.txt")


def test_a_prompt_longer_than_the_context_is_named(tiny_encoder, caplog):
    long = "a " + "very " * 80 + "red circle"
    tiny_encoder.encode([long, "short"])
    assert any("is cut to its first 75" in r.message and "very very" in r.message for r in caplog.records)


def test_class_files_from_windows_and_inline_comments(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("red circle\r\nblue ring  # the donut one\r\nc#\r\n", encoding="utf-8-sig")  # BOM, CRLF
    assert read_class_file(path) == {"red circle": ["red circle"], "blue ring": ["blue ring"], "c#": ["c#"]}
    with pytest.raises(VocabularyError, match="duplicate"):
        normalize_classes(["red circle", "red\u200b circle"])  # a zero-width space does not make a new class


@pytest.mark.parametrize(
    "classes",
    [{"r": "red circle", "s": "Red  Circle"}, ["red circle", "s=red circle"], {"a": ["x", "y"], "b": ["y", "x", "y"]}],
)
def test_two_classes_with_the_same_prompts_are_duplicates(classes):
    # one embedding for both: every object scores the same for each, and the second class would never be reported
    if isinstance(classes, list):
        classes = parse_class_list(", ".join(classes))
    with pytest.raises(VocabularyError, match="have the same prompts"):
        normalize_classes(classes)
    assert normalize_classes({"a": ["x", "y"], "b": ["y"]})[1] == (("x", "y"), ("y",))  # a shared prompt is fine
