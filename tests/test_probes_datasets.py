"""Dataset loaders: Broden trees and segmentation folders built from small fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from logiclens import ConceptSet
from logiclens.vision.probes.base import ProbeDataset
from logiclens.vision.probes.broden import BrodenProbe
from logiclens.vision.probes.segmentation import SegmentationFolderProbe, read_label_map, write_label_map

Image = pytest.importorskip("PIL.Image", reason="the dataset loaders read images with Pillow")

# --------------------------------------------------------------------------------------
# A Broden tree: 5 images of 32x32, label maps of 16x16 encoded as R + 256*G
# --------------------------------------------------------------------------------------

LABELS = {
    1: ("red-c", "color(3)"),
    2: ("blue-c", "color(2)"),
    3: ("green-c", "color(1)"),
    5: ("person", "object(1);part(1)"),
    7: ("car", "object(3)"),
    300: ("wheel", "part(2)"),
    301: ("hand", "part(1)"),
    400: ("street-s", "scene(2)"),
    401: ("kitchen-s", "scene(2)"),
    500: ("unused-o", "object(0)"),
}
HEADER = "image,split,ih,iw,sh,sw,color,object,part,material,scene,texture"
ALL_IDS = [1, 2, 3, 5, 7, 300, 301, 400, 401]


def _maps() -> dict[str, np.ndarray]:
    """Raw label maps (global Broden ids) of the fixture, by file name."""
    a1_color = np.ones((16, 16), np.int32)
    a1_color[:, 8:] = 2
    a1_object = np.full((16, 16), 7, np.int32)
    a1_object[:8] = 5
    a1_object[14:] = 0
    a1_part_1 = np.zeros((16, 16), np.int32)
    a1_part_1[8:12, :8] = 300
    a1_part_2 = np.zeros((16, 16), np.int32)
    a1_part_2[10:14, 4:12] = 301
    a1_part_2[12:14, :4] = 300
    a2_object = np.zeros((16, 16), np.int32)
    a2_object[:4] = 7
    p1_object = np.zeros((16, 16), np.int32)
    p1_object[:, :8] = 7
    p1_part = np.zeros((16, 16), np.int32)
    p1_part[:4] = 5
    return {
        "ade20k/a1_color.png": a1_color,
        "ade20k/a1_object.png": a1_object,
        "ade20k/a1_part_1.png": a1_part_1,
        "ade20k/a1_part_2.png": a1_part_2,
        "ade20k/a2_color.png": np.full((16, 16), 2, np.int32),
        "ade20k/a2_object.png": a2_object,
        "pascal/p1_object.png": p1_object,
        "pascal/p1_part.png": p1_part,
        "ade20k/a3_color.png": np.ones((16, 16), np.int32),
        "pascal/p2_color.png": np.full((16, 16), 3, np.int32),
    }


#: (image, color, object, part, scene) of each index row, in order
ROWS = [
    (
        "ade20k/a1.jpg",
        "ade20k/a1_color.png",
        "ade20k/a1_object.png",
        "ade20k/a1_part_1.png;ade20k/a1_part_2.png",
        "400",
    ),
    ("pascal/p1.jpg", "", "pascal/p1_object.png", "pascal/p1_part.png", ""),
    ("ade20k/a2.jpg", "ade20k/a2_color.png", "ade20k/a2_object.png", "", "401"),
    ("ade20k/a3.png", "ade20k/a3_color.png", "", "", "0"),
    ("pascal/p2.jpg", "pascal/p2_color.png", "", "", "400;401"),
]
A3_COLOUR = (255, 128, 0)


def _write_encoded(path: Path, ids: np.ndarray, rng: np.random.Generator) -> None:
    """Write ids as an RGB PNG with R + 256*G and a random (unused) blue channel."""
    rgb = np.stack([ids % 256, ids // 256, rng.integers(0, 256, ids.shape)], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def _index_text(rows: list[tuple[str, ...]]) -> str:
    lines = [HEADER] + [f"{img},train,32,32,16,16,{col},{obj},{part},,{scene}," for img, col, obj, part, scene in rows]
    return "\n".join(lines) + "\n"


def _label_text() -> str:
    lines = ["number,name,category,frequency,coverage,syns", "0,-,-,0,0.0,"]
    lines += [f'{n},{name},"{cat}",1,0.5,{name}' for n, (name, cat) in LABELS.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def broden(tmp_path: Path) -> Path:
    root = tmp_path / "broden1_224"
    rng = np.random.default_rng(0)
    for name, ids in _maps().items():
        _write_encoded(root / "images" / name, ids, rng)
    for image, *_ in ROWS:
        path = root / "images" / image
        if image.endswith(".png"):
            Image.new("RGB", (32, 32), A3_COLOUR).save(path)
        else:
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    (root / "index.csv").write_text(_index_text(ROWS))
    (root / "index_ade20k.csv").write_text(_index_text([r for r in ROWS if r[0].startswith("ade20k/")]))
    (root / "label.csv").write_text(_label_text())
    (root / "category.csv").write_text(
        "name,first,last,count,frequency\ncolor,1,3,3,3\nobject,5,500,3,3\npart,5,301,3,2\nscene,400,401,2,3\n"
    )
    (root / "c_object.csv").write_text("code,number,name,frequency,coverage\n1,5,person,1,0.5\n2,7,car,3,0.5\n")
    return root


def _expected_sizes(rows: list[tuple[str, ...]], ids: list[int], categories: set[str]) -> list[int]:
    """Pixels of each concept: OR over the row's label maps, scenes broadcast over 16x16."""
    maps = _maps()
    sizes = []
    for label in ids:
        total = 0
        for _, col, obj, part, scene in rows:
            cells = {"color": col, "object": obj, "part": part}
            files = [f for c, cell in cells.items() if c in categories for f in cell.split(";") if f]
            present = np.zeros((16, 16), bool)
            for name in files:
                present |= maps[name] == label
            if "scene" in categories and str(label) in scene.split(";"):
                present[:] = True
            total += int(present.sum())
        sizes.append(total)
    return sizes


