"""Class lists: one rule for names everywhere (API, CLI, class files), and the ``name=prompt|prompt`` syntax.

The rule: a class name is its text with surrounding whitespace removed and inner runs of whitespace made one space.
Two names are the **same class** when they are equal after that, ignoring case, HTML entities and Unicode width
(``"red circle"``, ``"Red  circle"``, ``"RED CIRCLE"``, ``"ｒｅｄ circle"``): CLIP's tokenizer reads them all as the same
text, so they would be scored as two identical classes and give two boxes on one object. Such duplicates are an
error, in the API and on the command line alike.

On the command line (``--classes``) classes are separated by commas, and a class may name its prompts:
``"car=car|automobile, dog"`` is the class ``car`` embedded as the mean of ``car`` and ``automobile``, plus ``dog``.
A class file (``--classes-file``) has one class per line in the same syntax; blank lines and lines starting with
``#`` are ignored. Stdlib only, so the torch-free runtime shares it.
"""

from __future__ import annotations

import html
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import VocabularyError

__all__ = ["ClassSpec", "clean_name", "class_key", "normalize_classes", "parse_class_list", "read_class_file"]

ClassSpec = Sequence[str] | Mapping[str, Any]  # name -> a prompt, or a list of texts and VisualPrompts


def clean_name(text: str) -> str:
    """``text`` without invisible format characters (zero-width spaces, byte-order marks, directional marks: Unicode
    category Cf), surrounding whitespace removed and inner whitespace runs made one space."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(visible.split())


def class_key(name: str) -> str:
    """What two names must share to be the same class: NFKC form, HTML entities decoded, whitespace collapsed, case
    folded (open_clip's tokenizer cleans text the same way before it lower-cases it)."""
    return clean_name(html.unescape(unicodedata.normalize("NFKC", name))).casefold()


def normalize_classes(classes: ClassSpec) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Check a class list (or a name → prompts mapping) and return ``(names, prompts per class)``.

    Names and prompts are cleaned (:func:`clean_name`); a class given as a plain name has itself as its one prompt. A
    prompt may also be a :class:`~ovdet.prompts.VisualPrompt` (example boxes), alone or beside text prompts.

    Raises:
        VocabularyError: an empty list, a non-string, blank or duplicate name (see the module docstring), a class
            without prompts.
    """
    if isinstance(classes, str):
        raise VocabularyError(
            f"classes must be a list of names, not the string {classes!r}; "
            "write ['person', 'bus'] (the CLI takes --classes 'person,bus')"
        )
    from .prompts import is_visual  # lazily: this module stays stdlib-only to import

    if isinstance(classes, Mapping):
        items = [(name, [prompts] if isinstance(prompts, str) or is_visual(prompts) else
                  list(prompts) if isinstance(prompts, Iterable) else [prompts])
                 for name, prompts in classes.items()]  # fmt: skip  (a number: refused below, as a bad prompt)
    else:
        try:
            items = [(name, [name]) for name in classes]
        except TypeError:
            raise VocabularyError(
                f"classes must be a list of names or a dict name -> prompts, got {type(classes).__name__}"
            ) from None
    if not items:
        raise VocabularyError("the class list is empty; give at least one class name")
    names, prompts = [], []
    for name, texts in items:
        if is_visual(name):
            raise VocabularyError(f"a visual prompt needs a class name: {{'widget': {name!r}}}, not a list of prompts")
        if not isinstance(name, str) or not name.strip():
            raise VocabularyError(f"class names must be non-empty strings, got {name!r}")
        if not texts or not all((isinstance(t, str) and t.strip()) or is_visual(t) for t in texts):
            raise VocabularyError(
                f"class {name!r} needs at least one prompt: a non-empty string or a VisualPrompt, got {texts!r}"
            )
        names.append(clean_name(name))
        prompts.append(tuple(clean_name(t) if isinstance(t, str) else t for t in texts))
    _check_unique(names)
    _check_distinct_prompts(names, prompts)
    return tuple(names), tuple(prompts)


def _check_distinct_prompts(names: Sequence[str], prompts: Sequence[tuple]) -> None:
    """Two classes given the same text prompts get the same embedding: every object would score the same for both,
    and the second would never be reported (``--classes "car=car, auto=car"``). The same error as two equal names."""
    seen: dict[frozenset[str], str] = {}
    for name, texts in zip(names, prompts):
        if not all(isinstance(t, str) for t in texts):
            continue  # visual prompts: examples differ even where records look alike
        key = frozenset(class_key(t) for t in texts)
        if key in seen:
            raise VocabularyError(
                f"duplicate classes: {seen[key]!r} and {name!r} have the same prompts ({', '.join(sorted(key))}), so "
                "the text encoder gives them one embedding and only the first would ever be reported; give each class "
                "prompts of its own, or make them one class"
            )
        seen[key] = name


def _check_unique(names: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    dupes: list[str] = []
    for name in names:
        key = class_key(name)
        if key in seen:
            dupes.append(f"{seen[key]!r} and {name!r}" if seen[key] != name else f"{name!r} twice")
        seen.setdefault(key, name)
    if dupes:
        raise VocabularyError(
            f"duplicate classes: {'; '.join(dupes)} (names that differ only in case or spacing are one class to the "
            "text encoder); give each class once, with several prompts if you like: {'car': ['car', 'automobile']} "
            'or --classes "car=car|automobile"'
        )


def _parse_entry(entry: str, where: str) -> tuple[str, list[str]]:
    name, sep, rest = entry.partition("=")
    name = clean_name(name)
    if not sep:
        return name, [name]
    prompts = [clean_name(p) for p in rest.split("|")]
    if not name or not all(prompts):
        raise VocabularyError(
            f"{where}: {entry.strip()!r} is not NAME=PROMPT|PROMPT...; e.g. \"car=car|automobile\" (no empty name "
            "or prompt)"
        )
    return name, prompts


def _collect(entries: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    _check_unique([name for name, _ in entries])  # before the dict below would drop exact repeats
    return dict(entries)


def parse_class_list(text: str) -> dict[str, list[str]]:
    """Parse ``--classes``: ``"person, car=car|automobile"`` → ``{"person": ["person"], "car": ["car", "automobile"]}``.

    Raises:
        VocabularyError: no class, a malformed ``NAME=PROMPTS`` entry, or duplicate classes.
    """
    entries = [_parse_entry(part, "--classes") for part in text.split(",") if part.strip()]
    if not entries:
        raise VocabularyError('the class list is empty; pass --classes "person, bus" or --classes-file FILE')
    return _collect(entries)


def _strip_comment(line: str) -> str:
    """A line without its comment: from a ``#`` that starts the line or follows whitespace (``blue ring  # the
    donut one``); a ``#`` inside a word (``c#``) is kept."""
    if line.lstrip().startswith("#"):
        return ""
    cut = min((i for i in (line.find(" #"), line.find("\t#")) if i >= 0), default=-1)
    return line if cut < 0 else line[:cut]


def read_class_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a class file (UTF-8, a BOM is fine): one class per line (``name`` or ``name=prompt|prompt``); blank
    lines and ``#`` comments (a line starting with ``#``, or `` #`` after a class) are ignored.

    Raises:
        VocabularyError: a missing or unreadable file, no class in it, a malformed line, or duplicate classes.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM (Windows Notepad) is not text
    except FileNotFoundError:
        raise VocabularyError(f"classes file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VocabularyError(f"cannot read classes file {path}: {e}; it must be UTF-8 text, one class per line") from e
    entries = [
        _parse_entry(text, f"{path}, line {i}")
        for i, line in enumerate(lines, 1)
        if (text := _strip_comment(line)).strip()
    ]
    if not entries:
        raise VocabularyError(f"classes file {path} names no class (one per line; '#' starts a comment)")
    return _collect(entries)
