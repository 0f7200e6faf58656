import numpy as np
import pytest

from ovdet.errors import VocabularyError
from ovdet.text.tuned import TunedEmbeddings, vocabulary_with_tuned
from ovdet.text.vocabulary import Vocabulary


class CountingEncoder:
    """Deterministic 4-d embeddings per text; records what it was asked to encode."""

    dim = 4

    def __init__(self):
        self.asked: list[str] = []

    def encode(self, texts, *, device=None):
        self.asked += list(texts)
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=4) for t in texts]).astype(np.float32)


def test_table_normalises_rows_and_matches_names_as_class_names_do():
    table = TunedEmbeddings(("red circle", "blue  star"), np.array([[3.0, 0, 0, 4], [0, 2, 0, 0]]))
    assert table.names == ("red circle", "blue star")
    np.testing.assert_array_equal(table.embeddings, np.array([[0.6, 0, 0, 0.8], [0, 1, 0, 0]], np.float32))
    np.testing.assert_array_equal(table.get("RED   Circle"), table.embeddings[0])
    assert table.get("red ring") is None
    with pytest.raises(VocabularyError, match="duplicate"):
        TunedEmbeddings(("red circle", "Red Circle"), np.eye(2, 4))
    with pytest.raises(VocabularyError, match="shape"):
        TunedEmbeddings(("red circle",), np.eye(2, 4))
    with pytest.raises(VocabularyError, match="all-zero"):
        TunedEmbeddings(("red circle",), np.zeros((1, 4)))


def test_merged_takes_the_newer_vector_and_without_drops_names():
    old = TunedEmbeddings(("a", "b"), np.eye(2, 4))
    new = TunedEmbeddings(("B", "c"), np.eye(4)[2:])
    both = old.merged(new)
    assert both.names == ("a", "B", "c")
    np.testing.assert_array_equal(both.get("b"), np.eye(4)[2].astype(np.float32))
    assert old.without(["A"]).names == ("b",) and old.without(["a", "b"]) is None


def test_vocabulary_takes_tuned_vectors_by_name_and_encodes_only_the_others():
    table = TunedEmbeddings(("red circle",), np.array([[0.0, 1, 0, 0]]))
    encoder = CountingEncoder()
    vocab = vocabulary_with_tuned({"blue star": ["blue star", "blue pentagram"], "Red Circle": ["red disc"]}, encoder, table)
    assert vocab.names == ("blue star", "Red Circle") and vocab.prompts[1] == ("red disc",)
    assert encoder.asked == ["blue star", "blue pentagram"]  # the tuned class needs no text encoder
    np.testing.assert_array_equal(vocab.embeddings[1], table.embeddings[0])
    plain = Vocabulary.from_classes({"blue star": ["blue star", "blue pentagram"]}, CountingEncoder())
    np.testing.assert_array_equal(vocab.embeddings[0], plain.embeddings[0])
    # without a table it is exactly Vocabulary.from_classes
    np.testing.assert_array_equal(vocabulary_with_tuned(["blue star"], encoder, None).embeddings,
                                  Vocabulary.from_classes(["blue star"], encoder).embeddings)  # fmt: skip