def _concept_set(probe: ProbeDataset) -> ConceptSet:
    chunks = [probe.load(i)[1] for i in range(len(probe))]
    return ConceptSet.from_label_chunks(
        [labels.reshape(-1, labels.shape[-1]) for labels in chunks], probe.concept_names, probe.concept_categories
    )


# --------------------------------------------------------------------------------------
# Broden: content
# --------------------------------------------------------------------------------------


def test_broden_concepts_are_used_labels_sorted_by_id_with_their_column(broden: Path) -> None:
    probe = BrodenProbe(broden)
    assert len(probe) == 5
    assert probe.label_ids == ALL_IDS
    assert probe.concept_names == [LABELS[i][0] for i in ALL_IDS]
    assert probe.concept_categories == ["color"] * 3 + ["object"] * 2 + ["part"] * 2 + ["scene"] * 2
    assert probe.categories == ("color", "object", "part", "material", "scene", "texture")
    assert probe.mask_size == (16, 16)
    assert probe.image_size == (32, 32)
    assert "unused-o" not in probe.concept_names


def test_broden_decodes_r_plus_256g_ignores_blue_and_ors_part_channels(broden: Path) -> None:
    probe = BrodenProbe(broden)
    c = {i: probe.label_ids.index(i) for i in ALL_IDS}
    image, labels = probe.load(0)
    assert labels.dtype == np.int32
    assert labels.shape == (16, 16, 5)  # color, object, two part maps, scene
    assert labels[0, 0].tolist() == [c[1], c[5], -1, -1, c[400]]
    assert labels[10, 5].tolist() == [c[1], c[7], c[300], c[301], c[400]]
    assert labels[12, 2].tolist() == [c[1], c[7], -1, c[300], c[400]]
    assert labels[14, 9].tolist() == [c[2], -1, -1, -1, c[400]]
    assert image.shape == (3, 32, 32)
    assert image.dtype == np.float32


