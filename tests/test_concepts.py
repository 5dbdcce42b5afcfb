"""Concept sets and unit masks: every constructor builds the same signature table.

A signature is the set of concepts a position belongs to. Whatever the input format (dense,
bit-packed, sparse, label rows, label rows in chunks), a :class:`ConceptSet` must group the
positions into exactly the distinct concept sets, count them, and give back every concept's
mask; :class:`UnitMasks` built from any format must give the same per-signature counts.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import logiclens.core.concepts as concepts_module
from logiclens import And, Concept, ConceptSet, Neighbors, Not, Or, UnitMasks
from logiclens.core.io import InputFileError
from logiclens.core.signatures import SignatureIndex

HYPOTHESIS = settings(max_examples=80, deadline=None)


# ------------------------------------------------------------------------ inputs
@st.composite
def dense_masks(draw, max_k: int = 10, max_n: int = 200):
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = np.zeros((k, n), bool)
    for i in range(k):
        kind = rng.integers(0, 6)
        if kind == 1:
            masks[i] = True
        elif kind == 2 and i > 0:
            masks[i] = masks[rng.integers(0, i)]
        elif kind >= 3:
            masks[i] = rng.random(n) < rng.choice([0.05, 0.3, 0.5, 0.9])
    # repeat a few columns so that several positions share a signature
    if draw(st.booleans()):
        masks = masks[:, rng.integers(0, n, size=n)]
    return masks


def label_rows(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per position, its concepts in random order with random repeats, padded with -1."""
    n = masks.shape[1]
    rows = []
    for p in range(n):
        ids = list(np.flatnonzero(masks[:, p]))
        ids += list(rng.choice(ids, size=rng.integers(0, 3))) if ids else []
        ids += [-1] * int(rng.integers(0, 3))
        rng.shuffle(ids)
        rows.append(ids)
    width = max(1, max(len(r) for r in rows))
    out = np.full((n, width), -1, np.int64)
    for p, ids in enumerate(rows):
        out[p, : len(ids)] = ids
    return out


