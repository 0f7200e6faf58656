import numpy as np
import pytest
import torch

from ovdet.errors import VocabularyError
from ovdet.text import Vocabulary


def test_synonyms_are_ensembled_as_the_normalised_mean(tiny_encoder, cache_dir):
    vocab = Vocabulary.from_classes({"car": ["car", "automobile"], "dog": ["dog"]}, tiny_encoder)
    emb = tiny_encoder.encode(["car", "automobile", "dog"])
    expected = torch.nn.functional.normalize(emb[:2].mean(0), dim=0)
    assert isinstance(vocab.embeddings, np.ndarray) and vocab.embeddings.dtype == np.float32
    torch.testing.assert_close(torch.from_numpy(vocab.embeddings[0]), expected)
    torch.testing.assert_close(torch.from_numpy(vocab.embeddings[1]), emb[2])
    assert vocab.names == ("car", "dog") and vocab.prompts == (("car", "automobile"), ("dog",))


@pytest.mark.parametrize(
    "classes, message",
    [
        ([], "empty"),
        ("person,bus", "not the string"),
        (["a", "a"], "duplicate"),
        (["ok", ""], "non-empty"),
        ({"a": []}, "at least one"),
        (42, "list of names"),
    ],
)
def test_bad_class_lists_are_rejected(tiny_encoder, classes, message):
    with pytest.raises(VocabularyError, match=message):
        Vocabulary.from_classes(classes, tiny_encoder)


def test_ready_embeddings_are_checked_and_normalised():
    vocab = Vocabulary.from_embeddings(["a", "b"], np.full((2, 8), 3.0), 8)
    np.testing.assert_allclose(np.linalg.norm(vocab.embeddings, axis=-1), 1, rtol=1e-6)
    cpu_tensor = Vocabulary.from_embeddings(["a", "b"], torch.full((2, 8), 3.0), 8)  # tensors are taken as well
    np.testing.assert_array_equal(cpu_tensor.embeddings, vocab.embeddings)
    with pytest.raises(ValueError, match=r"expected \(2, 8\)"):
        Vocabulary.from_embeddings(["a", "b"], np.ones((3, 8)), 8)
    with pytest.raises(VocabularyError, match="NaN"):
        Vocabulary.from_embeddings(["a"], np.full((1, 8), np.nan), 8)


def test_unit_rows_pass_through_bit_for_bit_and_others_are_normalised():
    """Vectors already unit length (saved vocabularies, tuned embeddings, rows handed back by a user) are not
    normalised again: doing so moves the last bit of about a third of them, differently on different CPUs."""
    from ovdet.text.tuned import TunedEmbeddings

    torch.manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(300, 512), dim=-1).numpy()
    names = [f"class {i}" for i in range(len(unit))]
    again = Vocabulary.from_embeddings(names, unit, dim=512).embeddings
    np.testing.assert_array_equal(again, unit)
    tuned = TunedEmbeddings(tuple(names), unit)
    np.testing.assert_array_equal(TunedEmbeddings(tuned.names, tuned.embeddings).embeddings, unit)
    scaled = Vocabulary.from_embeddings(names[:2], unit[:2] * np.float32(1.001), dim=512).embeddings
    np.testing.assert_allclose(np.linalg.norm(scaled.astype(np.float64), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(scaled, unit[:2], atol=1e-6)