def test_broden_scene_ids_are_broadcast_and_zero_scene_is_ignored(broden: Path) -> None:
    probe = BrodenProbe(broden)
    c = {i: probe.label_ids.index(i) for i in ALL_IDS}
    _, p2 = probe.load(4)
    assert p2.shape == (16, 16, 3)
    assert (p2[..., 0] == c[3]).all()
    assert (p2[..., 1] == c[400]).all()
    assert (p2[..., 2] == c[401]).all()
    _, a3 = probe.load(3)
    assert a3.shape == (16, 16, 1)  # scene "0" is no label
    _, p1 = probe.load(1)
    assert p1.shape == (16, 16, 2)  # empty color and scene cells give no channel
    assert p1[0, 0].tolist() == [c[7], c[5]]


def test_broden_concept_set_counts_pixels_per_concept(broden: Path) -> None:
    probe = BrodenProbe(broden)
    concepts = _concept_set(probe)
    assert concepts.names == tuple(probe.concept_names)
    assert concepts.n_positions == 5 * 16 * 16
    expected = _expected_sizes(ROWS, probe.label_ids, {"color", "object", "part", "scene"})
    assert concepts.sizes.tolist() == expected
    wheel = probe.concept_names.index("wheel")
    assert expected[wheel] == 8 * 4 + 2 * 4  # part_1 block plus the part of part_2 outside it


def test_broden_source_selection(broden: Path) -> None:
    ade = BrodenProbe(broden, sources=["ade20k"])
    assert [ade.group(i) for i in range(len(ade))] == ["ade20k/a1.jpg", "ade20k/a2.jpg", "ade20k/a3.png"]
    assert "green-c" not in ade.concept_names
    pascal = BrodenProbe(broden, sources="pascal/")
    assert pascal.concept_names == ["green-c", "person", "car", "street-s", "kitchen-s"]
    assert pascal.concept_categories == ["color", "part", "object", "scene", "scene"]  # person only as a part here
    from_file = BrodenProbe(broden, index_file="index_ade20k.csv")
    assert from_file.concept_names == ade.concept_names
    assert len(from_file) == 3
    assert from_file.config()["index_file"] == "index_ade20k.csv"


def test_broden_category_selection(broden: Path) -> None:
    parts = BrodenProbe(broden, categories=["part"])
    assert parts.concept_names == ["person", "wheel", "hand"]
    assert parts.concept_categories == ["part"] * 3
    _, labels = parts.load(0)
    assert labels.shape == (16, 16, 2)
    _, empty = parts.load(2)
    assert empty.shape == (16, 16, 1)
    assert (empty == -1).all()
    selected = BrodenProbe(broden, categories=["scene", "object"])
    assert selected.categories == ("object", "scene")
    assert selected.concept_names == ["person", "car", "street-s", "kitchen-s"]
    assert selected.concept_categories == ["object", "object", "scene", "scene"]
    concepts = _concept_set(selected)
    assert concepts.sizes.tolist() == _expected_sizes(ROWS, selected.label_ids, {"object", "scene"})


def test_broden_n_images_takes_the_first_selected_rows(broden: Path) -> None:
    probe = BrodenProbe(broden, n_images=2)
    assert len(probe) == 2
    assert [probe.group(i) for i in range(2)] == ["ade20k/a1.jpg", "pascal/p1.jpg"]
    assert probe.concept_names == ["red-c", "blue-c", "person", "car", "wheel", "hand", "street-s"]
    ade = BrodenProbe(broden, sources=["ade20k"], n_images=2)
    assert [ade.group(i) for i in range(2)] == ["ade20k/a1.jpg", "ade20k/a2.jpg"]


def test_broden_images_are_resized_rgb_in_unit_range(broden: Path) -> None:
    probe = BrodenProbe(broden, image_size=(20, 24))
    image, labels = probe.load(3)
    assert image.shape == (3, 20, 24)
    assert labels.shape[:2] == (16, 16)
    expected = np.array(A3_COLOUR, np.float32) / 255
    np.testing.assert_allclose(image, np.broadcast_to(expected[:, None, None], image.shape), atol=1e-6)
    for index in range(len(probe)):
        pixels = probe.load(index)[0]
        assert pixels.dtype == np.float32
        assert 0.0 <= pixels.min() <= pixels.max() <= 1.0
    batch = next(probe.batches(5))
    assert batch.images.shape == (5, 3, 20, 24)
    assert batch.labels.shape == (5, 16, 16, 5)


