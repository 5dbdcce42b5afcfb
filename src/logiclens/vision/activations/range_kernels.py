"""The numba kernels of :mod:`logiclens.vision.activations.compiled_ranges` (imported only when numba is installed).

Regions are nested along each axis: blocks (one pair of input rows or columns), cut into
*sub-blocks* of at most ``2 * TILE`` pixels, cut into tiles of at most ``TILE``. A level is given
per axis as ``(start, length, first)``: each segment's first pixel and length, and for each
segment of the coarser level the index of its first child (``first`` has one more entry).
"""

from __future__ import annotations

import numba
import numpy as np

from logiclens.vision.activations.regions import MARGIN, TILE, TINY

__all__ = ["count", "transposed_csr"]

#: units counted into one scratch array before it is added to the counts
GROUP = 32

_jit = numba.njit(cache=True, nogil=True)
_inline = numba.njit(cache=True, nogil=True, inline="always")
assert TILE <= 4, "a tile's pixels are one 16-bit mask"


@_jit
def _popcount(mask):  # type: ignore[no-untyped-def]
    """Set bits of a 16-bit mask."""
    mask = mask - ((mask >> 1) & 0x5555)
    mask = (mask & 0x3333) + ((mask >> 2) & 0x3333)
    mask = (mask + (mask >> 4)) & 0x0F0F
    return (mask + (mask >> 8)) & 0x1F


@_jit
def _classify(lo, hi, low, high):  # type: ignore[no-untyped-def]
    """The range holding all of [lo, hi] (float64), -1 where it meets no range, -2 undecided.

    The same decision as :func:`~logiclens.vision.activations.regions.classify_intervals`.
    Also returns the last ranges starting at or below ``lo`` and ``hi`` (-1: none), between
    which the range of any value in [lo, hi] lies.
    """
    below_lo = -1
    below_hi = -1
    for j in range(low.shape[0]):
        if low[j] <= lo:
            below_lo = j
        if low[j] <= hi:
            below_hi = j
    k = -2
    if below_lo == below_hi:
        if below_lo >= 0 and hi <= high[below_lo]:
            k = below_lo
        elif below_lo < 0 or lo > high[below_lo]:
            k = -1
    return k, below_lo, below_hi


@_inline
def _add_region(scratch, row, table, region):  # type: ignore[no-untyped-def]
    """Add a decided region's signature counts (its entries in a merged ``table``) to a scratch row."""
    ptr, column, value = table
    for e in range(ptr[region], ptr[region + 1]):
        scratch[row + column[e]] += value[e]


@_jit
def _histograms(ids, rows, cols, ptr, signature, count, tally):  # type: ignore[no-untyped-def]
    """Per rectangle of ``rows x cols`` segments, its signatures and their pixel counts (CSR in ``ptr``).

    ``tally`` is an all-zero (signatures,) scratch array, left all zero.
    """
    row_start, row_length = rows[0], rows[1]
    col_start, col_length = cols[0], cols[1]
    n_cols = col_start.shape[0]
    entries = 0
    ptr[0] = 0
    for r in range(row_start.shape[0]):
        for c in range(n_cols):
            first = entries
            for y in range(row_start[r], row_start[r] + row_length[r]):
                for x in range(col_start[c], col_start[c] + col_length[c]):
                    s = ids[y, x]
                    if s >= 0:
                        if tally[s] == 0:
                            signature[entries] = s
                            entries += 1
                        tally[s] += 1
            for e in range(first, entries):
                count[e] = tally[signature[e]]
                tally[signature[e]] = 0
            ptr[r * n_cols + c + 1] = entries


