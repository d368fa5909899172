"""Datasets: the embedded offline benchmark, the papers' benchmarks and a user's own folder.

``load_dataset()`` with no argument gives the embedded dataset, built from real
photos that ship inside the dependencies; ``load_dataset(name)`` a paper's
benchmark; ``load_dataset(path)`` a folder of the user's images.
"""

from cbir_lab.datasets.base import BBox, Protocol, RetrievalDataset

__all__ = ["RetrievalDataset", "Protocol", "BBox", "load_dataset", "format_datasets"]


def load_dataset(name: str | None = None, root=None, **kwargs) -> RetrievalDataset:
    """Load a dataset by name, or a folder by path; the embedded set by default.

    Args:
        name: ``None`` or ``"embedded"`` for the offline default; a benchmark
            name (``"holidays"``, ``"oxford5k"``, ``"paris6k"``, ``"roxford5k"``,
            ``"rparis6k"``, ``"ukbench"``); or the path of a folder of images.
        root: data folder (default: ``$CBIR_LAB_DATA`` or the user cache).
        **kwargs: passed to the specific loader.

    Returns:
        The dataset.
    """
    from cbir_lab.datasets import embedded

    if name is None or name == "embedded":
        return embedded.load_embedded(root=root, **kwargs)
    try:
        from cbir_lab.datasets import benchmarks, folder
    except ImportError as err:  # pragma: no cover - during development
        raise ValueError(f"unknown dataset {name!r}") from err
    if name in benchmarks.BENCHMARKS:
        return benchmarks.load_benchmark(name, root=root, **kwargs)
    return folder.load_folder(name, **kwargs)


def format_datasets(root=None) -> str:
    """The ``cbir-lab datasets`` table: the embedded set, then every benchmark, with state, size and licence."""
    from cbir_lab.datasets import benchmarks, embedded
    from cbir_lab.paths import data_dir

    folder = data_dir(root) / embedded.EMBEDDED_VERSION
    present = (folder / "manifest.json").exists()
    size = sum(p.stat().st_size for p in folder.glob("*.png")) if present else 0
    n_test = sum(1 for s in embedded.scenes("test"))
    row = benchmarks.DatasetStatus(
        name="embedded",
        state="present" if present else "absent",
        bytes_on_disk=size,
        download_bytes=None,
        n_db=n_test * embedded.N_DB_VIEWS,
        n_queries=n_test,
        licence=embedded._LICENCE_NOTE.split(";")[0],
        folder=folder,
        note="offline default; generated on first use in seconds" if not present else "offline default",
    )
    return benchmarks.format_dataset_status([row, *benchmarks.dataset_status(root)], root=root)
