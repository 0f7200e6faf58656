"""The labelling ontology: classes → prompts, negatives and thresholds, and the class map it gives the selection."""

import pytest

from ovdet.engine.ontology import DEFAULT_CONF, make_ontology, parse_conf
from ovdet.errors import VocabularyError


def test_vocabulary_and_class_map_follow_the_ontology():
    o = make_ontology("forklift, worker=person|worker, pallet", "shelf, thermos", ["0.4", "forklift=0.5"])
    assert o.names == ("forklift", "worker", "pallet")
    assert o.vocabulary == ["forklift", "person", "worker", "pallet", "shelf", "thermos"]
    cm = o.class_map
    assert cm.prompt_counts == (1, 2, 1) and cm.num_negatives == 2 and cm.num_prompts == 6
    assert cm.conf == (0.5, 0.4, 0.4) and cm.min_conf == 0.4
    assert make_ontology(["a", "b"]).conf == (DEFAULT_CONF, DEFAULT_CONF)
    assert make_ontology({"car": ["car", "automobile"], "dog": "puppy"}).prompts == (("car", "automobile"), ("puppy",))


def test_ontology_file(tmp_path):
    path = tmp_path / "ontology.yaml"
    path.write_text("classes:\n  forklift: forklift\n  worker: [person, worker]\n  pallet:\nnegative: [shelf]\n"
                    "conf: {default: 0.2, forklift: 0.6}\n")
    o = make_ontology(path, conf="pallet=0.1")
    assert o.names == ("forklift", "worker", "pallet") and o.negatives == ("shelf",)
    assert o.conf == (0.6, 0.2, 0.1)  # file default, file override, then the command line's override
    assert make_ontology(str(path), conf=0.5).conf == (0.6, 0.5, 0.5)  # --conf's default wins over the file's
    plain = tmp_path / "plain.yml"
    plain.write_text("car: [car, automobile]\ndog:\ncat: cat|kitten\n")  # the --classes syntax in a value too
    assert make_ontology(plain).vocabulary == ["car", "automobile", "dog", "cat", "kitten"]
    text = tmp_path / "classes.txt"
    text.write_text("# a class file\ncar=car|automobile\ndog\n")
    assert make_ontology(text).names == ("car", "dog")


@pytest.mark.parametrize(
    "classes, negative, conf, message",
    [
        ("", None, None, "empty"),
        ("car, Car", None, None, "duplicate classes"),
        ("car=car|automobile, truck=automobile", None, None, "belongs to both 'car' and 'truck'"),
        ("car=car|car", None, None, "lists the prompt 'car' twice"),
        ("car, dog", "dog", None, "also a prompt of 'dog'"),
        ("car", None, "truck=0.5", "'truck', which is not a class"),
        ("car", None, "1.5", r"threshold in \[0, 1\]"),
        ("car", None, "car=x", r"threshold in \[0, 1\]"),
        ("car", None, ["car=0.2", "car=0.3"], "once"),
    ],
)
def test_bad_ontologies_name_the_problem(classes, negative, conf, message):
    with pytest.raises(VocabularyError, match=message):
        make_ontology(classes, negative, conf)


def test_ontology_file_mistakes_are_errors_not_classes(tmp_path):
    with pytest.raises(VocabularyError, match="does not exist"):  # a typo in the path was a class "ontolgy.yaml"
        make_ontology(str(tmp_path / "ontolgy.yaml"))
    odd = tmp_path / "odd.yaml"
    odd.write_text("yes: [sure]\n1: one\n")  # YAML 1.1: True and 1, one key in a Python dict
    with pytest.raises(VocabularyError, match="class names must be text"):
        make_ontology(odd)
    typo = tmp_path / "typo.yaml"
    typo.write_text("classes: {car: [car, automobile]}\nnegatives: [shelf]\n")
    with pytest.raises(VocabularyError, match="unknown key.*negatives"):
        make_ontology(typo)
    # a negative in the file and on the command line (the README's example) is one negative
    both = tmp_path / "both.yaml"
    both.write_text("classes: [car]\nnegative: [shelf, thermos]\n")
    assert make_ontology(both, "shelf, Thermos, box").negatives == ("shelf", "thermos", "box")


def test_conf_values():
    assert parse_conf(None) == (None, {})
    assert parse_conf(0.3) == (0.3, {})
    assert parse_conf(["0.3", "forklift=0.5", "a b = 0.1"]) == (0.3, {"forklift": 0.5, "a b": 0.1})
    assert parse_conf({"default": 0.2, "x": 0.9}) == (0.2, {"x": 0.9})