@_jit
def _tile_masks(ids, rows, cols, ptr, signature, mask):  # type: ignore[no-untyped-def]
    """Per tile, its signatures and the 16-bit mask of each one's pixels (bit ``dy * TILE + dx``)."""
    row_start, row_length = rows[0], rows[1]
    col_start, col_length = cols[0], cols[1]
    n_cols = col_start.shape[0]
    entries = 0
    ptr[0] = 0
    for r in range(row_start.shape[0]):
        for c in range(n_cols):
            first = entries
            for dy in range(row_length[r]):
                for dx in range(col_length[c]):
                    s = ids[row_start[r] + dy, col_start[c] + dx]
                    if s < 0:
                        continue
                    e = first
                    while e < entries and signature[e] != s:
                        e += 1
                    if e == entries:
                        signature[e] = s
                        mask[e] = 0
                        entries += 1
                    mask[e] |= 1 << (dy * TILE + dx)
            ptr[r * n_cols + c + 1] = entries


@_jit
def _merge(used, n_used, ptr, signature, value, n_signatures, local_of, global_of, n_local, out):  # type: ignore[no-untyped-def]
    """Per-variant region tables (``ptr[v]``, ``signature[v]``, ``value[v]``) as one table over the used variants.

    Its columns are local: a column ``variant * S + signature`` not numbered yet gets number
    ``n_local`` (``local_of``, ``global_of``). ``out`` = (ptr, local column, value) receives
    the table; returns the new number of local columns.
    """
    out_ptr, out_column, out_value = out
    entries = 0
    out_ptr[0] = 0
    for region in range(ptr.shape[1] - 1):
        for i in range(n_used):
            v = used[i]
            for e in range(ptr[v, region], ptr[v, region + 1]):
                g = v * n_signatures + signature[v, e]
                if local_of[g] < 0:
                    local_of[g] = n_local
                    global_of[n_local] = g
                    n_local += 1
                out_column[entries] = local_of[g]
                out_value[entries] = value[v, e]
                entries += 1
        out_ptr[region + 1] = entries
    return n_local


@_jit
def _table(n_variants, n_regions, pixels):  # type: ignore[no-untyped-def]
    """Empty per-variant region tables: (ptr, signature, value)."""
    return (np.empty((n_variants, n_regions + 1), np.int64), np.empty((n_variants, pixels), np.int64),
            np.empty((n_variants, pixels), np.int64))  # fmt: skip


@_jit
def _merged(n_variants, n_regions, pixels):  # type: ignore[no-untyped-def]
    """An empty merged region table: (ptr, local column, value)."""
    return (np.empty(n_regions + 1, np.int64), np.empty(n_variants * pixels, np.int64),
            np.empty(n_variants * pixels, np.int64))  # fmt: skip


