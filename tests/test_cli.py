"""The cbir-lab command on a folder of camera files: `search` and `demo`, their output, their errors.

(The demo on the embedded layout and on a plain folder is also run in tests/test_pipeline.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cbir_lab.cli import main
from tests.fixtures_benchmarks import write_photos

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def trip(tmp_path, monkeypatch):
    monkeypatch.setenv("CBIR_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return write_photos(tmp_path / "trip", {
        "paris/IMG_0001.JPG": 1, "paris/IMG_0002.JPG": 2, "rome/IMG_0001.JPG": 3, "rome/IMG_0002.JPG": 4,
        "README.txt": b"photos of the trip",
    })


def test_search_prints_the_top_results_and_writes_one_self_contained_page(trip, tmp_path, capsys):
    page = tmp_path / "results.html"
    page.write_text("the user's own page")
    query = trip / "rome" / "IMG_0001.JPG"
    args = ["search", "--dataset", str(trip), str(query), "-k", "3", "--out", str(page), "--max-side", "64"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "4 images: 4 new, 0 changed, 0 removed; 4 extracted" in out
    lines = [line.split() for line in out.splitlines() if line[:4].strip().isdigit()]
    assert [line[0] for line in lines] == ["1", "2", "3"]
    # The query is in the folder: first, with a score of 1 (float16 rounding aside), named by its path there.
    assert lines[0][2] == "rome/IMG_0001.JPG" and float(lines[0][1]) == pytest.approx(1.0, abs=2e-3)
    assert all(line[2] in {"paris/IMG_0001.JPG", "paris/IMG_0002.JPG", "rome/IMG_0002.JPG"} for line in lines[1:])
    # One warning line for the stray file, in plain words.
    assert err.count("warning") == 1 and "cbir-lab search: warning:" in err and "README.txt" in err

    assert page.read_text() == "the user's own page"  # never overwritten
    written = tmp_path / "results-1.html"
    assert f"Wrote the results page to {written} ({page} exists, so it was kept)" in out
    html = written.read_text()
    assert html.count('src="data:image/jpeg;base64,') == 4  # the query and 3 results, embedded
    assert "rome/IMG_0001.JPG" in html and 'src="file:' not in html

    # A further search: the folder is indexed already, nothing is extracted again.
    assert main(args) == 0
    out, _ = capsys.readouterr()
    assert "4 images: 0 new, 0 changed, 0 removed; 0 extracted" in out
    assert (tmp_path / "results-2.html").exists()


def test_search_by_a_path_inside_the_folder_and_an_ambiguous_name(trip, tmp_path, capsys):
    assert main(["search", "--dataset", str(trip), "paris/IMG_0002.JPG", "-k", "1", "--max-side", "64"]) == 0
    out, _ = capsys.readouterr()
    assert "   1  1.000  paris/IMG_0002.JPG" in out or "   1  0.999  paris/IMG_0002.JPG" in out
    assert (tmp_path / "cbir-lab-search.html").exists()
    assert main(["search", "--dataset", str(trip), "IMG_0001.JPG", "--max-side", "64"]) == 1
    err = capsys.readouterr().err
    assert "'IMG_0001.JPG' matches 2 images" in err and "paris/IMG_0001.JPG" in err and "rome/IMG_0001.JPG" in err


@pytest.mark.parametrize("case, message", [
    ("missing folder", "nowhere does not exist"),
    ("empty folder", "no images in"),
    ("unreadable query", "not.jpg"),
    ("k below 1", "-k must be a positive integer, got 0"),
])  # fmt: skip
def test_search_errors_name_the_file_or_parameter_and_exit_1(trip, tmp_path, capsys, case, message):
    folder, query, k = trip, trip / "paris" / "IMG_0001.JPG", "3"
    if case == "missing folder":
        folder = tmp_path / "nowhere"
    elif case == "empty folder":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "unreadable query":
        query = tmp_path / "not.jpg"
        query.write_text("not an image")
    else:
        k = "0"
    assert main(["search", "--dataset", str(folder), str(query), "-k", k, "--max-side", "64"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the warning about README.txt, if any
    assert last.startswith("cbir-lab search: error: ") and message in last


def test_demo_on_camera_files_names_images_by_their_path(trip, tmp_path, capsys):
    assert main(["demo", "--dataset", str(trip), "--figure", str(tmp_path / "demo.png"), "--max-side", "64"]) == 0
    out, err = capsys.readouterr()
    assert "trip: 4 database images, 2 queries" in out and "mAP" in out
    assert "Saved the top results of query" in out
    assert "(paris/IMG_0001)" in out or "(rome/IMG_0001)" in out  # the query, by its path in the folder
    assert "cbir-lab demo: warning:" in err and "README.txt" in err
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_demo_with_every_image_as_a_query(trip, tmp_path, capsys):
    assert main(["demo", "--dataset", str(trip), "--queries", "all", "--figure", str(tmp_path / "d.png"),
                 "--max-side", "64"]) == 0
    assert "trip: 4 database images, 4 queries" in capsys.readouterr().out
    assert main(["demo", "--queries", "all"]) == 1  # the embedded dataset has its own queries
    assert "--queries all is for a folder of your own images" in capsys.readouterr().err


def test_search_imports_no_plotting_widgets_or_sklearn_and_a_further_one_no_torch(trip, tmp_path):
    # Whole searches in fresh interpreters, then a look at what they imported.
    code = (
        "import json, sys\n"
        "from cbir_lab.cli import main\n"
        f"status = main(['search', '--dataset', {str(trip)!r}, {str(trip / 'rome' / 'IMG_0002.JPG')!r}, "
        f"'-k', '2', '--max-side', '64', '--out', {str(tmp_path / 'lean.html')!r}])\n"
        "heavy = ('matplotlib', 'ipywidgets', 'sklearn', 'nbformat', 'IPython', 'scipy')\n"
        "network = [m for m in ('torch._C', 'timm', 'torchvision') if m in sys.modules]\n"
        "print(json.dumps([status, sorted(m for m in sys.modules if m.split('.')[0] in heavy), network]))\n"
    )
    env = {**os.environ, "CBIR_LAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}

    def search() -> tuple[int, list[str], list[str], list[str]]:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        return (*json.loads(lines[-1]), [line for line in lines if line[:4].strip().isdigit()])

    status, heavy, network, first = search()  # indexes the folder: the network runs in PyTorch
    assert status == 0 and heavy == [] and network == ["torch._C", "timm", "torchvision"]
    status, heavy, network, further = search()  # the exported network describes the query
    assert status == 0 and heavy == [] and network == []
    assert [line.split()[2] for line in further] == [line.split()[2] for line in first]
    assert [float(line.split()[1]) for line in further] == pytest.approx([float(line.split()[1]) for line in first],
                                                                           abs=2e-3)


def test_demo_learns_its_whitening_on_another_folder_when_asked(trip, tmp_path, capsys):
    others = write_photos(tmp_path / "others", {f"p{i}.jpg": 20 + i for i in range(6)})
    args = ["demo", "--dataset", str(trip), "--max-side", "64", "--figure", str(tmp_path / "f.png"),
            "--whitening", str(others)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"whitening learned on the 6 images of {others}" in out
    assert "SPoC    yes" in out  # a whitened row, which a folder without a training split cannot have
    assert main(["demo", "--dataset", str(trip), "--whitening", "nowhere"]) == 1
    assert "unknown whitening set 'nowhere'" in capsys.readouterr().err
