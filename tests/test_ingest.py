"""Fast ingest (issue 16): dense and packed concept masks -> signatures, and input validation.

``ConceptSet.from_dense`` and ``ConceptSet.from_packed`` group positions by per-position bit
keys (``logiclens.core.bitsignatures``). They must give exactly what the pre-issue-16
constructors gave (``tests/reference_concepts.py``): the same signature table, in the same
order (ids by first appearance), and the same ``position_signatures``.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logiclens.core.bitsignatures as bits_module
import logiclens.core.concepts as concepts_module
from logiclens import ConceptSet
from logiclens.core.bitsignatures import BitSignatureIndex, factorize_rows, packed_to_keys
from reference_concepts import reference_from_dense, reference_from_packed


@st.composite
def problems(draw, max_k: int = 150, max_n: int = 90):
    """Random (K, N) masks with the edge cases: K > 64 or 128, N % 8, empty positions and concepts."""
    k = draw(st.sampled_from([1, 2, 7, 8, 9, 63, 64, 65, 100, 128, 129, max_k]))
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.01, 0.05, 0.3]))
    masks = rng.random((k, n)) < density
    masks[rng.random(k) < 0.3] = False  # all-zero concepts
    masks[:, rng.random(n) < 0.2] = False  # positions with no concept
    if draw(st.booleans()):  # few distinct signatures, in runs and scattered
        pool = masks[:, rng.integers(0, n, size=max(1, n // 10))]
        masks = pool[:, np.sort(rng.integers(0, pool.shape[1], size=n)) if rng.random() < 0.5 else
                      rng.integers(0, pool.shape[1], size=n)]  # fmt: skip
    return masks


def assert_identical(fast: ConceptSet, reference: ConceptSet) -> None:
    assert fast.names == reference.names
    assert fast.signature_concepts.shape == reference.signature_concepts.shape
    np.testing.assert_array_equal(fast.signature_concepts.indptr, reference.signature_concepts.indptr)
    np.testing.assert_array_equal(fast.signature_concepts.indices, reference.signature_concepts.indices)
    np.testing.assert_array_equal(fast.signature_weights, reference.signature_weights)
    assert fast.position_signatures is not None and reference.position_signatures is not None
    np.testing.assert_array_equal(fast.position_signatures, reference.position_signatures)
    assert fast.position_signatures.dtype == reference.position_signatures.dtype


def _names(k: int) -> list[str]:
    return [f"c{i}" for i in range(k)]


# ------------------------------------------------------------------------ fast == reference
@settings(max_examples=120, deadline=None)
@given(masks=problems(), chunk=st.sampled_from([None, 8, 16, 24, 40]))
def test_fast_constructors_equal_reference(masks, chunk):
    k, n = masks.shape
    names = _names(k)
    packed = np.packbits(masks, axis=1, bitorder="little")
    reference = reference_from_dense(masks, names)
    assert_identical(reference_from_packed(packed, n, names), reference)
    elements = concepts_module._DENSE_CHUNK_ELEMENTS if chunk is None else chunk * k  # tiny chunks: many merges
    with mock.patch.object(concepts_module, "_DENSE_CHUNK_ELEMENTS", elements):
        built = {
            "dense": ConceptSet.from_dense(masks, names),
            "dense_uint8": ConceptSet.from_dense(masks.astype(np.uint8), names),
            "dense_float": ConceptSet.from_dense(masks.astype(np.float32), names),
            "packed": ConceptSet.from_packed(packed, n, names),
        }
    for label, fast in built.items():
        try:
            assert_identical(fast, reference)
        except AssertionError as error:
            raise AssertionError(f"{label}: {error}") from None


@settings(max_examples=40, deadline=None)
@given(masks=problems(max_k=140, max_n=60))
def test_hash_collisions_fall_back_to_exact_grouping(masks):
    """With a degenerate hash (every key hashes to its last word) the result must not change."""
    names = _names(len(masks))
    with mock.patch.object(bits_module, "_HASH_MULTIPLIER", np.uint64(0)):
        fast = ConceptSet.from_dense(masks, names)
    assert_identical(fast, reference_from_dense(masks, names))


def test_one_position_and_no_positions():
    for k in (1, 70):
        masks = np.zeros((k, 1), bool)
        masks[k - 1, 0] = True
        assert_identical(ConceptSet.from_dense(masks, _names(k)), reference_from_dense(masks, _names(k)))
        empty = np.zeros((k, 0), bool)
        fast, reference = ConceptSet.from_dense(empty, _names(k)), reference_from_dense(empty, _names(k))
        assert fast.n_signatures == reference.n_signatures == 0
        assert fast.n_positions == 0
        assert ConceptSet.from_packed(np.zeros((k, 0), np.uint8), 0, _names(k)).n_signatures == 0


def test_packed_to_keys_matches_unpacked_bits():
    rng = np.random.default_rng(3)
    for k, n in ((1, 1), (8, 8), (13, 21), (64, 64), (65, 9), (200, 77)):
        masks = rng.random((k, n)) < 0.4
        keys = packed_to_keys(np.packbits(masks, axis=1, bitorder="little"), n)
        assert keys.shape == (n, max(1, -(-k // 64)))
        decoded = np.unpackbits(keys.astype("<u8").view(np.uint8), axis=1, bitorder="little")[:, :k]
        np.testing.assert_array_equal(decoded.astype(bool), masks.T)
        assert not np.unpackbits(keys.astype("<u8").view(np.uint8), axis=1, bitorder="little")[:, k:].any()


def test_factorize_rows_first_appearance():
    keys = np.array([[5, 0], [5, 1], [5, 0], [7, 1], [5, 1], [5, 1]], np.uint64)
    codes, representatives = factorize_rows(keys)
    np.testing.assert_array_equal(codes, [0, 1, 0, 2, 1, 1])
    np.testing.assert_array_equal(representatives, [0, 1, 3])


def test_index_rejects_wrong_key_width():
    with pytest.raises(ValueError, match="shape"):
        BitSignatureIndex(70).add(np.zeros((3, 1), np.uint64))


# ------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([[0.0, np.nan, 1.0]]), "NaN.*'c0'"),
        (np.array([[0.0, 0.3, 0.7]]), "boolean.*'c0'.*0.3"),
        (np.array([[0, 2, 1]], np.int64), "boolean.*'c0'.*2"),
        (np.array([[0, -1, 1]], np.int8), "boolean.*-1"),
        (np.array([["a", "b", "c"]]), "dtype"),
        (np.array([[0, 1, 1]], object), "dtype"),
    ],
)
def test_from_dense_rejects_non_boolean(values, message):
    with pytest.raises(ValueError, match=message) as info:
        ConceptSet.from_dense(values, ["c0"])
    assert "\n" not in str(info.value)


def test_from_dense_accepts_exact_zero_one():
    expected = ConceptSet.from_dense(np.array([[True, False, True], [False, False, True]]), ["a", "b"])
    for dtype in (np.int8, np.uint16, np.int64, np.float16, np.float32, np.float64):
        values = np.array([[1, 0, 1], [0, 0, 1]], dtype)
        assert_identical(ConceptSet.from_dense(values, ["a", "b"]), expected)
    assert_identical(ConceptSet.from_dense([[1, 0, 1], [0, 0, 1.0]], ["a", "b"]), expected)


def test_from_dense_rejects_nan_in_a_later_chunk():
    masks = np.zeros((2, 100))
    masks[1, 97] = np.nan
    with mock.patch.object(concepts_module, "_DENSE_CHUNK_ELEMENTS", 16), pytest.raises(ValueError, match="'c1'"):
        ConceptSet.from_dense(masks, ["c0", "c1"])


def test_from_packed_rejects_bits_beyond_n_positions():
    masks = np.zeros((3, 200), bool)
    masks[0, [5, 197, 198]] = True
    masks[2, 199] = True
    packed = np.packbits(masks, axis=1, bitorder="little")
    with pytest.raises(ValueError, match=r"3 bit\(s\) set beyond n_positions=197 .*2 concept.*'c0'") as info:
        ConceptSet.from_packed(packed, 197, _names(3))
    assert "\n" not in str(info.value)
    assert ConceptSet.from_packed(packed, 200, _names(3)).n_positions == 200
    masks[:, 197:] = False
    fine = np.packbits(masks, axis=1, bitorder="little")
    assert_identical(ConceptSet.from_packed(fine, 197, _names(3)), reference_from_dense(masks[:, :197], _names(3)))


@pytest.mark.parametrize(
    ("packed", "n_positions"),
    [
        (np.zeros((2, 2), np.uint8), 17),  # 17 positions need 3 bytes
        (np.zeros((2, 3), np.uint8), 16),
        (np.zeros((1, 2), np.uint8), 16),  # one row for two names
        (np.zeros((2, 2), np.int64), 16),
        (np.zeros((2, 2, 1), np.uint8), 16),
        (np.zeros((2, 0), np.uint8), -3),
    ],
)
def test_from_packed_shape_errors(packed, n_positions):
    with pytest.raises(ValueError) as info:
        ConceptSet.from_packed(packed, n_positions, ["a", "b"])
    assert "\n" not in str(info.value)


def test_shapes_checked_before_allocating():
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(3, 10**12), strides=(0, 0))
    with pytest.raises(ValueError, match="shape"):
        ConceptSet.from_dense(huge, ["a", "b"])  # 3 rows for 2 names: refused before reading anything
    with pytest.raises(ValueError, match="shape"):
        ConceptSet.from_packed(huge, 10**12, ["a", "b"])
