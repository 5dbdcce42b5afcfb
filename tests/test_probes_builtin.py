"""Built-in probes: colour naming, the procedural shapes probe and the Tux Paint stamps probe."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from logiclens import ConceptSet
from logiclens.vision.probes import stamps as stamps_module
from logiclens.vision.probes.colors import COLOR_NAMES, COLOR_PROTOTYPES, color_labels
from logiclens.vision.probes.shapes import (
    PART_NAMES,
    SCENE_NAMES,
    SHAPE_NAMES,
    ShapesProbe,
    block_bounds,
    centre_pixels,
    draw_shape,
)
from logiclens.vision.probes.stamps import StampsProbe, find_stamps_root, mask_is_informative, stamps_available

Image = pytest.importorskip("PIL.Image", reason="the stamps probe reads PNG files with Pillow")


def reference_block_mean(image_chw: np.ndarray, mask_size: tuple[int, int]) -> np.ndarray:
    """Mean colour of each mask pixel's block, written independently of the probes' code.

    Mask pixel (i, j) summarises the image rows floor(i H / h) .. floor((i + 1) H / h) - 1
    and the columns defined likewise.
    """
    image = image_chw.transpose(1, 2, 0).astype(np.float64)
    (height, width), (h, w) = image.shape[:2], mask_size
    out = np.empty((h, w, 3))
    for i in range(h):
        for j in range(w):
            block = image[i * height // h : (i + 1) * height // h, j * width // w : (j + 1) * width // w]
            out[i, j] = block.reshape(-1, 3).sum(axis=0) / (block.shape[0] * block.shape[1])
    return out


def assert_colors_match_pixels(probe, image: np.ndarray, labels: np.ndarray) -> None:
    offset = probe.concept_names.index(COLOR_NAMES[0])
    expected = color_labels(reference_block_mean(image, probe.mask_size))
    np.testing.assert_array_equal(labels[..., -1] - offset, expected)


def category_ids(probe, category: str) -> set[int]:
    return {i for i, c in enumerate(probe.concept_categories) if c == category}


# ---------------------------------------------------------------------- colours
@pytest.mark.parametrize("name", COLOR_NAMES)
def test_every_colour_prototype_is_named_after_its_colour(name: str) -> None:
    prototypes = np.array(COLOR_PROTOTYPES[name])
    assert [COLOR_NAMES[i] for i in color_labels(prototypes)] == [name] * len(prototypes)


def test_grey_ramp_goes_black_grey_white_in_order() -> None:
    levels = np.linspace(0.0, 1.0, 256)
    names = [COLOR_NAMES[i] for i in color_labels(np.repeat(levels[:, None], 3, axis=1))]
    assert set(names) == {"black-c", "grey-c", "white-c"}
    order = {"black-c": 0, "grey-c": 1, "white-c": 2}
    assert all(order[a] <= order[b] for a, b in itertools.pairwise(names))
    assert (names[0], names[128], names[-1]) == ("black-c", "grey-c", "white-c")


def test_color_labels_keep_the_leading_shape_and_name_obvious_colours() -> None:
    rgb = np.random.default_rng(0).random((4, 5, 6, 3))
    labels = color_labels(rgb)
    assert labels.shape == (4, 5, 6)
    assert labels.min() >= 0 and labels.max() < len(COLOR_NAMES)
    obvious = {
        (0.9, 0.1, 0.1): "red-c",
        (0.1, 0.2, 0.45): "blue-c",
        (0.2, 0.6, 0.2): "green-c",
        (0.45, 0.3, 0.15): "brown-c",
    }
    assert [COLOR_NAMES[i] for i in color_labels(np.array(list(obvious)))] == list(obvious.values())


# ---------------------------------------------------------------------- shapes
@pytest.fixture(scope="module")
def shapes() -> ShapesProbe:
    return ShapesProbe(n_images=40, seed=3)


def test_shapes_vocabulary_and_config(shapes: ShapesProbe) -> None:
    assert len(shapes) == 40
    assert len(set(shapes.concept_names)) == len(shapes.concept_names) == len(shapes.concept_categories)
    assert 8 <= len(SCENE_NAMES) <= 12 and len(SHAPE_NAMES) >= 8 and {"border", "fill"} <= set(PART_NAMES)
    counts = {c: shapes.concept_categories.count(c) for c in ("scene", "object", "part", "color")}
    assert counts == {"scene": len(SCENE_NAMES), "object": len(SHAPE_NAMES), "part": 2 * len(SHAPE_NAMES), "color": 11}
    config = shapes.config()
    assert config["kind"] == "shapes" and config["seed"] == 3 and config["n_images"] == 40
    assert config["image_size"] == [224, 224] and config["mask_size"] == [112, 112]
    assert shapes.group(7) == "7"
    assert ShapesProbe(n_images=40, seed=4).fingerprint() != shapes.fingerprint()
    with pytest.raises(IndexError):
        shapes.load(40)


def test_shapes_are_deterministic_per_seed_and_index(shapes: ShapesProbe) -> None:
    again = ShapesProbe(n_images=40, seed=3)
    for index in (5, 0, 5):  # order of access does not matter
        image, labels = shapes.load(index)
        image2, labels2 = again.load(index)
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(labels, labels2)
    other_image, _ = ShapesProbe(n_images=40, seed=4).load(5)
    assert not np.array_equal(shapes.load(5)[0], other_image)
    assert not np.array_equal(shapes.load(5)[0], shapes.load(6)[0])


def test_shapes_arrays_have_the_promised_shapes_dtypes_and_ranges(shapes: ShapesProbe) -> None:
    scenes, objects, parts, colors = (category_ids(shapes, c) for c in ("scene", "object", "part", "color"))
    for index in range(10):
        image, labels = shapes.load(index)
        assert image.dtype == np.float32 and image.shape == (3, 224, 224)
        assert image.min() >= 0.0 and image.max() <= 1.0
        assert labels.dtype == np.int32 and labels.shape == (112, 112, 4)
        assert len(np.unique(labels[..., 0])) == 1 and int(labels[0, 0, 0]) in scenes
        assert set(np.unique(labels[..., 1])) <= objects | {-1}
        assert set(np.unique(labels[..., 2])) <= parts | {-1}
        assert set(np.unique(labels[..., 3])) <= colors


def test_shape_labels_follow_occlusion_and_the_pixels(shapes: ShapesProbe) -> None:
    rows, cols = centre_pixels(224, 112), centre_pixels(224, 112)
    for index in range(12):
        image, scene, drawn, owner, _ = shapes.render(index)
        # draw every shape alone: the topmost shape covering a pixel must own it
        expected = np.full(owner.shape, -1)
        for number, shape in enumerate(drawn):
            alone = np.full(owner.shape, -1, np.int8)
            draw_shape(np.zeros((224, 224, 3), np.float32), alone, np.full(owner.shape, -1, np.int8), shape, 0)
            expected[alone == 0] = number
        np.testing.assert_array_equal(owner, expected)
        _, labels = shapes.load(index)
        assert labels[0, 0, 0] == shapes.concept_names.index(SCENE_NAMES[scene])
        centre_owner = owner[np.ix_(rows, cols)]
        centre_pixels_rgb = image[np.ix_(rows, cols)]
        on = centre_owner >= 0
        np.testing.assert_array_equal(labels[..., 1] >= 0, on)
        np.testing.assert_array_equal(labels[..., 2] >= 0, on)  # parts exactly where objects are
        for i, j in zip(*np.nonzero(on)):
            shape = drawn[centre_owner[i, j]]
            object_name = shapes.concept_names[labels[i, j, 1]]
            part_name = shapes.concept_names[labels[i, j, 2]]
            assert object_name == SHAPE_NAMES[shape.kind]
            assert part_name.split("/") in ([object_name, "border"], [object_name, "fill"])
            color = shape.border_color if part_name.endswith("/border") else shape.fill_color
            np.testing.assert_array_equal(centre_pixels_rgb[i, j], color)


def test_border_and_fill_partition_each_shape_with_the_border_along_the_outline(shapes: ShapesProbe) -> None:
    for index in range(12):
        _, _, drawn, _, _ = shapes.render(index)
        for shape in drawn:
            owner = np.full((224, 224), -1, np.int8)
            part = np.full((224, 224), -1, np.int8)
            draw_shape(np.zeros((224, 224, 3), np.float32), owner, part, shape, 0)
            inside = owner == 0
            assert inside.any()
            np.testing.assert_array_equal(part >= 0, inside)  # border or fill on every shape pixel
            border = part == PART_NAMES.index("border")
            assert border.any() and (part == PART_NAMES.index("fill")).any()
            padded = np.pad(inside, 1, mode="edge")  # the image edge is no outline
            outline = inside & ~(padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
            assert border[outline].all()


def test_shape_colour_labels_name_the_mean_colour_of_each_block(shapes: ShapesProbe) -> None:
    for index in range(6):
        assert_colors_match_pixels(shapes, *shapes.load(index))


def test_shapes_with_uneven_blocks() -> None:
    probe = ShapesProbe(n_images=3, seed=1, image_size=(60, 50), mask_size=(25, 20))
    starts, stops = block_bounds(60, 25)
    assert starts[0] == 0 and stops[-1] == 60 and (stops - starts).min() >= 2
    assert ((starts <= centre_pixels(60, 25)) & (centre_pixels(60, 25) < stops)).all()
    for index in range(3):
        image, labels = probe.load(index)
        assert image.shape == (3, 60, 50) and labels.shape == (25, 20, 4)
        assert_colors_match_pixels(probe, image, labels)
    with pytest.raises(ValueError, match="mask length"):
        ShapesProbe(image_size=100, mask_size=120)


def test_a_concept_set_built_from_shapes_labels_has_every_category(shapes: ShapesProbe) -> None:
    chunks = [shapes.load(i)[1].reshape(-1, 4) for i in range(20)]
    concepts = ConceptSet.from_label_chunks(chunks, shapes.concept_names, shapes.concept_categories)
    assert concepts.n_positions == 20 * 112 * 112
    present = {c for c, size in zip(concepts.categories, concepts.sizes) if size > 0}
    assert present == {"scene", "object", "part", "color"}
    # every object pixel is exactly one of its shape's border or fill
    for shape in SHAPE_NAMES:
        if concepts.count(shape):
            assert concepts.count(f"({shape}/border OR {shape}/fill) AND NOT {shape}") == 0
            assert concepts.count(f"{shape}/border OR {shape}/fill") == concepts.count(shape)
            assert concepts.count(f"{shape}/border AND {shape}/fill") == 0


# ---------------------------------------------------------------------- stamps: a fake tree
def write_stamp(
    path: Path, color: tuple[int, int, int], size: tuple[int, int], kind: str = "disc", mode: str = "RGBA"
) -> None:
    """A small cut-out: a coloured disc, ring or full rectangle with transparency around it."""
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width]
    radius = np.hypot((yy + 0.5 - height / 2) / (height / 2), (xx + 0.5 - width / 2) / (width / 2))
    alpha = {"disc": radius < 0.9, "ring": (radius < 0.95) & (radius > 0.5), "box": np.ones_like(radius, bool)}[kind]
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = color
    rgba[..., 3] = np.where(alpha, 255, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba).convert(mode).save(path)


FAKE_STAMPS = {
    "animals/birds/owl.png": ((30, 60, 200), (40, 30), "disc", "RGBA"),
    "animals/mammals/cats/lion.png": ((200, 150, 40), (50, 60), "ring", "RGBA"),
    "food/fruit/apple.png": ((220, 20, 20), (36, 36), "disc", "RGBA"),
    "food/fruit/pear.png": ((120, 120, 120), (30, 20), "disc", "LA"),
    "food/bread.png": ((160, 90, 40), (24, 48), "disc", "RGBA"),
    "plants/eggplant.png": ((90, 30, 120), (30, 30), "disc", "RGBA"),
    "food/vegetables/eggplant.png": ((100, 40, 130), (40, 30), "ring", "RGBA"),
    # excluded: cartoon / symbols / alphabets folders at any depth, and a rectangular mask
    "cartoon/duck.png": ((250, 250, 0), (30, 30), "disc", "RGBA"),
    "animals/cartoon/fox.png": ((250, 120, 0), (30, 30), "disc", "RGBA"),
    "symbols/alphabets/a.png": ((0, 0, 0), (30, 30), "disc", "RGBA"),
    "town/signs/box.png": ((0, 200, 0), (30, 30), "box", "RGBA"),
}


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "stamps"
    for relative, (color, size, kind, mode) in FAKE_STAMPS.items():
        write_stamp(root / relative, color, size, kind, mode)
    (root / "food" / "fruit" / "apple.txt").write_text("An apple.")
    return root


def test_stamps_vocabulary_comes_from_the_usable_files(fake_root: Path) -> None:
    probe = StampsProbe(n_images=10, root=fake_root, image_size=64, mask_size=32)
    names = probe.concept_names
    by_category = {
        c: [n for n, cat in zip(names, probe.concept_categories) if cat == c] for c in set(probe.concept_categories)
    }
    assert by_category["object"] == ["apple", "bread", "eggplant", "lion", "owl", "pear"]
    assert by_category["object-group"] == [
        "animals",
        "animals/birds",
        "animals/mammals",
        "animals/mammals/cats",
        "food",
        "food/fruit",
        "food/vegetables",
        "plants",
    ]
    assert by_category["scene"] == list(SCENE_NAMES) and by_category["color"] == list(COLOR_NAMES)
    assert len(names) == len(set(names))
    assert {stamp.path for stamp in probe.stamps} == {
        p for p in FAKE_STAMPS if p.split("/")[0] in ("animals", "food", "plants") and "cartoon" not in p
    }
    assert probe.depth == 3
    assert mask_is_informative(np.pad(np.full((5, 5), 255, np.uint8), 3)) is False
    assert mask_is_informative(np.zeros((5, 5), np.uint8)) is False


def test_stamps_are_deterministic_and_group_by_first_stamp(fake_root: Path) -> None:
    probe = StampsProbe(n_images=10, seed=2, root=fake_root, image_size=64, mask_size=32)
    again = StampsProbe(n_images=10, seed=2, root=fake_root, image_size=64, mask_size=32)
    assert again.concept_names == probe.concept_names and again.fingerprint() == probe.fingerprint()
    for index in (3, 1, 3):
        image, labels = probe.load(index)
        image2, labels2 = again.load(index)
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(labels, labels2)
        assert probe.group(index) == probe.stamps_of(index)[0].name
    other = StampsProbe(n_images=10, seed=3, root=fake_root, image_size=64, mask_size=32)
    assert not np.array_equal(other.load(3)[0], probe.load(3)[0])
    assert other.concept_names == probe.concept_names  # the vocabulary does not depend on the images


def expected_owner(probe: StampsProbe, placements) -> np.ndarray:
    """Owner map rebuilt from the placements: each stamp cropped, resized, mirrored, alpha > 127."""
    owner = np.full(probe.image_size, -1)
    for number, spot in enumerate(placements):
        with Image.open(probe.root / probe.stamps[spot.stamp].path) as file:
            rgba = file.convert("RGBA")
        rgba = rgba.crop(rgba.getchannel("A").getbbox())
        alpha = np.asarray(rgba.resize((spot.width, spot.height), Image.Resampling.BILINEAR))[..., 3]
        alpha = alpha[:, ::-1] if spot.mirrored else alpha
        region = owner[spot.top : spot.top + spot.height, spot.left : spot.left + spot.width]
        region[alpha > 127] = number
    return owner


def test_stamp_labels_follow_occlusion(fake_root: Path) -> None:
    probe = StampsProbe(n_images=30, seed=0, root=fake_root, image_size=64, mask_size=32)
    rows = centre_pixels(64, 32)
    overlaps = 0
    for index in range(30):
        image, scene, placements, owner = probe.render(index)
        np.testing.assert_array_equal(owner, expected_owner(probe, placements))
        covered = [expected_owner(probe, [spot]) == 0 for spot in placements]
        overlaps += int(sum(c.astype(int) for c in covered).max() > 1)
        _, labels = probe.load(index)
        assert labels.shape == (32, 32, 3 + probe.depth)
        assert labels[0, 0, 0] == probe.concept_names.index(SCENE_NAMES[scene]) and len(np.unique(labels[..., 0])) == 1
        centre_owner = owner[np.ix_(rows, rows)]
        for i in range(32):
            for j in range(32):
                got = [probe.concept_names[k] for k in labels[i, j, 1:-1] if k >= 0]
                if centre_owner[i, j] < 0:
                    assert got == []
                else:
                    stamp = probe.stamps[placements[centre_owner[i, j]].stamp]
                    assert got == [stamp.name, *stamp.groups]
        assert_colors_match_pixels(probe, image.transpose(2, 0, 1), labels)
    assert overlaps > 0  # the seed does exercise occlusion


def test_stamps_fingerprint_changes_when_a_file_is_added(fake_root: Path) -> None:
    probe = StampsProbe(n_images=5, root=fake_root, image_size=64, mask_size=32)
    write_stamp(fake_root / "vehicles" / "car.png", (10, 10, 10), (20, 40))
    grown = StampsProbe(n_images=5, root=fake_root, image_size=64, mask_size=32)
    assert grown.config()["stamps_fingerprint"] != probe.config()["stamps_fingerprint"]
    assert grown.fingerprint() != probe.fingerprint()
    assert "car" in grown.concept_names and "vehicles" in grown.concept_names


def test_stamps_build_a_concept_set(fake_root: Path) -> None:
    probe = StampsProbe(n_images=20, root=fake_root, image_size=64, mask_size=32)
    chunks = [probe.load(i)[1].reshape(-1, 3 + probe.depth) for i in range(20)]
    concepts = ConceptSet.from_label_chunks(chunks, probe.concept_names, probe.concept_categories)
    assert {c for c, size in zip(concepts.categories, concepts.sizes) if size > 0} == {
        "scene",
        "object",
        "object-group",
        "color",
    }
    assert concepts.count("apple AND NOT food/fruit") == 0 and concepts.count("owl AND NOT animals") == 0


def test_stamps_lookup_order_and_missing_data(tmp_path: Path, fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamps_module, "SYSTEM_STAMPS_ROOT", tmp_path / "no-system-stamps")
    monkeypatch.setenv("LOGICLENS_CACHE", str(tmp_path / "cache"))
    assert not stamps_available() and find_stamps_root() is None
    assert not (tmp_path / "cache").exists()  # looking has no side effects
    with pytest.raises(FileNotFoundError, match="shapes"):
        StampsProbe()
    with pytest.raises(FileNotFoundError):
        StampsProbe(root=tmp_path / "missing")
    # an unpacked package is found through its usr/share/tuxpaint/stamps folder
    unpacked = tmp_path / "cache" / "tuxpaint-stamps" / "usr" / "share" / "tuxpaint"
    unpacked.mkdir(parents=True)
    fake_root.rename(unpacked / "stamps")
    assert find_stamps_root() == unpacked / "stamps"
    assert find_stamps_root(tmp_path / "cache" / "tuxpaint-stamps") == unpacked / "stamps"
    assert len(StampsProbe(n_images=3, image_size=64, mask_size=32).stamps) == 7


def test_ensure_fetches_only_when_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamps_module, "SYSTEM_STAMPS_ROOT", tmp_path / "no-system-stamps")
    calls = []

    def fake_fetch(cache_dir=None) -> Path:
        calls.append(cache_dir)
        target = Path(cache_dir) / "usr" / "share" / "tuxpaint" / "stamps"
        write_stamp(target / "food" / "fruit" / "apple.png", (220, 20, 20), (36, 36))
        return target

    monkeypatch.setattr(stamps_module, "fetch_stamps", fake_fetch)
    probe = StampsProbe.ensure(n_images=2, image_size=64, mask_size=32, cache_dir=tmp_path / "c")
    assert calls == [tmp_path / "c"] and [s.name for s in probe.stamps] == ["apple"]
    StampsProbe.ensure(n_images=2, image_size=64, mask_size=32, cache_dir=tmp_path / "c")
    assert len(calls) == 1
    with pytest.raises(FileNotFoundError):
        StampsProbe.ensure(root=tmp_path / "missing")
    assert issubclass(stamps_module.StampsFetchError, OSError)


def test_fetch_without_debian_tools_fails_as_an_oserror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamps_module.shutil, "which", lambda name: None)
    with pytest.raises(OSError, match="apt-get and dpkg-deb"):
        stamps_module.fetch_stamps(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not stamps_available(), reason="Debian's tuxpaint-stamps-default is not installed or fetched")
def test_real_debian_stamps() -> None:
    probe = StampsProbe(n_images=6)
    assert len(probe.stamps) > 300
    assert not any({"cartoon", "symbols", "alphabets"} & set(s.path.split("/")) for s in probe.stamps)
    assert len(set(probe.concept_names)) == len(probe.concept_names)
    assert {"animals", "animals/birds", "food"} <= set(probe.concept_names)
    for index in range(len(probe)):
        image, labels = probe.load(index)
        assert image.shape == (3, 224, 224) and labels.shape == (112, 112, 3 + probe.depth)
        assert labels.max() < len(probe.concept_names)
        assert (labels[..., 1] >= 0).any()
        assert_colors_match_pixels(probe, image, labels)
