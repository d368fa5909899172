"""The ``cbir-lab`` console script.

* ``cbir-lab demo``: the whole pipeline on a dataset (the embedded one by
  default, offline), printing mAP for SPoC, MAC, R-MAC and GeM without and
  with PCA-whitening, and saving a figure of a query's top results.
* ``cbir-lab datasets``: every dataset with its state, size and licence.
* ``cbir-lab present``: the talk-mode demo in the browser, served by Voila
  (:mod:`cbir_lab.talk`).
* ``cbir-lab course EDITION DIR``: the lessons as a student, self-study or
  instructor edition (:mod:`cbir_lab.course.editions`); ``cbir-lab course book
  DIR``: the self-study edition as a static website (:mod:`cbir_lab.course.book`);
  ``cbir-lab course sync-url``: every copy of the project's address rewritten
  from ``pyproject.toml`` (:mod:`cbir_lab.course.project`).
* ``cbir-lab reproduce --dataset NAME``: a benchmark under the papers' protocol,
  beside the published figures (:mod:`cbir_lab.reproduce`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


__all__ = ["main", "run_demo"]


def _unique_path(path: Path) -> Path:
    """``path``, or ``stem-1.png``, ``stem-2.png``… so that an existing file is never overwritten."""
    from cbir_lab.paths import free_path

    return free_path(path)


def run_demo(
    dataset: str | None = None,
    backbone: str = "efficientnet_lite0",
    max_side: int = 384,
    figure: str | Path = "cbir-lab-demo.png",
    query: int | None = None,
    out=None,
) -> dict:
    """Run the demo; returns the score rows and the figure's path."""
    out = sys.stdout if out is None else out
    from cbir_lab.datasets import load_dataset
    from cbir_lab.index import RetrievalIndex, comparison_table, retrieve
    from cbir_lab.pipeline import extract_dataset
    from cbir_lab.pooling import GEM
    from cbir_lab.viz import format_scores, plot_ranking

    start = time.perf_counter()
    ds = load_dataset(dataset)
    print(ds.summary(), file=out)
    features = extract_dataset(ds, backbone, max_side=max_side)
    t_extract = time.perf_counter() - start
    index = RetrievalIndex(features)
    rows = []
    if ds.has_ground_truth:
        if not index.can_whiten:
            print("(no separate training split: PCA-whitening is skipped)", file=out)
        rows = comparison_table(index, whitening=(False, True) if index.can_whiten else (False,), query_expansion=(False,))
        print(f"\nmAP on {ds.name} ({backbone}, max side {max_side}):", file=out)
        print(format_scores(rows), file=out)
    else:
        print(f"{ds.name} has no ground truth: showing rankings only, not scores.", file=out)

    if query is None:
        query = index.typical_query(GEM)
    if not 0 <= query < ds.n_queries:
        raise ValueError(f"--query must be in 0..{ds.n_queries - 1}, got {query}")
    result = retrieve(index, query, GEM, k=8)
    fig = plot_ranking(ds.queries()[query], ds.db_images, result, title=f"{ds.name}: query {query}, GeM top 8")
    path = _unique_path(Path(figure))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    total = time.perf_counter() - start
    print(f"\nSaved the top results of query {query} to {path}", file=out)
    print(f"Time: {total:.1f} s ({t_extract:.1f} s loading data and extracting features)", file=out)
    return {"rows": rows, "figure": path, "seconds": total}


def _course(what: str, folder: str | None) -> int:
    """``cbir-lab course``: an edition, the book, or the address synced."""
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
    print(f"Wrote the {what} edition, {len(written)} lessons, to {Path(folder).resolve()}:")
    for path in written:
        print(f"  {path.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cbir-lab", description="Content-based image retrieval with CNN features: the course's tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the whole pipeline and print mAP per method")
    demo.add_argument("--dataset", default=None, help="a benchmark name or a folder of images (default: the embedded dataset)")
    demo.add_argument("--backbone", default="efficientnet_lite0")
    demo.add_argument("--max-side", type=int, default=384, help="long side of the images fed to the network")
    demo.add_argument("--figure", default="cbir-lab-demo.png", help="where to save the figure (never overwritten)")
    demo.add_argument("--query", type=int, default=None, help="which query to show in the figure (default: the one with the median AP)")
    sub.add_parser("datasets", help="list the datasets and whether they are present")
    present = sub.add_parser("present", help="full-screen retrieval demo for a talk, served with Voila")
    present.add_argument("--dataset", default=None, help="a benchmark name or a folder of images (default: the embedded dataset)")
    present.add_argument("--port", type=int, default=8866, help="the port to serve on (default: 8866)")
    present.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    present.add_argument("--theme", choices=("light", "dark"), default="light")
    course = sub.add_parser("course", help="write the lessons as an edition or as a book; keep the project's address in sync")
    course.add_argument("edition", choices=("student", "self-study", "instructor", "book", "sync-url"),
                        help="student: exercises blank, outputs cleared; self-study: solutions one click away; "
                             "instructor: complete; book: the self-study edition as a static website (needs "
                             "the [book] extra); sync-url: rewrite every copy of the project's address in the "
                             "lessons and the README from pyproject.toml's [project.urls]")
    course.add_argument("dir", nargs="?",
                        help="the folder to write to (an edition never overwrites a file; a book replaces an earlier "
                             "book); for sync-url, the clone (default: the one cbir_lab runs from)")
    repro = sub.add_parser("reproduce", help="a benchmark under the papers' protocol, beside the published figures")
    repro.add_argument("--dataset", required=True, choices=("roxford5k", "rparis6k", "holidays", "ukbench"))
    repro.add_argument("--max-side", type=int, default=1024, help="long side fed to the network (papers: 1024)")
    repro.add_argument("--whitening", default=None,
                       help="where to learn the whitening: a benchmark, an image set or a folder "
                            "(default: the other landmark set; imagenet-sample for Holidays and UKBench)")
    repro.add_argument("--out", default="reproduce", help="the folder for the Markdown and CSV tables (never overwritten)")
    repro.add_argument("--no-download", action="store_true", help="use only what is on disk")
    args = parser.parse_args(argv)

    from cbir_lab.backbones import WeightsUnavailableError
    from cbir_lab.datasets.download import DatasetError
    from cbir_lab.features import ImageLoadError

    try:
        if args.command == "demo":
            run_demo(args.dataset, args.backbone, args.max_side, args.figure, args.query)
        elif args.command == "datasets":
            from cbir_lab.datasets.status import format_datasets

            print(format_datasets())
        elif args.command == "present":
            from cbir_lab.talk import present

            return present(args.dataset, args.port, not args.no_browser, args.theme)
        elif args.command == "course":
            return _course(args.edition, args.dir)
        elif args.command == "reproduce":
            from cbir_lab.reproduce import format_markdown, reproduce, write_report

            result = reproduce(args.dataset, max_side=args.max_side, whitening=args.whitening,
                               download=not args.no_download)
            print(format_markdown(result))
            markdown, table = write_report(result, args.out)
            print(f"Wrote {markdown} and {table}")
    except (WeightsUnavailableError, DatasetError, ImageLoadError, FileNotFoundError, FileExistsError,
            NotADirectoryError, ValueError, ImportError) as err:
        print(f"cbir-lab {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