@_jit
def count(maps, ids, low, high, sources, blocks, subs, tiles, counts, n_signatures):  # type: ignore[no-untyped-def]
    """Add every range of every map of a batch to ``counts``, transposed: (variants x S, units x K).

    Parameters
    ----------
    maps : float32 (n, U, h, w)
    ids : int32 (variants, n, H, W)
    low, high : float32 (U, K)
    sources : per axis (left, right, weight, rest) of each output pixel
    blocks, subs, tiles : per axis (start, length, first) of each segment
    counts : int32 or int64 (variants * S, U * K)
    n_signatures : int

    Per image, the (variant, signature) columns its maps hold are numbered locally; each group
    of :data:`GROUP` units is counted into a small (GROUP x (K + 1), local columns) scratch
    array (a unit's rows stay in cache; row K is the gap, the pixels in no range), then added
    to ``counts``, one contiguous run per column. Every pixel has one label (a range or the
    gap), so one label per unit, the one most of its input cells take, is never counted:
    it is the image's counts less the other labels'. That halves the work or better.
    """
    row_left, row_right, row_weight, row_rest = sources[0]
    col_left, col_right, col_weight, col_rest = sources[1]
    n_variants, n_images = ids.shape[0], ids.shape[1]
    n_units, k_ranges = low.shape
    low64, high64 = low.astype(np.float64), high.astype(np.float64)
    block_rows, block_cols = blocks
    sub_rows, sub_cols = subs
    tile_rows, tile_cols = tiles
    n_block_cols = block_cols[0].shape[0]
    n_sub_cols = sub_cols[0].shape[0]
    n_tile_cols = tile_cols[0].shape[0]
    pixels = ids.shape[2] * ids.shape[3]
    per_block = _table(n_variants, block_rows[0].shape[0] * n_block_cols, pixels)
    per_sub = _table(n_variants, sub_rows[0].shape[0] * n_sub_cols, pixels)
    per_tile = _table(n_variants, tile_rows[0].shape[0] * n_tile_cols, pixels)
    block_ptr, block_column, block_count = merged_blocks = _merged(n_variants, per_block[0].shape[1] - 1, pixels)
    merged_subs = _merged(n_variants, per_sub[0].shape[1] - 1, pixels)
    tile_ptr, tile_column, tile_mask = merged_tiles = _merged(n_variants, per_tile[0].shape[1] - 1, pixels)
    local_of = np.full(counts.shape[0], -1, np.int64)
    global_of = np.empty(min(counts.shape[0], n_variants * pixels), np.int64)
    labels = k_ranges + 1  # the ranges, then the gap (pixels in none)
    scratch = np.zeros(GROUP * labels * global_of.shape[0], counts.dtype)
    image_count = np.zeros(global_of.shape[0], counts.dtype)
    tally = np.zeros(n_signatures, np.int64)
    used = np.empty(n_variants, np.int64)
    range_mask = np.empty(labels, np.int64)
    present = np.empty(labels, np.int64)
    votes = np.empty(labels, np.int64)
    # corner values of the tiles of one block: first and last pixel row x first and last pixel column
    edge_top = np.empty(2 * n_tile_cols, np.float32)
    edge_bottom = np.empty(2 * n_tile_cols, np.float32)
    edges = np.empty((2 * tile_rows[0].shape[0], 2 * n_tile_cols), np.float32)
    top_row = np.empty(TILE, np.float32)
    tile_values = np.empty(TILE * TILE, np.float32)
    bottom_row = np.empty(TILE, np.float32)
    for image in range(n_images):
        n_used = 0
        for v in range(n_variants):
            _histograms(ids[v, image], block_rows, block_cols, per_block[0][v], per_block[1][v], per_block[2][v], tally)
            if per_block[0][v, -1] > 0:
                _histograms(ids[v, image], sub_rows, sub_cols, per_sub[0][v], per_sub[1][v], per_sub[2][v], tally)
                _tile_masks(ids[v, image], tile_rows, tile_cols, per_tile[0][v], per_tile[1][v], per_tile[2][v])
                used[n_used] = v
                n_used += 1
        if n_used == 0:
            continue
        n_local = _merge(used, n_used, *per_block, n_signatures, local_of, global_of, 0, merged_blocks)
        n_local = _merge(used, n_used, *per_sub, n_signatures, local_of, global_of, n_local, merged_subs)
        n_local = _merge(used, n_used, *per_tile, n_signatures, local_of, global_of, n_local, merged_tiles)
        image_count[:n_local] = 0
        for e in range(block_ptr[-1]):
            image_count[block_column[e]] += block_count[e]
        for group_start in range(0, n_units, GROUP):
            group_end = min(group_start + GROUP, n_units)
            for unit in range(group_start, group_end):
                cells = maps[image, unit]
                unit_low, unit_high, unit_low64, unit_high64 = low[unit], high[unit], low64[unit], high64[unit]
                slot = (unit - group_start) * labels
                # the label that most input cells take is left out, then counted as the rest of the image
                votes[:] = 0
                # the label lookup is written out here and for crossed tiles' pixels below: as a
                # shared numba function it made the kernel 15-20 % slower (measured)
                for y in range(cells.shape[0]):
                    for x in range(cells.shape[1]):
                        r = 0
                        while r + 1 < k_ranges and cells[y, x] >= unit_low[r + 1]:
                            r += 1
                        votes[r if unit_low[r] <= cells[y, x] <= unit_high[r] else k_ranges] += 1
                skip = np.argmax(votes)
                for br in range(block_rows[0].shape[0]):
                    top, bottom = row_left[block_rows[0][br]], row_right[block_rows[0][br]]
                    for bc in range(n_block_cols):
                        left, right = col_left[block_cols[0][bc]], col_right[block_cols[0][bc]]
                        tl, tr, bl, brc = cells[top, left], cells[top, right], cells[bottom, left], cells[bottom, right]
                        lo = np.float64(min(min(tl, tr), min(bl, brc)))
                        hi = np.float64(max(max(tl, tr), max(bl, brc)))
                        margin = max(abs(lo), abs(hi)) * MARGIN + TINY
                        k = _classify(lo - margin, hi + margin, unit_low64, unit_high64)[0]
                        if k != -2:
                            label = k if k >= 0 else k_ranges
                            if label != skip:
                                _add_region(scratch, (slot + label) * n_local, merged_blocks, br * n_block_cols + bc)
                            continue
                        ceiling = max(max(tl, tr), max(bl, brc))
                        # the corner pixels of every tile of the block, as upsampled
                        first_tile_row = sub_rows[2][block_rows[2][br]]
                        last_tile_row = sub_rows[2][block_rows[2][br + 1]]
                        first_tile_col = sub_cols[2][block_cols[2][bc]]
                        last_tile_col = sub_cols[2][block_cols[2][bc + 1]]
                        n_edge_cols = 2 * (last_tile_col - first_tile_col)
                        for j in range(n_edge_cols):
                            t_col = first_tile_col + j // 2
                            x = tile_cols[0][t_col] + (j % 2) * (tile_cols[1][t_col] - 1)
                            edge_top[j] = tl * col_rest[x] + tr * col_weight[x]
                            edge_bottom[j] = bl * col_rest[x] + brc * col_weight[x]
                        for i in range(2 * (last_tile_row - first_tile_row)):
                            t_row = first_tile_row + i // 2
                            y = tile_rows[0][t_row] + (i % 2) * (tile_rows[1][t_row] - 1)
                            for j in range(n_edge_cols):
                                value = edge_top[j] * row_rest[y] + edge_bottom[j] * row_weight[y]
                                edges[i, j] = value if value < ceiling else ceiling
                        for s_row in range(block_rows[2][br], block_rows[2][br + 1]):
                            for s_col in range(block_cols[2][bc], block_cols[2][bc + 1]):
                                i0 = 2 * (sub_rows[2][s_row] - first_tile_row)
                                i1 = 2 * (sub_rows[2][s_row + 1] - first_tile_row) - 1
                                j0 = 2 * (sub_cols[2][s_col] - first_tile_col)
                                j1 = 2 * (sub_cols[2][s_col + 1] - first_tile_col) - 1
                                c0, c1, c2, c3 = edges[i0, j0], edges[i0, j1], edges[i1, j0], edges[i1, j1]
                                lo = np.float64(min(min(c0, c1), min(c2, c3))) - 2 * margin
                                hi = np.float64(max(max(c0, c1), max(c2, c3))) + 2 * margin
                                k = _classify(lo, hi, unit_low64, unit_high64)[0]
                                if k != -2:
                                    label = k if k >= 0 else k_ranges
                                    if label != skip:
                                        row = (slot + label) * n_local
                                        _add_region(scratch, row, merged_subs, s_row * n_sub_cols + s_col)
                                    continue
                                for t_row in range(sub_rows[2][s_row], sub_rows[2][s_row + 1]):
                                    i = 2 * (t_row - first_tile_row)
                                    ya, height = tile_rows[0][t_row], tile_rows[1][t_row]
                                    for t_col in range(sub_cols[2][s_col], sub_cols[2][s_col + 1]):
                                        j = 2 * (t_col - first_tile_col)
                                        c0, c1, c2, c3 = (
                                            edges[i, j],
                                            edges[i, j + 1],
                                            edges[i + 1, j],
                                            edges[i + 1, j + 1],
                                        )
                                        lo = np.float64(min(min(c0, c1), min(c2, c3))) - 2 * margin
                                        hi = np.float64(max(max(c0, c1), max(c2, c3))) + 2 * margin
                                        k, below_lo, below_hi = _classify(lo, hi, unit_low64, unit_high64)
                                        tile = t_row * n_tile_cols + t_col
                                        first, last = tile_ptr[tile], tile_ptr[tile + 1]
                                        if k != -2:
                                            label = k if k >= 0 else k_ranges
                                            if label != skip:
                                                row = (slot + label) * n_local
                                                for e in range(first, last):
                                                    scratch[row + tile_column[e]] += _popcount(tile_mask[e])
                                            continue
                                        # a tile that may cross a bound: its pixels, as upsampled
                                        xa, width = tile_cols[0][t_col], tile_cols[1][t_col]
                                        for dx in range(width):
                                            top_row[dx] = tl * col_rest[xa + dx] + tr * col_weight[xa + dx]
                                            bottom_row[dx] = bl * col_rest[xa + dx] + brc * col_weight[xa + dx]
                                        range_mask[:] = 0
                                        for dy in range(height):
                                            rest, weight = row_rest[ya + dy], row_weight[ya + dy]
                                            for dx in range(width):
                                                value = top_row[dx] * rest + bottom_row[dx] * weight
                                                tile_values[dy * TILE + dx] = min(value, ceiling)
                                        for dy in range(height):
                                            for dx in range(width):
                                                value = tile_values[dy * TILE + dx]
                                                r = max(below_lo, 0)  # the tile's values lie in [lo, hi]
                                                while r < below_hi and value >= unit_low[r + 1]:
                                                    r += 1
                                                if not (value >= unit_low[r] and value <= unit_high[r]):
                                                    r = k_ranges
                                                range_mask[r] |= 1 << (dy * TILE + dx)
                                        n_present = 0
                                        for r in range(labels):
                                            if range_mask[r] and r != skip:
                                                present[n_present] = r
                                                n_present += 1
                                        for p in range(n_present):
                                            r = present[p]
                                            in_range = range_mask[r]
                                            for e in range(first, last):
                                                scratch[(slot + r) * n_local + tile_column[e]] += _popcount(
                                                    in_range & tile_mask[e]
                                                )
                if skip < k_ranges:
                    for c in range(n_local):
                        rest = image_count[c]
                        for r in range(labels):
                            rest -= scratch[(slot + r) * n_local + c]
                        scratch[(slot + skip) * n_local + c] = rest
                        scratch[(slot + k_ranges) * n_local + c] = 0
            for c in range(n_local):
                target = counts[global_of[c], group_start * k_ranges : group_end * k_ranges]
                for u in range(group_end - group_start):
                    for r in range(k_ranges):
                        target[u * k_ranges + r] += scratch[(u * labels + r) * n_local + c]
                        scratch[(u * labels + r) * n_local + c] = 0
        for c in range(n_local):
            local_of[global_of[c]] = -1