def test_broden_is_deterministic_and_fingerprint_follows_label_csv(broden: Path) -> None:
    first, second = BrodenProbe(broden), BrodenProbe(broden)
    for index in range(len(first)):
        for a, b in zip(first.load(index), second.load(index)):
            np.testing.assert_array_equal(a, b)
    assert first.config() == second.config()
    assert first.fingerprint() == second.fingerprint()
    config = first.config()
    assert config["root"] == str(broden.absolute())
    assert config["categories"] == list(first.categories)
    assert config["sources"] is None
    assert config["n_images"] is None
    label_csv = broden / "label.csv"
    label_csv.write_text(label_csv.read_text().replace("car,", "automobile,", 1))
    changed = BrodenProbe(broden)
    assert changed.config()["content_hash"] != config["content_hash"]
    assert changed.fingerprint() != first.fingerprint()
    assert BrodenProbe(broden, n_images=3).fingerprint() != changed.fingerprint()
    assert BrodenProbe(broden, sources=["ade20k"]).config()["sources"] == ["ade20k"]


# --------------------------------------------------------------------------------------
# Broden: errors
# --------------------------------------------------------------------------------------


def test_broden_missing_files_raise_file_not_found_naming_them(broden: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        BrodenProbe(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"index_x\.csv"):
        BrodenProbe(broden, index_file="index_x.csv")
    (broden / "images" / "ade20k" / "a1_part_2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a1_part_2\.png"):
        BrodenProbe(broden)
    (broden / "images" / "ade20k" / "a2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"a2\.jpg"):
        BrodenProbe(broden, categories=["scene"])
    (broden / "label.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"label\.csv"):
        BrodenProbe(broden)


def test_broden_image_removed_after_construction_names_the_file(broden: Path) -> None:
    probe = BrodenProbe(broden)
    (broden / "images" / "ade20k" / "a3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a3\.png"):
        probe.load(3)
    with pytest.raises(IndexError, match="out of range"):
        probe.load(5)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("pascal/p1.jpg,train,32,32,16", "pascal/p1.jpg,train,32,32,x", r"index.csv, line 3: column 'sh'"),
        ("pascal/p1.jpg,train,32,32,16", "pascal/p1.jpg,train,32,32,0", r"index.csv, line 3: column 'sh' must be >= 1"),
        ("ade20k/a2.jpg,train", ",train", r"index.csv, line 4: empty 'image'"),
        (",,401,\n", ",,401\n", r"index.csv, line 4: 11 fields"),
        (",,401,\n", ",,street,\n", r"index.csv, line 4: column 'scene'"),
        (",,401,\n", ",,-3,\n", r"index.csv, line 4: column 'scene' must be >= 0"),
        (",,401,\n", ",,999,\n", r"index.csv, line 4: label id\(s\) \[999\] are not in .*label.csv"),
        ("pascal/p1.jpg,train,32,32,16,16", "pascal/p1.jpg,train,32,32,16,8", r"index.csv, line 3: segmentation size"),
        ("pascal/p1.jpg,train,32,32,16,16", "pascal/p1.jpg,train,32,32,8,8", r"index.csv, line 3: segmentation size"),
        (HEADER, HEADER.replace("sw", "width"), r"index.csv: missing column\(s\) \['sw'\]"),
    ],
)
def test_broden_malformed_index_rows_name_file_and_line(broden: Path, old: str, new: str, message: str) -> None:
    index = broden / "index.csv"
    text = index.read_text()
    assert old in text
    index.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError, match=message):
        BrodenProbe(broden)


