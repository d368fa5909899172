"""A user's own folder as a dataset: layouts, queries and bad input."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from cbir_lab.datasets.folder import list_images, load_folder, matching_images
from tests.fixtures_benchmarks import jpeg_bytes, tree


def make_folder(root: Path, files: dict[str, bytes | None]) -> Path:
    """Create ``{relative path: content}`` (``None``: a small valid JPEG)."""
    for i, (rel, content) in enumerate(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(i) if content is None else content)
    return root


@pytest.fixture
def grouped(tmp_path):
    return make_folder(
        tmp_path / "photos",
        {
            "tower/img10.jpg": None,
            "tower/img2.jpg": None,
            "tower/img1.JPG": None,
            "bridge/b.png": None,
            "bridge/a.jpeg": None,
            "lonely/only.jpg": None,
        },
    )


def test_grouped_folder_default_queries_and_ground_truth(grouped):
    with pytest.warns(UserWarning, match="one image give no query.*lonely"):
        ds = load_folder(grouped)
    assert ds.name == "photos" and ds.protocol == "standard" and ds.has_ground_truth
    # Groups in name order, images in natural order (img2 before img10).
    rel = [p.relative_to(grouped).as_posix() for p in ds.db_images]
    assert rel == [
        "bridge/a.jpeg", "bridge/b.png", "lonely/only.jpg", "tower/img1.JPG", "tower/img2.jpg", "tower/img10.jpg"
    ]  # fmt: skip
    assert ds.groups == ("bridge", "bridge", "lonely", "tower", "tower", "tower")
    # One query per group with two or more images: its first image, kept in the
    # database and marked junk so it is left out of its own ranking.
    assert [p.name for p in ds.query_images] == ["a.jpeg", "img1.JPG"]
    assert ds.gnd == ({"ok": [1], "junk": [0]}, {"ok": [4, 5], "junk": [3]})
    assert ds.extra["query_indices"] == [0, 3]
    assert ds.root == grouped.resolve()


def test_explicit_queries_by_name_stem_and_path(grouped):
    ds = load_folder(grouped, queries=["img10.jpg", "b", "bridge/a.jpeg", grouped / "lonely" / "only.jpg"])
    assert [p.name for p in ds.query_images] == ["img10.jpg", "b.png", "a.jpeg", "only.jpg"]
    assert ds.gnd == (
        {"ok": [3, 4], "junk": [5]},
        {"ok": [0], "junk": [1]},
        {"ok": [1], "junk": [0]},
        {"ok": [], "junk": [2]},  # a singleton group's query has no positives
    )
    assert load_folder(grouped, queries="img2").extra["query_indices"] == [4]


def test_unknown_or_outside_query_in_grouped_folder(grouped, tmp_path):
    with pytest.raises(ValueError, match="query 'nope.jpg' is not an image of .*photos"):
        load_folder(grouped, queries=["nope.jpg"])
    outside = make_folder(tmp_path / "elsewhere", {"x.jpg": None}) / "x.jpg"
    with pytest.raises(ValueError, match="is outside .*grouped folder"):
        load_folder(grouped, queries=[outside])
    with pytest.raises(ValueError, match="queries is empty"):
        load_folder(grouped, queries=[])


def test_flat_folder_has_no_ground_truth(tmp_path):
    folder = make_folder(tmp_path / "flat", {"c.jpg": None, "a.jpg": None, "b.png": None})
    ds = load_folder(folder)
    assert ds.protocol == "none" and ds.gnd is None and not ds.has_ground_truth
    assert [p.name for p in ds.db_images] == ["a.jpg", "b.png", "c.jpg"]
    assert [p.name for p in ds.query_images] == ["a.jpg"]
    assert ds.groups is None
    # A flat folder can also be searched with an outside image.
    outside = make_folder(tmp_path / "q", {"query.jpg": None}) / "query.jpg"
    ds = load_folder(folder, queries=[outside, "c"])
    assert ds.query_images == (outside.resolve(), folder.resolve() / "c.jpg")
    assert ds.extra["query_indices"] == [None, 2]


def test_unicode_and_spaces_in_paths(tmp_path):
    # The file on disk is stored decomposed (as macOS writes it); the query is typed composed.
    decomposed = unicodedata.normalize("NFD", "café 1.jpg")
    folder = make_folder(
        tmp_path / "mes photos é",
        {"Sacré Cœur/" + decomposed: None, "Sacré Cœur/vue 2.jpg": None, "東京 タワー/写真 1.png": None,
         "東京 タワー/写真 2.png": None},
    )  # fmt: skip
    ds = load_folder(folder, queries=["café 1.jpg", "写真 2"])
    assert ds.groups == ("Sacré Cœur", "Sacré Cœur", "東京 タワー", "東京 タワー")
    assert [p.name for p in ds.query_images] == [decomposed, "写真 2.png"]
    assert ds.gnd == ({"ok": [1], "junk": [0]}, {"ok": [2], "junk": [3]})
    assert all(p.is_file() for p in ds.db_images)


# --------------------------------------------------------------------------- bad input


def test_missing_empty_or_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_folder(tmp_path / "nope")
    (tmp_path / "file.jpg").write_bytes(jpeg_bytes(0))
    with pytest.raises(NotADirectoryError, match="file.jpg is a file"):
        load_folder(tmp_path / "file.jpg")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"mac")
    with pytest.raises(ValueError, match=r"no images in .*empty"):
        load_folder(tmp_path / "empty")


def test_non_image_files_are_skipped_with_one_warning_or_refused(tmp_path):
    folder = make_folder(
        tmp_path / "f",
        {"g/a.jpg": None, "g/b.jpg": None, "g/notes.txt": b"hello", "readme.md": b"#",
         ".hidden/x.txt": b"", "g/Thumbs.db": b"", "g/.DS_Store": b""},
    )  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        ds = load_folder(folder)
    assert len(caught) == 1  # one warning for all the stray files
    message = str(caught[0].message)
    assert "skipping 2 file(s) that are not images" in message
    assert "g/notes.txt" in message and "readme.md" in message
    assert "Thumbs.db" not in message and ".hidden" not in message and "DS_Store" not in message
    assert [p.name for p in ds.db_images] == ["a.jpg", "b.jpg"]
    with pytest.raises(ValueError, match=r"2 file\(s\) that are not images.*non_images='warn'") as info:
        load_folder(folder, non_images="error")
    assert "g/notes.txt" in str(info.value) and "readme.md" in str(info.value)
    with pytest.raises(ValueError, match="non_images must be 'warn' or 'error', not 'ignore'"):
        load_folder(folder, non_images="ignore")


def test_the_stray_file_warning_lists_ten_then_counts_the_rest(tmp_path):
    folder = make_folder(tmp_path / "f", {"a.jpg": None, **{f"note{i:02d}.txt": b"" for i in range(13)}})
    with pytest.warns(UserWarning, match="skipping 13 file") as caught:
        assert list_images(folder) == [folder.resolve() / "a.jpg"]
    message = str(caught[0].message)
    assert "note09.txt" in message and "note10.txt" not in message
    assert message.endswith("... and 3 more")


def test_camera_file_names_may_repeat_across_groups(tmp_path):
    # Two cameras' worth of IMG_0001.JPG, and a README someone left in the folder.
    folder = make_folder(
        tmp_path / "trip",
        {"paris/IMG_0001.JPG": None, "paris/IMG_0002.JPG": None, "rome/IMG_0001.JPG": None,
         "rome/IMG_0002.JPG": None, "README.txt": b"photos of the trip"},
    )  # fmt: skip
    with pytest.warns(UserWarning, match="(?s)skipping 1 file.*README.txt"):
        ds = load_folder(folder)
    assert [ds.label(p) for p in ds.db_images] == ["paris/IMG_0001", "paris/IMG_0002", "rome/IMG_0001", "rome/IMG_0002"]
    assert [ds.query_label(q) for q in range(ds.n_queries)] == ["paris/IMG_0001", "rome/IMG_0001"]
    assert ds.gnd == ({"ok": [1], "junk": [0]}, {"ok": [3], "junk": [2]})

    # A bare name that several images share is an error naming them; their paths work.
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"(?s)'IMG_0001' matches 2 images.*"
                                                  r"paris/IMG_0001\.JPG.*rome/IMG_0001\.JPG"):
        load_folder(folder, queries=["IMG_0001"])
    with pytest.warns(UserWarning):
        ds = load_folder(folder, queries=["rome/IMG_0001.JPG", "paris/img_0002", folder / "rome" / "IMG_0002.JPG"])
    assert ds.extra["query_indices"] == [2, 1, 3]


def test_matching_images_by_name_stem_or_path():
    photos = ["paris/IMG_0001.JPG", "paris/day 2/IMG_0003.jpg", "rome/IMG_0001.JPG"]
    assert matching_images("IMG_0001.jpg", photos) == [0, 2]
    assert matching_images("img_0003", photos) == [1]
    assert matching_images("paris/day 2/IMG_0003", photos) == [1]
    assert matching_images("./rome/IMG_0001.JPG", photos) == [2]
    assert matching_images("day 2/IMG_0003.jpg", photos) == []  # a path is read from the folder's top
    assert matching_images("IMG_0002", photos) == []


def test_every_image_of_a_group_as_a_query(tmp_path):
    folder = make_folder(
        tmp_path / "f",
        {"cats/c1.jpg": None, "cats/c2.jpg": None, "cats/c3.jpg": None, "dogs/d1.jpg": None, "dogs/d2.jpg": None},
    )
    ds = load_folder(folder, queries="all")
    # Database: 0 c1, 1 c2, 2 c3, 3 d1, 4 d2. Each image is a query once; it stays in the database
    # as junk in its own ranking, and the other images of its group are its positives.
    assert [ds.query_label(q) for q in range(ds.n_queries)] == ["cats/c1", "cats/c2", "cats/c3", "dogs/d1", "dogs/d2"]
    assert ds.gnd == (
        {"ok": [1, 2], "junk": [0]},
        {"ok": [0, 2], "junk": [1]},
        {"ok": [0, 1], "junk": [2]},
        {"ok": [4], "junk": [3]},
        {"ok": [3], "junk": [4]},
    )
    assert ds.extra["query_indices"] == [0, 1, 2, 3, 4]


def test_every_image_as_a_query_skips_single_image_groups_and_needs_groups(grouped, tmp_path):
    with pytest.warns(UserWarning, match="one image give no query.*lonely"):
        ds = load_folder(grouped, queries="all")
    assert [ds.query_label(q) for q in range(ds.n_queries)] == [
        "bridge/a", "bridge/b", "tower/img1", "tower/img2", "tower/img10"
    ]  # fmt: skip
    flat = make_folder(tmp_path / "flat", {"a.jpg": None, "b.jpg": None})
    with pytest.raises(ValueError, match="queries='all' needs a grouped folder"):
        load_folder(flat, queries="all")


def test_images_at_top_level_and_in_subfolders(tmp_path):
    folder = make_folder(tmp_path / "f", {"loose.jpg": None, "g/a.jpg": None, "g/b.jpg": None})
    with pytest.raises(ValueError, match="(?s)both at its top level and in sub-folders.*loose.jpg"):
        load_folder(folder)


def test_truncated_image_is_named(tmp_path):
    good = jpeg_bytes(7, size=(64, 48))
    folder = make_folder(tmp_path / "f", {"g/ok.jpg": good, "g/cut.jpg": good[: len(good) // 2], "g/empty.jpg": b""})
    with pytest.raises(ValueError, match=r"2 image file\(s\) cannot be read") as info:
        load_folder(folder)
    message = str(info.value)
    assert "cut.jpg: OSError: image file is truncated" in message
    assert "empty.jpg" in message and "ok.jpg" not in message
    assert load_folder(folder, validate=False).n_db == 3  # validation can be skipped


def test_every_group_a_singleton(tmp_path):
    folder = make_folder(tmp_path / "f", {"a/1.jpg": None, "b/2.jpg": None})
    with pytest.raises(ValueError, match="every group has a single image"):
        load_folder(folder)


def test_loading_writes_nothing(grouped, tmp_path):
    before = tree(tmp_path)
    with pytest.warns(UserWarning):
        load_folder(grouped)
    assert tree(tmp_path) == before