def random_chunks(rows: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Split rows at random points (empty chunks included); 1-column chunks sometimes 1-D."""
    cuts = np.sort(rng.integers(0, len(rows) + 1, size=rng.integers(0, 5)))
    chunks = np.split(rows, cuts)
    out = []
    for chunk in chunks:
        # each chunk may carry its own padding width
        chunk = np.concatenate([chunk, np.full((len(chunk), int(rng.integers(0, 2))), -1)], axis=1)
        if chunk.shape[1] == 1 and rng.random() < 0.5:
            chunk = chunk[:, 0]
        out.append(chunk.astype([np.int16, np.int32, np.int64][rng.integers(0, 3)]))
    return out


def all_constructors(
    masks: np.ndarray, names: list[str], rng: np.random.Generator
) -> tuple[dict[str, ConceptSet], sp.csr_array]:
    n = masks.shape[1]
    packed = np.packbits(masks, axis=1, bitorder="little")  # padding bits set are rejected: tests/test_ingest.py
    with_zeros = sp.csr_array(masks.astype(np.int8))
    if with_zeros.nnz:
        with_zeros.data[0] = 0  # an explicit zero is not a member
    rows = label_rows(masks, rng)
    return {
        "dense": ConceptSet.from_dense(masks, names),
        "dense_int": ConceptSet.from_dense(masks.astype(np.uint8), names),
        "packed": ConceptSet.from_packed(packed, n, names),
        "sparse": ConceptSet.from_sparse(sp.csr_array(masks), names),
        "sparse_coo_matrix": ConceptSet.from_sparse(sp.coo_matrix(masks), names),
        "labels": ConceptSet.from_labels(rows, names),
        "label_chunks": ConceptSet.from_label_chunks(random_chunks(rows, rng), names),
    }, with_zeros


def signature_table(concepts: ConceptSet) -> dict[frozenset[int], int]:
    """Signature table as {concept set: number of positions}, independent of signature order."""
    incidence = concepts.signature_concepts.toarray()
    table = {frozenset(np.flatnonzero(row).tolist()): int(w) for row, w in zip(incidence, concepts.signature_weights)}
    assert len(table) == concepts.n_signatures, "two signatures hold the same concept set"
    return table


def check_matches_masks(concepts: ConceptSet, masks: np.ndarray, names: list[str]) -> None:
    k, n = masks.shape
    assert concepts.names == tuple(names)
    assert concepts.n_concepts == k
    assert concepts.n_positions == n
    np.testing.assert_array_equal(concepts.sizes, masks.sum(axis=1))
    for i, name in enumerate(names):
        np.testing.assert_array_equal(concepts.mask(Concept(name)), masks[i])
        assert concepts.count(Concept(name)) == masks[i].sum()
    # every position's signature holds exactly the position's concepts
    incidence = concepts.signature_concepts.toarray()
    assert concepts.position_signatures is not None
    np.testing.assert_array_equal(incidence[concepts.position_signatures], masks.T)
    np.testing.assert_array_equal(
        np.bincount(concepts.position_signatures, minlength=concepts.n_signatures), concepts.signature_weights
    )
    assert (concepts.signature_weights > 0).all()
    assert concepts.n_signatures == len(np.unique(masks.T, axis=0))
    signature_table(concepts)


# ------------------------------------------------------------------------ constructors
@HYPOTHESIS
@given(masks=dense_masks(), seed=st.integers(0, 2**32 - 1))
def test_constructors_agree(masks, seed):
    rng = np.random.default_rng(seed)
    names = [f"concept {i}" for i in range(len(masks))]
    built, with_zeros = all_constructors(masks, names, rng)
    expected = signature_table(built["dense"])
    for label, concepts in built.items():
        check_matches_masks(concepts, masks, names)
        assert signature_table(concepts) == expected, label
    zeroed = ConceptSet.from_sparse(with_zeros, names)
    check_matches_masks(zeroed, with_zeros.toarray() != 0, names)


@settings(max_examples=40, deadline=None)
@given(masks=dense_masks(max_k=6, max_n=60), seed=st.integers(0, 2**32 - 1), chunk=st.integers(1, 40))
def test_constructors_agree_across_small_chunks(masks, seed, chunk):
    """The dense, packed and sparse readers stream positions in chunks; make the chunks tiny."""
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(len(masks))]
    expected = signature_table(ConceptSet.from_dense(masks, names))
    # dense and packed readers take _DENSE_CHUNK_ELEMENTS // K positions at a time (packed:
    # rounded down to a multiple of 8), the sparse reader _DENSE_CHUNK_ELEMENTS // 64
    with mock.patch.object(concepts_module, "_DENSE_CHUNK_ELEMENTS", chunk * len(masks)):
        built, _ = all_constructors(masks, names, rng)
    with mock.patch.object(concepts_module, "_DENSE_CHUNK_ELEMENTS", chunk * 64):
        built["sparse_small_chunks"] = ConceptSet.from_sparse(sp.csr_array(masks), names)
    for label, concepts in built.items():
        check_matches_masks(concepts, masks, names)
        assert signature_table(concepts) == expected, label


class _CollidingIndex(SignatureIndex):
    """A signature index whose hash keys collide all the time, forcing the exact fallback."""

    def __init__(self, n_concepts: int) -> None:
        super().__init__(n_concepts)
        self._keys[1:] = 1 + np.arange(n_concepts, dtype=np.uint64) % 2


@settings(max_examples=40, deadline=None)
@given(masks=dense_masks(max_k=8, max_n=80), seed=st.integers(0, 2**32 - 1))
def test_hash_collisions_are_detected(masks, seed):
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(len(masks))]
    rows = label_rows(masks, rng)
    with mock.patch.object(concepts_module, "SignatureIndex", _CollidingIndex):
        concepts = ConceptSet.from_label_chunks(random_chunks(rows, rng), names)
    check_matches_masks(concepts, masks, names)


@HYPOTHESIS
@given(masks=dense_masks(max_k=6, max_n=80), seed=st.integers(0, 2**32 - 1))
def test_formula_masks_and_counts(masks, seed):
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(len(masks))]
    concepts = ConceptSet.from_dense(masks, names)
    for _ in range(5):
        i, j, k = rng.integers(0, len(names), size=3)
        a, b, c = (Concept(names[x]) for x in (i, j, k))
        cases = {
            Or(a, b): masks[i] | masks[j],
            And(a, Not(b)): masks[i] & ~masks[j],
            Or(And(a, b), Not(c)): (masks[i] & masks[j]) | ~masks[k],
            Not(Or(a, b, c)): ~(masks[i] | masks[j] | masks[k]),
        }
        for formula, expected in cases.items():
            np.testing.assert_array_equal(concepts.mask(formula), expected)
            np.testing.assert_array_equal(concepts.mask(str(formula)), expected)
            assert concepts.count(formula) == expected.sum()


def test_neighbors_mask():
    masks = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], bool)
    concepts = ConceptSet.from_dense(masks, ["a", "b", "c"]).with_neighbors({"a": ["b", "a", "unknown"], "c": []})
    assert concepts.neighbor_names("a") == ["b"]
    assert concepts.neighbor_names("b") == []
    np.testing.assert_array_equal(concepts.mask(Neighbors("a")), [1, 1, 0, 0])
    np.testing.assert_array_equal(concepts.mask(Neighbors("b")), [0, 1, 0, 0])
    with pytest.raises(ValueError, match="neighbour"):
        ConceptSet.from_dense(masks, ["a", "b", "c"]).mask(Neighbors("a"))


def test_duplicate_names_raise():
    masks = np.zeros((2, 3), bool)
    with pytest.raises(ValueError, match="unique"):
        ConceptSet.from_dense(masks, ["a", "a"])
    with pytest.raises(ValueError, match="unique"):
        ConceptSet.from_labels(np.array([[0], [1], [-1]]), ["x", "y", "x"])
    with pytest.raises(ValueError, match="unique"):
        ConceptSet(["a", "a"], sp.csr_array((1, 2), dtype=bool), [3])


def test_shape_errors():
    with pytest.raises(ValueError):
        ConceptSet.from_dense(np.zeros((2, 3), bool), ["a"])
    with pytest.raises(ValueError):
        ConceptSet.from_packed(np.zeros((1, 2), np.uint8), 3, ["a"])  # 3 positions need 1 byte
    with pytest.raises(ValueError):
        ConceptSet.from_labels(np.array([[0], [2]]), ["a", "b"])  # label id out of range


# ------------------------------------------------------------------------ persistence
def _assert_same(loaded: ConceptSet, original: ConceptSet) -> None:
    assert loaded.names == original.names
    assert loaded.categories == original.categories
    np.testing.assert_array_equal(loaded.signature_concepts.toarray(), original.signature_concepts.toarray())
    np.testing.assert_array_equal(loaded.signature_weights, original.signature_weights)
    if original.position_signatures is None:
        assert loaded.position_signatures is None
    else:
        np.testing.assert_array_equal(loaded.position_signatures, original.position_signatures)
    if original.neighbors is None:
        assert loaded.neighbors is None
    else:
        np.testing.assert_array_equal(loaded.neighbors.toarray(), original.neighbors.toarray())
        for name in original.names:
            assert loaded.neighbor_names(name) == original.neighbor_names(name)


@settings(max_examples=30, deadline=None)
@given(masks=dense_masks(max_k=6, max_n=50), data=st.data())
def test_save_load_round_trip(tmp_path_factory, masks, data):
    names = ["a b", 'q"uote', "ünï", "x", "NOT", "y"][: len(masks)]
    categories = [data.draw(st.sampled_from(["object", "color", ""])) for _ in names]
    concepts = ConceptSet.from_dense(masks, names, categories)
    relation = {name: data.draw(st.lists(st.sampled_from(names), max_size=3)) for name in names}
    if data.draw(st.booleans()):
        concepts = concepts.with_neighbors(relation)
    path = tmp_path_factory.mktemp("concepts") / "concepts.npz"
    concepts.save(path)
    loaded = ConceptSet.load(path)
    _assert_same(loaded, concepts)
    check_matches_masks(loaded, masks, names)
    if concepts.neighbors is not None:
        for name in names:
            np.testing.assert_array_equal(loaded.mask(Neighbors(name)), concepts.mask(Neighbors(name)))


def test_save_load_without_positions(tmp_path):
    masks = np.array([[1, 0, 1], [0, 1, 1]], bool)
    rows = label_rows(masks, np.random.default_rng(0))
    concepts = ConceptSet.from_label_chunks([rows], ["a", "b"], keep_positions=False)
    assert concepts.position_signatures is None
    concepts.save(tmp_path / "c.npz")
    loaded = ConceptSet.load(tmp_path / "c.npz")
    _assert_same(loaded, concepts)
    assert loaded.categories == ("", "")


def test_load_refuses_pickled_objects(tmp_path):
    concepts = ConceptSet.from_dense(np.array([[1, 0], [0, 1]], bool), ["a", "b"])
    concepts.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["names"] = np.array(["a", object()], dtype=object)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputFileError, match="pickle"):
        ConceptSet.load(tmp_path / "bad.npz")

    units = UnitMasks.from_dense(np.array([[1, 1]], bool), concepts)
    units.save(tmp_path / "units.npz")
    with np.load(tmp_path / "units.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["counts"] = arrays["counts"].astype(object)
    np.savez(tmp_path / "bad_units.npz", **arrays)
    with pytest.raises(InputFileError, match="pickle"):
        UnitMasks.load(tmp_path / "bad_units.npz")


def test_load_missing_or_malformed_file(tmp_path):
    with pytest.raises(InputFileError):
        ConceptSet.load(tmp_path / "nothing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputFileError):
        ConceptSet.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", names=np.array(["a"]))
    with pytest.raises(InputFileError, match="missing"):
        ConceptSet.load(tmp_path / "partial.npz")


# ------------------------------------------------------------------------ unit masks
def _expected_counts(units: np.ndarray, concepts: ConceptSet) -> np.ndarray:
    signatures = concepts.position_signatures
    return np.stack([np.bincount(signatures[u], minlength=concepts.n_signatures) for u in units.astype(bool)])


@HYPOTHESIS
@given(masks=dense_masks(max_k=6, max_n=150), seed=st.integers(0, 2**32 - 1), n_units=st.integers(1, 6))
def test_unit_mask_constructors_agree(masks, seed, n_units):
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(len(masks))]
    concepts = ConceptSet.from_dense(masks, names)
    n = masks.shape[1]
    units = rng.random((n_units, n)) < rng.choice([0.0, 0.1, 0.5, 1.0], size=(n_units, 1))
    unit_names = [f"u{i}" for i in range(n_units)]
    packed = np.packbits(units, axis=1, bitorder="little")
    if n % 8 and n_units:
        padded = packed.copy()
        padded[:, -1] |= np.uint8(0xFF << (n % 8) & 0xFF)  # bits beyond N mean a wrong N: refused
        with pytest.raises(ValueError, match="beyond n_positions"):
            UnitMasks.from_packed(padded, concepts, unit_names)
    built = {
        "dense": UnitMasks.from_dense(units, concepts, unit_names),
        "dense_float": UnitMasks.from_dense(units.astype(np.float32), concepts, unit_names),
        "packed": UnitMasks.from_packed(packed, concepts, unit_names),
        "sparse": UnitMasks.from_sparse(sp.csr_array(units), concepts, unit_names),
        "sparse_coo_matrix": UnitMasks.from_sparse(sp.coo_matrix(units), concepts, unit_names),
    }
    expected = _expected_counts(units, concepts)
    for label, unit_masks in built.items():
        assert unit_masks.names == tuple(unit_names), label
        assert len(unit_masks) == n_units
        np.testing.assert_array_equal(unit_masks.counts.toarray(), expected, err_msg=label)
        np.testing.assert_array_equal(unit_masks.n_active, units.sum(axis=1), err_msg=label)
        unit_masks.check_compatible(concepts)
    default_names = UnitMasks.from_dense(units, concepts)
    assert default_names.names == tuple(str(i) for i in range(n_units))


@settings(max_examples=30, deadline=None)
@given(masks=dense_masks(max_k=5, max_n=80), seed=st.integers(0, 2**32 - 1))
def test_unit_masks_save_load_round_trip(tmp_path_factory, masks, seed):
    rng = np.random.default_rng(seed)
    concepts = ConceptSet.from_dense(masks, [f"c{i}" for i in range(len(masks))])
    units = rng.random((3, masks.shape[1])) < 0.3
    original = UnitMasks.from_dense(units, concepts, ["layer4.0", "unit two", "ü"])
    path = tmp_path_factory.mktemp("units") / "units.npz"
    original.save(path)
    loaded = UnitMasks.load(path)
    assert loaded.names == original.names
    assert loaded.n_signatures == original.n_signatures
    np.testing.assert_array_equal(loaded.counts.toarray(), original.counts.toarray())
    np.testing.assert_array_equal(loaded.n_active, original.n_active)
    loaded.check_compatible(concepts)


def test_unit_masks_reject_bad_input():
    concepts = ConceptSet.from_dense(np.array([[1, 0, 1], [0, 1, 1]], bool), ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        UnitMasks.from_dense(np.array([[1.0, np.nan, 0.0]]), concepts)
    with pytest.raises(ValueError):
        UnitMasks.from_dense(np.array([[0.5, 1.0, 0.0]]), concepts)
    with pytest.raises(ValueError):
        UnitMasks.from_dense(np.ones((1, 4), bool), concepts)
    with pytest.raises(ValueError):
        UnitMasks.from_packed(np.zeros((1, 2), np.uint8), concepts)
    with pytest.raises(ValueError):
        UnitMasks.from_dense(np.ones((2, 3), bool), concepts, ["only one name"])
    other = ConceptSet.from_dense(np.array([[1, 1, 1]], bool), ["c"])
    with pytest.raises(ValueError, match="signatures"):
        UnitMasks.from_dense(np.ones((1, 3), bool), concepts).check_compatible(other)


def test_unit_masks_need_position_signatures():
    rows = np.array([[0], [1], [-1]])
    concepts = ConceptSet.from_label_chunks([rows], ["a", "b"], keep_positions=False)
    with pytest.raises(ValueError, match="position_signatures"):
        UnitMasks.from_dense(np.ones((1, 3), bool), concepts)