def test_broden_bad_label_csv_and_label_maps(broden: Path) -> None:
    label_csv = broden / "label.csv"
    good = label_csv.read_text()
    label_csv.write_text(good.replace("7,car,", "seven,car,"))
    with pytest.raises(ValueError, match=r"label.csv, line \d+: column 'number'"):
        BrodenProbe(broden)
    label_csv.write_text(good.replace("7,car,", "5,car,"))
    with pytest.raises(ValueError, match=r"label.csv, line \d+: label number 5 is listed twice"):
        BrodenProbe(broden)
    label_csv.write_text(good.replace("7,car,", "7,person,"))
    with pytest.raises(ValueError, match="labels 5 and 7 are both named 'person'"):
        BrodenProbe(broden)
    label_csv.write_text("\n".join(line for line in good.splitlines() if not line.startswith("300,")))
    with pytest.raises(ValueError, match=r"a1_part_1.png: label id\(s\) \[300\] are not in"):
        BrodenProbe(broden)
    label_csv.write_text(good)
    Image.new("RGB", (8, 8)).save(broden / "images" / "ade20k" / "a2_object.png")
    with pytest.raises(ValueError, match=r"a2_object\.png: label map is 8x8"):
        BrodenProbe(broden)
    (broden / "images" / "ade20k" / "a2_object.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"a2_object\.png: cannot read image"):
        BrodenProbe(broden)


def test_broden_bad_selections(broden: Path) -> None:
    with pytest.raises(ValueError, match="unknown Broden categories"):
        BrodenProbe(broden, categories=["objects"])
    with pytest.raises(ValueError, match="no images from sources"):
        BrodenProbe(broden, sources=["coco"])
    with pytest.raises(ValueError, match="n_images"):
        BrodenProbe(broden, n_images=0)
    with pytest.raises(ValueError, match="image_size"):
        BrodenProbe(broden, image_size=(0, 4))
    index = broden / "index.csv"
    index.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in index.read_text().splitlines()))
    with pytest.raises(ValueError, match="no column for categories"):
        BrodenProbe(broden, categories=["texture"])
    assert "texture" not in BrodenProbe(broden).categories


# --------------------------------------------------------------------------------------
# Segmentation folders
# --------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "seg"
    (root / "images" / "sub").mkdir(parents=True)
    (root / "masks" / "sub").mkdir(parents=True)
    (root / "labels.csv").write_text("id,name,category\n1,sky,stuff\n2,tree,object\n300,car,object\n10,outdoor,scene\n")
    Image.new("RGB", (16, 16), (0, 255, 51)).save(root / "images" / "a.png")
    Image.new("RGB", (16, 16), (10, 20, 30)).save(root / "images" / "b.jpg")
    Image.new("RGB", (16, 16), (200, 100, 0)).save(root / "images" / "sub" / "c.png")
    a = np.full((8, 8), 2, np.uint8)
    a[:4] = 1
    Image.fromarray(a).save(root / "masks" / "a.png")
    b = np.zeros((8, 8), np.uint16)
    b[:, :4] = 300
    Image.fromarray(b).save(root / "masks" / "b.png")
    b1 = np.zeros((8, 8), np.uint8)
    b1[:4] = 2
    Image.fromarray(b1).save(root / "masks" / "b.1.png")
    c = np.zeros((8, 8, 3), np.uint8)
    c[..., 0], c[..., 1] = 44, 1  # 300 = 44 + 256 * 1
    c[:, 0] = (1, 0, 0)
    Image.fromarray(c).save(root / "masks" / "sub" / "c.png")
    (root / "image_labels.csv").write_text("image,label_id\na,10\nsub/c.png,10\n")
    return root


