"""Broden-scale benchmark of the compositional search (length 10, beam 10).

Generates a synthetic segmentation data set the size of Broden as seen by NetDissect at
112 x 112 (22,210 images, 278.6 M positions), 1,105 concepts and 512 units, and times

(a) building the signature table (``ConceptSet.from_label_chunks``, label maps streamed
    image-chunk by image-chunk, never K x N),
(b) building the units (``UnitMasks`` straight from a (U, S) sparse count matrix), and
(c) ``CompositionalExplainer(max_length=10, beam_size=10, n_jobs=2).fit(units, concepts)``,

with wall time, CPU time and peak memory. ``--compare-plain`` instead builds a small problem
and times the plain implementation (``tests/reference_search.py``) against ours on exactly
the same per-pixel unit masks, checking that both return the same formulas and IoUs.

Concepts (1,105 = 365 scenes + 580 objects + 149 parts + 11 colours)
    * scene: one per image, broadcast to every pixel; 15 % of images have none.
      Zipf-like frequencies.
    * object: 20 "stuff" classes paint the background (top and bottom of a random
      horizon, partly chosen by the scene; 10 % of images have no background label),
      then 1-8 foreground objects (1 + Poisson(2.5)) as random rectangles or ellipses drawn
      on top of each other, from a Zipf-like distribution over the other 560 classes
      mixed half-and-half with a per-scene list of typical objects.
    * part: the 60 most frequent foreground objects have 1-4 parts each (all 149 parts
      are used, some shared); a part is a horizontal band of its object's bounding box
      (one band per part plus one unlabelled band), inside the visible object only.
    * colour: one of 11 colours on every pixel, in blocks of 8 x 8 pixels, from a
      per-image palette of 3 colours.

Units
    A unit is a planted formula of 1-4 concepts built with OR / AND / AND NOT (each
    operator is chosen so that it changes the mask by a real amount), rejected unless its
    mask covers 0.2-2 % of the positions, plus noise. The noise is drawn per signature in
    count space: on a signature inside the formula the unit's count is
    Binomial(weight, p_keep); outside it is Binomial(weight, q). Since every formula is
    constant on a signature and the search only ever sees per-signature counts, this is
    statistically the same as keeping each true-positive pixel with probability p_keep
    and switching on each other pixel with probability q independently. p_keep and q are
    set so that the unit's density is 0.5 % (x a log-normal jitter of sigma 0.2), with
    20-50 % of its active positions being false positives (more when the formula is too
    small for that, since p_keep is capped at 0.9).

Run ``python benchmarks/search_scale.py --help`` for the flags.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from logiclens import CompositionalExplainer, ConceptSet, UnitMasks
from logiclens.core.formula import And, Concept, Formula, Not, Or, canonical

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- vocabulary
N_SCENES, N_OBJECTS, N_PARTS, N_COLOURS = 365, 580, 149, 11  # 1,105 concepts
N_STUFF = 20  # objects 0..19 are background "stuff" (wall, floor, sky, ...)
N_PART_OWNERS = 60  # the most frequent foreground objects have parts
MAX_PARTS = 4
MAX_FOREGROUND = 8
COLOUR_CELL = 8
COLOURS = ("black", "blue", "brown", "green", "grey", "orange", "pink", "purple", "red", "white", "yellow")
COLOUR_FREQ = np.array([14, 6, 12, 8, 16, 3, 2, 2, 4, 12, 3], float)


def zipf(n: int, exponent: float = 1.0) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


@dataclass
class Vocabulary:
    """Concept names and the tables the label generator draws from."""

    names: list[str]
    categories: list[str]
    scene_p: np.ndarray
    stuff_p: np.ndarray
    object_p: np.ndarray  # over the foreground objects
    scene_objects: np.ndarray  # (scenes, 12) typical foreground objects per scene
    scene_stuff: np.ndarray  # (scenes, 2) preferred top / bottom stuff per scene
    part_table: np.ndarray  # (objects, MAX_PARTS + 1) part ids per band, -1 padded
    offsets: dict[str, int] = field(default_factory=dict)

    @property
    def n_concepts(self) -> int:
        return len(self.names)


def make_vocabulary(seed: int) -> Vocabulary:
    rng = np.random.default_rng([seed, 0])
    names = (
        [f"scene{i:03d}-s" for i in range(N_SCENES)]
        + [f"object{i:03d}" for i in range(N_OBJECTS)]
        + [f"part{i:03d}" for i in range(N_PARTS)]
        + [f"{c}-c" for c in COLOURS]
    )
    categories = ["scene"] * N_SCENES + ["object"] * N_OBJECTS + ["part"] * N_PARTS + ["color"] * N_COLOURS
    offsets = {"scene": 0, "object": N_SCENES, "part": N_SCENES + N_OBJECTS, "color": N_SCENES + N_OBJECTS + N_PARTS}
    n_foreground = N_OBJECTS - N_STUFF
    object_p = zipf(n_foreground, 1.0)
    scene_objects = np.stack(
        [N_STUFF + rng.choice(n_foreground, 12, replace=False, p=object_p) for _ in range(N_SCENES)]
    )
    scene_stuff = rng.choice(N_STUFF, (N_SCENES, 2), p=zipf(N_STUFF, 0.8))
    # parts: 1-4 per owner, every part used at least once
    n_parts = rng.integers(1, MAX_PARTS + 1, N_PART_OWNERS)
    while n_parts.sum() < N_PARTS:
        n_parts[rng.integers(N_PART_OWNERS)] = MAX_PARTS
    slots = np.concatenate([rng.permutation(N_PARTS), rng.integers(0, N_PARTS, n_parts.sum() - N_PARTS)])
    part_table = np.full((N_OBJECTS, MAX_PARTS + 1), -1, np.int32)
    start = 0
    for owner, k in enumerate(n_parts):
        part_table[N_STUFF + owner, :k] = slots[start : start + k]
        start += k
    return Vocabulary(
        names,
        categories,
        zipf(N_SCENES, 0.9),
        zipf(N_STUFF, 0.8),
        object_p,
        scene_objects,
        scene_stuff,
        part_table,
        offsets,
    )


# ----------------------------------------------------------------------------- label maps
class LabelGenerator:
    """Synthetic Broden-like label maps, generated and converted chunk by chunk."""

    def __init__(self, vocab: Vocabulary, n_images: int, size: int = 112, chunk: int = 128, seed: int = 0):
        self.vocab, self.n_images, self.size, self.chunk, self.seed = vocab, n_images, size, chunk, seed
        self.seconds = 0.0  # time spent generating (inside the generator only)
        self.cpu_seconds = 0.0

    @property
    def n_positions(self) -> int:
        return self.n_images * self.size * self.size

    def label_maps(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scene (n,), object, part, colour (n, H, W) labels of images start..start+n (-1: none)."""
        v, h = self.vocab, self.size
        rng = np.random.default_rng([self.seed, 1, start])
        axis = np.arange(h, dtype=np.float32) + 0.5
        scene = rng.choice(N_SCENES, n, p=v.scene_p)
        scene[rng.random(n) < 0.15] = -1
        known = scene >= 0
        # background stuff: top and bottom of a horizon, preferred by the scene 60 % of the time
        stuff = rng.choice(N_STUFF, (n, 2), p=v.stuff_p)
        preferred = known[:, None] & (rng.random((n, 2)) < 0.6)
        stuff = np.where(preferred, v.scene_stuff[np.maximum(scene, 0)], stuff)
        horizon = rng.integers(h // 4, 3 * h // 4, n)
        rows = np.where(axis[None, :] < horizon[:, None], stuff[:, :1], stuff[:, 1:]).astype(np.int16)  # (n, H)
        rows[rng.random(n) < 0.10] = -1
        obj = np.repeat(rows[:, :, None], h, axis=2)
        part = np.full((n, h, h), -1, np.int16)
        # foreground objects, later ones in front
        n_foreground = np.minimum(MAX_FOREGROUND, 1 + rng.poisson(2.5, n))
        inf = np.float32(np.inf)
        for layer in range(MAX_FOREGROUND):
            active = layer < n_foreground
            label = N_STUFF + rng.choice(N_OBJECTS - N_STUFF, n, p=v.object_p)
            typical = v.scene_objects[np.maximum(scene, 0), rng.integers(0, 12, n)]
            label = np.where(known & (rng.random(n) < 0.5), typical, label)
            cy, cx = rng.uniform(0, h, (2, n)).astype(np.float32)
            ry, rx = rng.uniform(5, 36, (2, n)).astype(np.float32)
            dy = (axis[None, :] - cy[:, None]) / ry[:, None]
            dx = (axis[None, :] - cx[:, None]) / rx[:, None]
            dy2, dx2 = dy * dy, dx * dx
            rectangle = rng.random(n) < 0.5
            dy2 = np.where(rectangle[:, None], np.where(dy2 <= 1, 0, inf), dy2)
            dx2 = np.where(rectangle[:, None], np.where(dx2 <= 1, 0, inf), dx2)
            dy2[~active] = inf
            inside = (dy2[:, :, None] + dx2[:, None, :]) <= 1  # (n, H, W)
            obj = np.where(inside, label.astype(np.int16)[:, None, None], obj)
            n_parts = (v.part_table[label] >= 0).sum(axis=1)
            band = np.clip(((dy + 1) / 2 * (n_parts[:, None] + 1)).astype(np.int64), 0, n_parts[:, None])
            part_rows = v.part_table[label[:, None], band].astype(np.int16)  # (n, H)
            part = np.where(inside, part_rows[:, :, None], part)
        # colour: 8 x 8 blocks from a 3-colour palette per image
        palette = np.stack(
            [rng.choice(N_COLOURS, 3, replace=False, p=COLOUR_FREQ / COLOUR_FREQ.sum()) for _ in range(n)]
        )
        cells = h // COLOUR_CELL
        pick = rng.choice(3, (n, cells, cells), p=[0.5, 0.3, 0.2])
        grid = np.take_along_axis(palette, pick.reshape(n, -1), axis=1).reshape(n, cells, cells)
        colour = np.repeat(np.repeat(grid, COLOUR_CELL, axis=1), COLOUR_CELL, axis=2)
        return scene, obj, part, colour

    def label_rows(self, start: int, n: int) -> np.ndarray:
        """(n * H * W, 4) int32 label rows [scene, object, part, colour] as concept ids, -1 padded."""
        off = self.vocab.offsets
        scene, obj, part, colour = self.label_maps(start, n)
        rows = np.empty((n, self.size, self.size, 4), np.int32)
        rows[..., 0] = np.where(scene >= 0, scene + off["scene"], -1)[:, None, None]
        rows[..., 1] = np.where(obj >= 0, obj.astype(np.int32) + off["object"], -1)
        rows[..., 2] = np.where(part >= 0, part.astype(np.int32) + off["part"], -1)
        rows[..., 3] = colour + off["color"]
        return rows.reshape(-1, 4)

    def chunks(self, progress: bool = True) -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        for start in range(0, self.n_images, self.chunk):
            w, c = time.perf_counter(), time.process_time()
            rows = self.label_rows(start, min(self.chunk, self.n_images - start))
            self.seconds += time.perf_counter() - w
            self.cpu_seconds += time.process_time() - c
            yield rows
            done = min(start + self.chunk, self.n_images)
            if progress and ((done // self.chunk) % 20 == 0 or done == self.n_images):
                log(f"  labels: {done:,}/{self.n_images:,} images, {time.perf_counter() - t0:.1f} s")


# ----------------------------------------------------------------------------- units
@dataclass
class Planted:
    formula: Formula
    size: int  # |F|
    intersection: int  # |M AND F|
    n_active: int  # |M|

    @property
    def iou(self) -> float:
        return self.intersection / (self.size + self.n_active - self.intersection)


def plant_formula(
    concepts: ConceptSet, rng: np.random.Generator, incidence: sp.csc_array, lo: float = 0.002, hi: float = 0.02
) -> tuple[Formula, np.ndarray]:
    """A random formula of 1-4 concepts whose mask covers lo..hi of the positions."""
    n = concepts.n_positions
    weights = concepts.signature_weights.astype(np.float64)
    sizes = concepts.sizes
    seeds = np.flatnonzero((sizes >= 0.001 * n) & (sizes <= 0.03 * n))
    for _ in range(10_000):
        length = int(rng.integers(1, 5))
        first = int(rng.choice(seeds))
        formula: Formula = Concept(concepts.names[first])
        members = concepts.concept_signatures(first)
        used = {first}
        for _step in range(length - 1):
            f_size = weights[members].sum()
            overlap = (weights * members) @ incidence  # |F AND C| for every concept C
            operator = rng.choice(["or", "and", "and_not"])
            if operator == "or":
                gain = sizes - overlap
                ok = (gain >= 0.2 * f_size) & (sizes <= 0.01 * n)
            elif operator == "and":
                ok = (overlap >= 0.2 * f_size) & (overlap <= 0.8 * f_size)
            else:
                ok = (overlap >= 0.1 * f_size) & (overlap <= 0.5 * f_size)
            ok[list(used)] = False
            options = np.flatnonzero(ok)
            if len(options) == 0:
                break
            c = int(rng.choice(options))
            used.add(c)
            leaf = Concept(concepts.names[c])
            formula = Or(formula, leaf) if operator == "or" else And(formula, leaf if operator == "and" else Not(leaf))
            members = concepts.signature_mask(formula)
        else:
            members = concepts.signature_mask(formula)
            density = weights[members].sum() / n
            if lo <= density <= hi:
                return formula, members
    raise RuntimeError("could not plant a formula in the density range; is the concept set too small?")


def build_units(
    concepts: ConceptSet, n_units: int, seed: int, density: float = 0.005, progress: bool = True
) -> tuple[UnitMasks, list[Planted]]:
    """Units = planted formulas + count-space noise, as a UnitMasks over the signatures."""
    rng = np.random.default_rng([seed, 2])
    n = concepts.n_positions
    weights = concepts.signature_weights
    incidence = sp.csc_array(concepts.signature_concepts, dtype=np.float64)
    indptr, cols, vals, planted = [0], [], [], []
    t0 = time.perf_counter()
    for u in range(n_units):
        formula, members = plant_formula(concepts, rng, incidence)
        f_size = int(weights[members].sum())
        target = density * float(np.exp(rng.normal(0.0, 0.2))) * n
        noise = rng.uniform(0.2, 0.5)
        p_keep = min(0.9, (1 - noise) * target / f_size)
        q = max(0.0, target - p_keep * f_size) / (n - f_size)
        counts = rng.binomial(weights, np.where(members, p_keep, q))
        nonzero = np.flatnonzero(counts)
        indptr.append(indptr[-1] + len(nonzero))
        cols.append(nonzero.astype(np.int32))
        vals.append(counts[nonzero])
        planted.append(Planted(formula, f_size, int(counts[members].sum()), int(counts.sum())))
        if progress and ((u + 1) % 64 == 0 or u + 1 == n_units):
            log(f"  units: {u + 1}/{n_units}, {time.perf_counter() - t0:.1f} s")
    data, indices = np.concatenate(vals), np.concatenate(cols)
    del cols, vals
    matrix = sp.csr_array((data, indices, np.array(indptr, np.int64)), shape=(n_units, concepts.n_signatures))
    del data, indices
    return UnitMasks(matrix, [f"unit{u:03d}" for u in range(n_units)]), planted


def pixel_masks(concepts: ConceptSet, counts: sp.csr_array, seed: int) -> np.ndarray:
    """(U, N) boolean masks with exactly the given per-signature counts (random pixels)."""
    rng = np.random.default_rng([seed, 3])
    sig = concepts.position_signatures
    assert sig is not None
    starts = np.concatenate([[0], np.cumsum(concepts.signature_weights)[:-1]])
    masks = np.zeros((counts.shape[0], concepts.n_positions), bool)
    for u in range(counts.shape[0]):
        dense = counts[[u]].toarray().ravel()
        shuffled = np.lexsort((rng.random(len(sig)), sig))  # by signature, in random order within each
        rank = np.arange(len(sig)) - starts[sig[shuffled]]
        masks[u, shuffled[rank < dense[sig[shuffled]]]] = True
    return masks


# ----------------------------------------------------------------------------- measurement
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        p = stack.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as handle:
                    kids = [int(k) for k in handle.read().split()]
                found += kids
                stack += kids
        except OSError:
            continue
    return found


def _rss_pss(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def _joblib_files(pid: int) -> int:
    """Bytes in joblib's memory-mapping folders of process ``pid`` (RAM when on /dev/shm)."""
    total = 0
    for root in {"/dev/shm", tempfile.gettempdir()}:
        for folder in glob.glob(f"{root}/joblib_memmapping_folder_{pid}_*"):
            for path, _, files in os.walk(folder):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += os.stat(os.path.join(path, name)).st_blocks * 512
    return total


def _hwm(pid: int) -> int:
    """Peak RSS of a process since its exec (VmHWM), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return 0.0


class ResourceMonitor(threading.Thread):
    """Samples memory of this process and all its descendants (joblib workers) in the background.

    ``peak_rss_total`` sums RSS over processes (counts shared pages, e.g. the memory-mapped
    table, once per process: an upper bound); ``peak_pss_total`` sums PSS (shared pages
    split between the processes sharing them: the machine's actual use).
    """

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self._stop_event = threading.Event()
        self.lock = threading.Lock()
        self.child_cpu: dict[int, float] = {}
        self.child_hwm: dict[int, int] = {}
        self.phase_peak_rss = self.phase_peak_pss = 0
        self.peak_rss_total = self.peak_pss_total = 0
        self.max_workers = 0
        self.peak_joblib_files = 0

    def sample(self) -> None:
        me = os.getpid()
        kids = _descendants(me)
        rss = pss = 0
        for pid in [me, *kids]:
            r, p = _rss_pss(pid)
            rss, pss = rss + r, pss + p
        files = _joblib_files(me)
        with self.lock:
            self.peak_joblib_files = max(self.peak_joblib_files, files)
            for pid in kids:
                self.child_cpu[pid] = max(self.child_cpu.get(pid, 0.0), _cpu(pid))
                self.child_hwm[pid] = max(self.child_hwm.get(pid, 0), _hwm(pid))
            self.max_workers = max(self.max_workers, len(kids))
            self.phase_peak_rss = max(self.phase_peak_rss, rss)
            self.phase_peak_pss = max(self.phase_peak_pss, pss)
            self.peak_rss_total = max(self.peak_rss_total, rss)
            self.peak_pss_total = max(self.peak_pss_total, pss)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()

    def phase(self) -> tuple[int, int]:
        """Peak summed RSS and PSS since the previous call."""
        self.sample()
        with self.lock:
            out = (self.phase_peak_rss, self.phase_peak_pss)
            self.phase_peak_rss = self.phase_peak_pss = 0
        return out

    def largest_child_peak(self) -> int:
        with self.lock:
            return max(self.child_hwm.values(), default=0)

    def children_cpu(self) -> float:
        with self.lock:
            return sum(self.child_cpu.values())


class Timer:
    def __init__(self, monitor: ResourceMonitor, name: str) -> None:
        self.monitor, self.name = monitor, name
        self.result: dict[str, float] = {}

    def __enter__(self) -> Timer:
        self.monitor.phase()
        self.wall, self.cpu, self.kids = time.perf_counter(), time.process_time(), self.monitor.children_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        kids = self.monitor.children_cpu() - self.kids
        rss, pss = self.monitor.phase()
        self.result = {
            "wall_s": wall,
            "cpu_s": cpu,
            "worker_cpu_s": kids,
            "peak_rss_gb": rss / 1e9,
            "peak_pss_gb": pss / 1e9,
        }
        log(
            f"{self.name}: {wall:.1f} s wall, {cpu:.1f} s CPU here + {kids:.1f} s in workers, "
            f"peak {pss / 1e9:.2f} GB (PSS, all processes)"
        )


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
        with open("/proc/cpuinfo") as handle:
            info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
        with open("/proc/meminfo") as handle:
            info["ram_gb"] = int(handle.readline().split()[1]) / 1e6
    except (OSError, StopIteration):
        pass
    return info


def gb(kilobytes: int) -> float:
    return kilobytes * 1024 / 1e9


# ----------------------------------------------------------------------------- full run
def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    monitor = ResourceMonitor()
    monitor.start()
    vocab = make_vocabulary(args.seed)
    generator = LabelGenerator(vocab, args.images, args.size, args.chunk, args.seed)
    log(
        f"problem: {args.images:,} images of {args.size}x{args.size} = {generator.n_positions / 1e6:.1f} M positions, "
        f"{vocab.n_concepts:,} concepts ({N_SCENES} scenes, {N_OBJECTS} objects, {N_PARTS} parts, "
        f"{N_COLOURS} colours), {args.units} units, length {args.length}, beam {args.beam}, n_jobs {args.n_jobs}"
    )
    with Timer(monitor, "(a) concept set") as build:
        concepts = ConceptSet.from_label_chunks(
            generator.chunks(), vocab.names, vocab.categories, keep_positions=args.keep_positions
        )
    n_present = int((concepts.sizes > 0).sum())
    log(
        f"    {concepts!r}; {concepts.signature_concepts.nnz:,} incidences; {n_present} concepts present; "
        f"label generation took {generator.seconds:.1f} s of it"
    )
    with Timer(monitor, "(b) units") as unit_timer:
        units, planted = build_units(concepts, args.units, args.seed)
    log(f"    {units!r}; {units.counts.nnz:,} non-zero counts ({units.counts.nnz / len(units):,.0f} per unit)")
    log(f"(c) search: max_length={args.length}, beam_size={args.beam}, n_jobs={args.n_jobs}")
    explainer = CompositionalExplainer(
        max_length=args.length,
        beam_size=args.beam,
        n_jobs=args.n_jobs,
        verbose=1,
        search=args.search,
        budget_seconds=args.budget,
    )
    with Timer(monitor, "(c) search") as search:
        explainer.fit(units, concepts)
    reaped_before = os.times()
    _shutdown_workers()
    reaped = os.times()
    monitor.stop()
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # RUSAGE_CHILDREN is reported but misleading here: loky starts workers by fork + exec,
    # and Linux keeps the pre-exec high-water mark, i.e. the parent's RSS at fork time.
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    found = _score_planted(explainer, planted)
    total_wall = build.result["wall_s"] + unit_timer.result["wall_s"] + search.result["wall_s"]
    peak_pss = monitor.peak_pss_total / 1e9
    result = {
        "mode": "scale",
        "machine": machine(),
        "argv": sys.argv,
        "images": args.images,
        "image_size": args.size,
        "positions": concepts.n_positions,
        "concepts": vocab.n_concepts,
        "concepts_present": n_present,
        "concept_split": {"scene": N_SCENES, "object": N_OBJECTS, "part": N_PARTS, "color": N_COLOURS},
        "signatures": concepts.n_signatures,
        "incidences": int(concepts.signature_concepts.nnz),
        "units": args.units,
        "unit_count_nonzeros": int(units.counts.nnz),
        "mean_unit_density": float(units.n_active.mean() / concepts.n_positions),
        "max_length": args.length,
        "beam_size": args.beam,
        "search_kind": args.search,
        "budget_seconds": args.budget,
        "certificates": explainer.explanations_["certificate"].value_counts().to_dict(),
        "beam_missed": int((explainer.explanations_["beam_iou"] < explainer.explanations_["iou"]).sum()),
        "mean_beam_gap": float(explainer.explanations_["beam_gap"].mean()),
        "mean_ceiling": float(explainer.explanations_["ceiling"].mean()),
        "n_jobs": args.n_jobs,
        "seed": args.seed,
        "keep_positions": args.keep_positions,
        "build_concepts": build.result | {"label_generation_wall_s": generator.seconds},
        "build_units": unit_timer.result,
        "search": search.result
        | {
            "worker_cpu_reaped_s": reaped.children_user
            + reaped.children_system
            - reaped_before.children_user
            - reaped_before.children_system
        },
        "total_wall_s": total_wall,
        "total_wall_without_label_generation_s": total_wall - generator.seconds,
        "peak_pss_all_processes_gb": peak_pss,
        "peak_rss_all_processes_gb": monitor.peak_rss_total / 1e9,
        "ru_maxrss_self_gb": gb(self_peak),
        "ru_maxrss_children_gb": gb(child_peak),
        "largest_worker_peak_rss_gb": monitor.largest_child_peak() / 1e9,
        "peak_joblib_memmap_files_gb": monitor.peak_joblib_files / 1e9,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "max_worker_processes_seen": monitor.max_workers,
        "quality": found,
        "goal_time_met": total_wall <= 180,
        "goal_memory_met": peak_pss + monitor.peak_joblib_files / 1e9 <= 6 and gb(self_peak) <= 6,
    }
    _summary_scale(result)
    return result


def _shutdown_workers() -> None:
    """Stop joblib's worker processes so that their usage shows in RUSAGE_CHILDREN."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True, kill_workers=False)
    except Exception as error:  # pragma: no cover - best effort
        log(f"could not shut the joblib workers down: {error}")


def _score_planted(explainer: CompositionalExplainer, planted: list[Planted]) -> dict[str, Any]:
    table = explainer.explanations_
    exact = at_least = 0
    planted_iou = np.array([p.iou for p in planted])
    found_iou = table["iou"].to_numpy(dtype=float)
    for p, formula, value in zip(planted, explainer.formulas_, found_iou):
        if formula is not None and canonical(formula) == canonical(p.formula):
            exact += 1
        if value >= p.iou - 1e-12:
            at_least += 1
    n = len(planted)
    lengths = table["length"].astype(float)
    return {
        "mean_iou": float(np.nanmean(found_iou)),
        "mean_planted_iou": float(planted_iou.mean()),
        "mean_best_atomic_iou": float(table["best_atomic_iou"].astype(float).mean()),
        "planted_formula_found": exact,
        "iou_at_least_planted": at_least,
        "units": n,
        "mean_length": float(lengths.mean()),
        "planted_mean_length": float(np.mean([p.formula.length for p in planted])),
        "statuses": table["status"].value_counts().to_dict(),
    }


def _summary_scale(r: dict[str, Any]) -> None:
    b, u, s, q = r["build_concepts"], r["build_units"], r["search"], r["quality"]
    search_name = f"(c) {r['search_kind']} L={r['max_length']} B={r['beam_size']} n_jobs={r['n_jobs']}"
    lines = [
        "",
        f"Broden-scale search benchmark ({r['machine'].get('cpu_model', '?')}, {r['machine']['cpus']} CPUs)",
        f"  positions {r['positions']:,} ({r['images']:,} images of {r['image_size']}x{r['image_size']}), "
        f"concepts {r['concepts']:,} ({r['concepts_present']:,} present), signatures {r['signatures']:,}, "
        f"units {r['units']} (density {100 * r['mean_unit_density']:.2f} %, {r['unit_count_nonzeros']:,} counts)",
        f"  {'phase':<38}{'wall s':>9}{'CPU s':>9}{'worker CPU s':>14}{'peak GB (PSS)':>15}",
        f"  {'(a) concept set (incl. label gen.)':<38}{b['wall_s']:>9.1f}{b['cpu_s']:>9.1f}{'':>14}"
        f"{b['peak_pss_gb']:>15.2f}",
        f"  {'    of which label generation':<38}{b['label_generation_wall_s']:>9.1f}",
        f"  {'(b) units':<38}{u['wall_s']:>9.1f}{u['cpu_s']:>9.1f}{'':>14}{u['peak_pss_gb']:>15.2f}",
        f"  {search_name:<38}{s['wall_s']:>9.1f}{s['cpu_s']:>9.1f}{s['worker_cpu_s']:>14.1f}{s['peak_pss_gb']:>15.2f}",
        f"  {'total':<38}{r['total_wall_s']:>9.1f}   (without label generation: "
        f"{r['total_wall_without_label_generation_s']:.1f} s; goal <= 180 s: "
        f"{'met' if r['goal_time_met'] else 'NOT met'})",
        f"  peak memory: {r['peak_pss_all_processes_gb']:.2f} GB PSS summed over all processes "
        f"({r['peak_rss_all_processes_gb']:.2f} GB RSS summed); main process {r['ru_maxrss_self_gb']:.2f} GB, "
        f"largest worker {r['largest_worker_peak_rss_gb']:.2f} GB (VmHWM); goal <= 6 GB: "
        f"{'met' if r['goal_memory_met'] else 'NOT met'}",
        f"  joblib memory-mapped arrays (files in /dev/shm, i.e. RAM, partly counted in the workers' PSS): "
        f"peak {r['peak_joblib_memmap_files_gb']:.2f} GB",
        f"  load average (1 min) at start {r['load_average_start'][0]:.2f}, at end {r['load_average_end'][0]:.2f} "
        f"(other processes on the machine slow the wall times down)",
        f"  quality: mean IoU {q['mean_iou']:.4f} (planted formulas {q['mean_planted_iou']:.4f}, best single "
        f"concept {q['mean_best_atomic_iou']:.4f}); planted formula found {q['planted_formula_found']}/{q['units']}, "
        f"IoU >= planted {q['iou_at_least_planted']}/{q['units']}; mean length {q['mean_length']:.2f} "
        f"(planted {q['planted_mean_length']:.2f})",
        f"  certificates {r['certificates']} (budget {r['budget_seconds']} s per unit); beam below the answer on "
        f"{r['beam_missed']} units; mean upper bound - IoU {r['mean_beam_gap']:.4f}; "
        f"mean ceiling {r['mean_ceiling']:.4f}",
    ]
    print("\n".join(lines), flush=True)


# ----------------------------------------------------------------------------- plain comparison
def _load_plain(wait_s: float) -> Any:
    path = REPO / "tests" / "reference_search.py"
    deadline = time.monotonic() + wait_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} does not exist (waited {wait_s:.0f} s)")
        log(f"waiting for {path.relative_to(REPO)} ...")
        time.sleep(30)
    sys.path.insert(0, str(path.parent))
    from reference_search import plain_search  # type: ignore[import-not-found]

    return plain_search


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    plain_search = _load_plain(args.wait_plain)
    vocab = make_vocabulary(args.seed)
    generator = LabelGenerator(vocab, args.plain_images, args.size, args.chunk, args.seed)
    log(f"compare-plain: {args.plain_images} images = {generator.n_positions:,} positions, {vocab.n_concepts} concepts")
    concepts = ConceptSet.from_label_chunks(generator.chunks(progress=False), vocab.names, vocab.categories)
    log(f"  {concepts!r}, {int((concepts.sizes > 0).sum())} concepts present")
    counts, planted = build_units(concepts, args.plain_units, args.seed, progress=False)
    masks = pixel_masks(concepts, counts.counts, args.seed)
    units = UnitMasks.from_dense(masks, concepts, counts.names)
    assert (units.counts != counts.counts).nnz == 0, "pixel masks do not reproduce the counts"
    by_signature = concepts.signature_concepts.toarray()  # (S, K)
    concept_masks = np.ascontiguousarray(by_signature[concepts.position_signatures].T)  # (K, N) bool
    del by_signature
    log(f"  dense concept masks {concept_masks.shape}, {concept_masks.nbytes / 1e6:.0f} MB")
    settings = dict(
        max_length=args.plain_length,
        beam_size=args.plain_beam,
        operators=("or", "and", "and_not"),
        beam_mode="reference",
        metric="iou",
        complexity_penalty=0.0,
        min_support=1,
        max_expansion_concepts=None,
        top_k=1,
        use_neighbors=True,
    )
    # warm up (imports, first calls) so that unit 0 is not charged for them
    CompositionalExplainer(n_jobs=1, verbose=0, **settings).fit(UnitMasks(units.counts[[0]]), concepts)
    w = time.perf_counter()
    CompositionalExplainer(n_jobs=1, verbose=0, **settings).fit(units, concepts)
    ours_all_s = time.perf_counter() - w
    rows = []
    for u in range(len(units)):
        w = time.perf_counter()
        ours = CompositionalExplainer(n_jobs=1, verbose=0, **settings).fit(UnitMasks(units.counts[[u]]), concepts)
        ours_s = time.perf_counter() - w
        w = time.perf_counter()
        plain = plain_search(concept_masks, list(concepts.names), masks[u], neighbors=None, **settings)
        plain_s = time.perf_counter() - w
        row = ours.explanations_.iloc[0]
        plain_best = plain.top[0] if plain.top else None
        same_formula = plain_best is not None and plain_best.formula == row["formula"]
        same_iou = plain_best is not None and abs(float(plain_best.value) - float(row["iou"])) <= 1e-12
        rows.append(
            dict(
                unit=u,
                ours_s=ours_s,
                plain_s=plain_s,
                ratio=plain_s / ours_s,
                ours_formula=row["formula"],
                plain_formula=plain_best.formula if plain_best else None,
                ours_iou=float(row["iou"]),
                plain_iou=float(plain_best.value) if plain_best else None,
                same_formula=bool(same_formula),
                same_iou=bool(same_iou),
                planted=str(planted[u].formula),
            )
        )
        log(
            f"  unit {u}: plain {plain_s:.2f} s, ours {ours_s:.3f} s, ratio {plain_s / ours_s:.0f}x, "
            f"same formula {same_formula}, same IoU {same_iou}"
        )
    ours_total = sum(r["ours_s"] for r in rows)
    plain_total = sum(r["plain_s"] for r in rows)
    ratios = np.array([r["ratio"] for r in rows])
    result = {
        "mode": "compare-plain",
        "machine": machine(),
        "argv": sys.argv,
        "images": args.plain_images,
        "positions": concepts.n_positions,
        "concepts": vocab.n_concepts,
        "concepts_present": int((concepts.sizes > 0).sum()),
        "signatures": concepts.n_signatures,
        "units": len(units),
        "settings": settings,
        "rows": rows,
        "ours_total_s": ours_total,
        "plain_total_s": plain_total,
        "ratio_total": plain_total / ours_total,
        "ours_one_fit_all_units_s": ours_all_s,
        "ratio_one_fit_all_units": plain_total / ours_all_s,
        "peak_rss_gb": gb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "ratio_median": float(np.median(ratios)),
        "ratio_min": float(ratios.min()),
        "all_same_formula": all(r["same_formula"] for r in rows),
        "all_same_iou": all(r["same_iou"] for r in rows),
        "goal_ratio_met": bool(ratios.min() >= 100),
    }
    print(
        f"\nplain vs ours: {result['positions']:,} positions, {result['concepts']} concepts "
        f"({result['concepts_present']} present), {result['signatures']:,} signatures, "
        f"length {args.plain_length}, beam {args.plain_beam}, 1 process each"
    )
    print(f"  {'unit':>4}{'plain s':>10}{'ours s':>10}{'ratio':>8}  {'same':<6}formula (IoU)")
    for r in rows:
        same = "yes" if r["same_formula"] and r["same_iou"] else "NO"
        print(
            f"  {r['unit']:>4}{r['plain_s']:>10.2f}{r['ours_s']:>10.3f}{r['ratio']:>7.0f}x  {same:<6}"
            f"{r['ours_formula']} ({r['ours_iou']:.4f})"
        )
        if same == "NO":
            print(f"  {'':>4}{'':>28}  plain: {r['plain_formula']} ({r['plain_iou']})")
    print(
        f"  total: plain {plain_total:.1f} s, ours {ours_total:.2f} s, ratio {result['ratio_total']:.0f}x "
        f"(per unit: median {result['ratio_median']:.0f}x, min {result['ratio_min']:.0f}x; goal >= 100x: "
        f"{'met' if result['goal_ratio_met'] else 'NOT met'}); identical formulas and IoUs: "
        f"{result['all_same_formula'] and result['all_same_iou']}",
    )
    print(
        f"  one fit() over all {len(units)} units: {ours_all_s:.3f} s, ratio {plain_total / ours_all_s:.0f}x; "
        f"peak RSS {result['peak_rss_gb']:.2f} GB",
        flush=True,
    )
    return result


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=22_210, help="number of images (default 22,210)")
    parser.add_argument("--size", type=int, default=112, help="image side in pixels (default 112)")
    parser.add_argument("--chunk", type=int, default=128, help="images per label chunk (default 128)")
    parser.add_argument("--units", type=int, default=512, help="number of units (default 512)")
    parser.add_argument("--length", type=int, default=10, help="max formula length (default 10)")
    parser.add_argument("--beam", type=int, default=10, help="beam size (default 10)")
    parser.add_argument("--n-jobs", type=int, default=2, help="search processes (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--keep-positions",
        action="store_true",
        help="keep every position's signature id (4 bytes/position; needed to turn per-pixel unit masks into\n"
        "counts, not by the search; off by default since units are built in count space)",
    )
    parser.add_argument("--search", choices=("beam", "optimal"), default="beam", help="beam (default) or optimal")
    parser.add_argument("--budget", type=float, default=None, help="with --search optimal: seconds per unit")
    parser.add_argument("--json", metavar="OUT", help="write the numbers to this JSON file")
    parser.add_argument("--compare-plain", action="store_true", help="time tests/reference_search.py against ours")
    parser.add_argument("--plain-images", type=int, default=40, help="images for --compare-plain (default 40)")
    parser.add_argument("--plain-units", type=int, default=10, help="units for --compare-plain (default 10)")
    parser.add_argument("--plain-length", type=int, default=3, help="max length for --compare-plain (default 3)")
    parser.add_argument("--plain-beam", type=int, default=5, help="beam size for --compare-plain (default 5)")
    parser.add_argument("--wait-plain", type=float, default=1200, help="seconds to wait for the plain implementation")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run_compare(args) if args.compare_plain else run_scale(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