@_jit
def transposed_csr(counts, first, n_columns):  # type: ignore[no-untyped-def]
    """``counts[first : first + n_columns].T`` as CSR parts (indptr, int32 indices, int64 data).

    Rows are transposed a block at a time into a small buffer, then compacted without branches
    (every entry is written, the next write replaces a zero; one slot of slack at the end).
    """
    n_rows = counts.shape[1]
    indptr = np.zeros(n_rows + 1, np.int64)
    for c in range(first, first + n_columns):
        for r in range(n_rows):
            indptr[r + 1] += counts[c, r] != 0
    for r in range(n_rows):
        indptr[r + 1] += indptr[r]
    indices = np.empty(indptr[n_rows] + 1, np.int32)
    data = np.empty(indptr[n_rows] + 1, np.int64)
    block = 64
    buffer = np.empty((block, n_columns), counts.dtype)
    for row_start in range(0, n_rows, block):
        rows = min(block, n_rows - row_start)
        for c in range(n_columns):
            for r in range(rows):
                buffer[r, c] = counts[first + c, row_start + r]
        for r in range(rows):
            position = indptr[row_start + r]
            for c in range(n_columns):
                value = buffer[r, c]
                indices[position] = c
                data[position] = value
                position += value != 0
    return indptr, indices[:-1], data[:-1]