def test_folder_concepts_images_and_labels(folder: Path) -> None:
    probe = SegmentationFolderProbe(folder)
    sky, tree, outdoor, car = range(4)
    assert probe.concept_names == ["sky", "tree", "outdoor", "car"]
    assert probe.concept_categories == ["stuff", "object", "scene", "object"]
    assert len(probe) == 3
    assert [probe.group(i) for i in range(3)] == ["a", "b", "sub/c"]
    assert probe.mask_size == (8, 8)
    image, labels = probe.load(0)
    assert image.shape == (3, 224, 224)
    np.testing.assert_allclose(image[:, 100, 7], [0, 1, 0.2], atol=1e-6)
    assert labels.shape == (8, 8, 2)
    assert labels[0, 0].tolist() == [sky, outdoor]
    assert labels[7, 7].tolist() == [tree, outdoor]
    _, labels = probe.load(1)
    assert labels.shape == (8, 8, 2)  # b.png, b.1.png
    assert labels[0, 0].tolist() == [car, tree]
    assert labels[7, 7].tolist() == [-1, -1]
    _, labels = probe.load(2)
    assert labels[0, 0].tolist() == [sky, outdoor]
    assert labels[3, 5].tolist() == [car, outdoor]
    concepts = _concept_set(probe)
    assert concepts.sizes.tolist() == [32 + 8, 32 + 32, 128, 32 + 56]


def test_folder_selection_resizing_and_config(folder: Path) -> None:
    probe = SegmentationFolderProbe(folder, n_images=2, image_size=(10, 12), mask_size=(4, 4))
    assert len(probe) == 2
    image, labels = probe.load(0)
    assert image.shape == (3, 10, 12)
    assert 0.0 <= image.min() <= image.max() <= 1.0
    assert labels.shape == (4, 4, 2)
    assert labels[..., 0].tolist() == [[0] * 4] * 2 + [[1] * 4] * 2
    config = probe.config()
    assert config["kind"] == "segmentation_folder"
    assert config["root"] == str(folder.absolute())
    assert config["mask_size"] == [4, 4]
    again = SegmentationFolderProbe(folder, n_images=2, image_size=(10, 12), mask_size=(4, 4))
    assert again.fingerprint() == probe.fingerprint()
    np.testing.assert_array_equal(again.load(1)[1], probe.load(1)[1])
    labels_csv = folder / "labels.csv"
    labels_csv.write_text(labels_csv.read_text().replace("sky", "heaven"))
    assert SegmentationFolderProbe(folder, n_images=2, image_size=(10, 12), mask_size=(4, 4)).fingerprint() != (
        probe.fingerprint()
    )


def test_folder_unequal_mask_sizes_need_mask_size(folder: Path) -> None:
    Image.fromarray(np.full((4, 4), 2, np.uint8)).save(folder / "masks" / "b.1.png")
    with pytest.raises(ValueError, match=r"b\.1\.png: label map is 4x4.*pass mask_size"):
        SegmentationFolderProbe(folder)
    probe = SegmentationFolderProbe(folder, mask_size=(8, 8))
    assert (probe.load(1)[1][..., 1] == 1).all()


def test_write_label_map_round_trips(tmp_path: Path) -> None:
    ids = np.array([[0, 1, 255], [256, 300, 65535]])
    write_label_map(tmp_path / "wide.png", ids)
    np.testing.assert_array_equal(read_label_map(tmp_path / "wide.png"), ids)
    write_label_map(tmp_path / "narrow.png", ids % 256)
    assert Image.open(tmp_path / "narrow.png").mode == "L"
    np.testing.assert_array_equal(read_label_map(tmp_path / "narrow.png"), ids % 256)
    with pytest.raises(ValueError, match="65535"):
        write_label_map(tmp_path / "bad.png", ids + 1)


