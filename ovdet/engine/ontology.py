"""The labelling ontology: output classes, the prompts that find each, negative prompts and per-class thresholds.

An ontology maps each **output class** (what the dataset calls it) to one or more **prompts** (what the text encoder
reads): ``"forklift, worker=person|worker, pallet"`` — the syntax of :mod:`ovdet.classes` — or a YAML file::

    classes:                     # class: prompt, class: [prompts] or class: prompt|prompt; bare: its own prompt
      forklift: forklift
      worker: [person, worker]
      pallet:
    negative: [shelf, thermos]   # scored, never written: they take confusable objects away from the classes
    conf: {forklift: 0.5}        # per-class thresholds over the default (--conf)

(a YAML mapping without these keys is the ``classes`` mapping itself; a YAML list is a list of class names).

Every prompt — of every class, and every negative — is its own vocabulary entry, so all are scored in one forward
pass, and :class:`~ovdet.runtime.postprocess.ClassMap` merges a class's prompts per anchor before NMS: one box per
object, whichever synonym scored it best (the duplicate boxes of autodistill #22 and roboflow/notebooks #160 cannot
happen). A prompt may belong to one class only, and no negative may also be a class's prompt (a negative given
twice, in the file and ``--negative``, is one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..classes import class_key, clean_name, normalize_classes, parse_class_list, read_class_file
from ..errors import VocabularyError
from ..runtime.postprocess import ClassMap

__all__ = ["Ontology", "make_ontology", "read_ontology_file", "parse_conf"]

DEFAULT_CONF = 0.3  # labels are reviewed or trained on: fewer false positives than predict's 0.25 (the value)


@dataclass(frozen=True)
class Ontology:
    """Output classes, their prompts, negatives and thresholds (see the module docstring).

    Attributes:
        names: Output class names, in class-id order.
        prompts: Each class's prompts (at least one).
        negatives: Negative prompts: scored, never written.
        conf: Each class's score threshold, in [0, 1].
    """

    names: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    negatives: tuple[str, ...]
    conf: tuple[float, ...]

    @property
    def vocabulary(self) -> list[str]:
        """Every prompt, in the order :attr:`class_map` reads them: each class's prompts, then the negatives."""
        return [p for group in self.prompts for p in group] + list(self.negatives)

    @property
    def class_map(self) -> ClassMap:
        """The selection's view of this ontology (:class:`~ovdet.runtime.postprocess.ClassMap`)."""
        return ClassMap(self.names, tuple(len(p) for p in self.prompts), len(self.negatives), self.conf)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (recorded in a labelled folder, compared on ``--resume``)."""
        return {"classes": {n: list(p) for n, p in zip(self.names, self.prompts)}, "negative": list(self.negatives),
                "conf": dict(zip(self.names, self.conf))}  # fmt: skip


ConfValues = float | str | Sequence[float | str] | Mapping[str, float] | None


def parse_conf(values: ConfValues) -> tuple[float | None, dict[str, float]]:
    """``--conf`` values → ``(default or None, {class: threshold})``: ``0.3`` sets the default, ``"forklift=0.5"``
    one class's threshold; a mapping gives per-class values (its ``"default"`` key, if any, the default).

    Raises:
        VocabularyError: a value that is not a number in [0, 1], or a class given twice.
    """
    if values is None:
        return None, {}
    if isinstance(values, Mapping):
        items: list[float | str] = [f"{k}={v}" if k != "default" else v for k, v in values.items()]
    elif isinstance(values, (int, float, str)):
        items = [values]
    else:
        items = list(values)
    default: float | None = None
    per_class: dict[str, float] = {}
    for item in items:
        name, sep, number = str(item).rpartition("=") if isinstance(item, str) else ("", "", item)
        try:
            value = float(number)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 <= value <= 1:
            raise VocabularyError(f"--conf {item!r}: expected a threshold in [0, 1], or CLASS=THRESHOLD (e.g. 0.3 or "
                                  "forklift=0.5)")  # fmt: skip
        if not sep:
            default = value
            continue
        name = clean_name(name)
        if not name or class_key(name) in {class_key(n) for n in per_class}:
            raise VocabularyError(f"--conf {item!r}: give each class's threshold once, as CLASS=THRESHOLD")
        per_class[name] = value
    return default, per_class


def _as_prompts(name: str, value: Any, where: str) -> list[str]:
    if value is None:
        return [name]
    if isinstance(value, str):  # "person|worker", as --classes writes several prompts (not one prompt with a |)
        return [p.strip() for p in value.split("|")]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise VocabularyError(f"{where}: class {name!r} must map to a prompt or a list of prompts, got {value!r}")


def read_ontology_file(path: str | os.PathLike) -> tuple[dict[str, list[str]], list[str], dict[str, float]]:
    """Read an ontology file: YAML (``.yaml``/``.yml``, see the module docstring) or a class file (one class per
    line, :func:`ovdet.classes.read_class_file`). Returns ``(classes, negatives, per-class thresholds)``.

    Raises:
        VocabularyError: a missing or malformed file.
    """
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        return read_class_file(path), [], {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise VocabularyError(f"ontology file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise VocabularyError(f"cannot read ontology file {path}: {e}") from e
    negatives: list[str] = []
    conf: dict[str, float] = {}
    keys = {"classes", "negative", "conf"}
    if isinstance(data, dict) and isinstance(data.get("classes"), (dict, list)) and not set(data) <= keys:
        unknown = ", ".join(sorted(map(str, set(data) - keys)))
        raise VocabularyError(f"{path}: unknown key(s) {unknown}; an ontology file has 'classes' and optionally "
                              "'negative' and 'conf'")  # fmt: skip
    if isinstance(data, dict) and "classes" in data and set(data) <= keys:
        raw_neg = data.get("negative") or []
        if isinstance(raw_neg, str):
            raw_neg = [p for p in raw_neg.split(",") if p.strip()]
        if not isinstance(raw_neg, list) or not all(isinstance(p, str) for p in raw_neg):
            raise VocabularyError(f"{path}: 'negative' must be a list of prompts")
        negatives = list(raw_neg)
        if data.get("conf") is not None:
            if not isinstance(data["conf"], dict):
                raise VocabularyError(f"{path}: 'conf' must map class names to thresholds, e.g. {{forklift: 0.5}}")
            default, conf = parse_conf(data["conf"])
            if default is not None:
                conf["default"] = default
        data = data["classes"]
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return {n: [n] for n in data}, negatives, conf
    if not isinstance(data, dict) or not data:
        raise VocabularyError(f"{path}: expected a mapping class -> prompts (or 'classes:', 'negative:', 'conf:')")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:  # YAML reads yes/no/on/off as booleans and 1 as a number: two such keys can even collapse into one
        raise VocabularyError(f"{path}: class names must be text, got {', '.join(map(repr, odd))}; quote them "
                              "(\"yes\": ..., \"1\": ...)")  # fmt: skip
    return {str(k): _as_prompts(str(k), v, str(path)) for k, v in data.items()}, negatives, conf


def make_ontology(
    classes: str | os.PathLike | Sequence[str] | Mapping[str, str | Sequence[str]],
    negative: str | Sequence[str] | None = None,
    conf: ConfValues = None,
) -> Ontology:
    """Build and check an ontology.

    Args:
        classes: ``"forklift, worker=person|worker"`` (the ``--classes`` syntax), a path to a YAML or class file, a
            list of names, or a mapping name → prompt(s).
        negative: Negative prompts: ``"shelf, thermos"`` or a list.
        conf: The default threshold and/or per-class ones (see :func:`parse_conf`); the file's thresholds apply
            first, these over them. Default :data:`DEFAULT_CONF`.

    Raises:
        VocabularyError: no class, a malformed entry, duplicate classes, a prompt of two classes, a negative that is
            also a class's prompt, or a threshold for a class the ontology does not have.
    """
    negatives: list[str] = []
    file_conf: dict[str, float] = {}
    if isinstance(classes, os.PathLike) or (isinstance(classes, str) and Path(classes).suffix.lower() in
                                            (".yaml", ".yml", ".txt") and not any(c in classes for c in ",=|")):
        spec, negatives, file_conf = read_ontology_file(classes)  # a missing file is an error, not a class name
    elif isinstance(classes, str):
        if not classes.replace(",", "").strip():
            raise VocabularyError('the class list is empty; pass --classes "forklift, worker=person|worker" or an '
                                  "ontology file (--classes ontology.yaml)")  # fmt: skip
        spec = parse_class_list(classes)
    else:
        spec = classes
    names, prompts = normalize_classes(spec)
    if isinstance(negative, str):
        negatives += [p for p in negative.split(",") if p.strip()]
    elif negative is not None:
        negatives += list(negative)
    negatives = [clean_name(p) for p in negatives]
    if any(not p for p in negatives):
        raise VocabularyError("negative prompts must be non-empty text, e.g. --negative \"shelf, thermos\"")
    # a negative given twice (in the ontology file and --negative, say) is one negative
    unique: dict[str, str] = {}
    for prompt in negatives:
        unique.setdefault(class_key(prompt), prompt)
    negatives = list(unique.values())
    owner: dict[str, str] = {}
    for name, group in zip(names, prompts):
        for prompt in group:
            key = class_key(prompt)
            if key in owner and owner[key] != name:
                raise VocabularyError(f"the prompt {prompt!r} belongs to both {owner[key]!r} and {name!r}; give each "
                                      "prompt to one class")  # fmt: skip
            if key in owner:
                raise VocabularyError(f"class {name!r} lists the prompt {prompt!r} twice")
            owner[key] = name
    for prompt in negatives:
        key = class_key(prompt)
        if key in owner:
            raise VocabularyError(f"the negative {prompt!r} is also a prompt of {owner[key]!r}; a prompt is either a "
                                  "class's or a negative")  # fmt: skip
    file_default = file_conf.pop("default", None)
    default, per_class = parse_conf(conf)
    thresholds = dict.fromkeys(names, default if default is not None else file_default if file_default is not None
                               else DEFAULT_CONF)  # fmt: skip
    by_key = {class_key(n): n for n in names}
    for source in (file_conf, per_class):
        for name, value in source.items():
            if class_key(name) not in by_key:
                raise VocabularyError(f"a threshold is given for {name!r}, which is not a class (classes: "
                                      f"{', '.join(names)})")  # fmt: skip
            thresholds[by_key[class_key(name)]] = value
    return Ontology(names, prompts, tuple(negatives), tuple(thresholds[n] for n in names))