@pytest.mark.parametrize(
    ("path", "content", "error", "message"),
    [
        ("labels.csv", "id,name\n0,void\n", ValueError, r"labels.csv, line 2: column 'id' must be >= 1"),
        ("labels.csv", "id,name\n1,sky\n1,tree\n", ValueError, r"labels.csv, line 3: id 1 is listed twice"),
        ("labels.csv", "id,name\n1,sky\n2,sky\n", ValueError, r"labels.csv, line 3: name 'sky'"),
        ("labels.csv", "id,name\n1,\n", ValueError, r"labels.csv, line 2: empty name"),
        ("labels.csv", "ident,name\n1,sky\n", ValueError, r"labels.csv: missing column\(s\) \['id'\]"),
        ("image_labels.csv", "image,label_id\nzebra,10\n", ValueError, r"image_labels.csv, line 2: unknown image"),
        ("image_labels.csv", "image,label_id\na,11\n", ValueError, r"image_labels.csv, line 2: label id 11"),
        ("images/notes.txt", "hello", ValueError, "notes.txt: not an image file"),
        ("masks/zebra.png", None, ValueError, "zebra.png: no image"),
        ("masks/a.txt", "x", ValueError, "a.txt: masks must be PNG"),
    ],
)
def test_folder_bad_input(folder: Path, path: str, content: str | None, error: type, message: str) -> None:
    target = folder / path
    if content is None:
        shutil.copy(folder / "masks" / "a.png", target)
    else:
        target.write_text(content)
    with pytest.raises(error, match=message):
        SegmentationFolderProbe(folder)


def test_folder_missing_parts_and_bad_masks(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SegmentationFolderProbe(tmp_path / "nowhere")
    (folder / "masks" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"masks/b.png: mask not found"):
        SegmentationFolderProbe(folder)
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(folder / "masks" / "b.png")
    probe = SegmentationFolderProbe(folder)
    with pytest.raises(ValueError, match=r"b.png: label id\(s\) \[7\] not in"):
        probe.load(1)
    blue = np.zeros((8, 8, 3), np.uint8)
    blue[..., 2] = 9
    Image.fromarray(blue).save(folder / "masks" / "b.png")
    with pytest.raises(ValueError, match=r"b\.png: RGB label map with a non-zero blue channel"):
        SegmentationFolderProbe(folder).load(1)
    shutil.rmtree(folder / "masks")
    with pytest.raises(FileNotFoundError, match="masks"):
        SegmentationFolderProbe(folder)
    (folder / "labels.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"labels\.csv"):
        SegmentationFolderProbe(folder)


def test_folder_ambiguous_and_duplicate_image_names(folder: Path) -> None:
    Image.new("RGB", (4, 4)).save(folder / "images" / "a.jpg")
    with pytest.raises(ValueError, match="two images named 'a'"):
        SegmentationFolderProbe(folder)
    (folder / "images" / "a.jpg").unlink()
    Image.new("RGB", (4, 4)).save(folder / "images" / "a.1.png")
    with pytest.raises(ValueError, match="ambiguous"):
        SegmentationFolderProbe(folder)


# -------------------------------------------------------------------------------------- class labels
def test_broden_scene_classes_through_a_class_map(broden: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "scenes.csv"
    mapping.write_text("scene,class\nstreet-s,3\nkitchen-s,kitchen\n")
    probe = BrodenProbe(broden, class_map=mapping)
    labels = [probe.class_label(i, probe.load(i)[1]) for i in range(len(probe))]
    # a1: street; p1: no scene; a2: kitchen; a3: scene 0; p2: street and kitchen (ambiguous)
    assert labels == [3, None, "kitchen", None, None]
    assert probe.config()["class_map"] == str(mapping) and "class_map" not in BrodenProbe(broden).config()
    assert BrodenProbe(broden).class_label(0, probe.load(0)[1]) is None
    mapping.write_text("scene,class\nnowhere-s,1\n")
    with pytest.raises(ValueError, match="'nowhere-s' is not a label"):
        BrodenProbe(broden, class_map=mapping)


def test_folder_classes_csv(folder: Path) -> None:
    before = SegmentationFolderProbe(folder).fingerprint()
    (folder / "classes.csv").write_text("image,class\na,7\nsub/c.png,tabby\nb,\n")
    probe = SegmentationFolderProbe(folder)
    assert [probe.class_label(i, probe.load(i)[1]) for i in range(3)] == [7, None, "tabby"]
    assert probe.fingerprint() != before
    (folder / "classes.csv").write_text("image,class\nzzz,1\n")
    with pytest.raises(ValueError, match="unknown image 'zzz'"):
        SegmentationFolderProbe(folder)
