"""Datasets: the embedded offline benchmark, the papers' benchmarks and a user's own folder.

``load_dataset()`` with no argument gives the embedded dataset, built from real
photos that ship inside the dependencies; ``load_dataset(name)`` a paper's
benchmark; ``load_dataset(path)`` a folder of the user's images.

One module per job: :mod:`.base` (the dataset type, and ground truth from
groups), :mod:`.embedded_recipe` (the embedded set's photos, scenes and views),
:mod:`.embedded` (its files), :mod:`.folder`, :mod:`.registry` (every URL and
checksum), :mod:`.download` (fetch, verify, unpack), :mod:`.parsers` (one per
benchmark), :mod:`.benchmarks` (getting a benchmark ready), :mod:`.image_sets`
(pinned photo sets), :mod:`.real_photos` (the Paris slice and ETH-80 as
retrieval datasets), :mod:`.status` (what is on disk).
"""

from cbir_lab.datasets.base import BBox, Protocol, RetrievalDataset

__all__ = ["RetrievalDataset", "Protocol", "BBox", "load_dataset"]


def load_dataset(name: str | None = None, root=None, **kwargs) -> RetrievalDataset:
    """Load a dataset by name, or a folder by path; the embedded set by default.

    Args:
        name: ``None`` or ``"embedded"`` for the offline default; a benchmark
            name (``"holidays"``, ``"oxford5k"``, ``"paris6k"``, ``"roxford5k"``,
            ``"rparis6k"``, ``"ukbench"``); a small real set (``"rparis6k-slice"``,
            ``"eth80"``: :mod:`.real_photos`); or the path of a folder of images.
        root: data folder (default: ``$CBIR_LAB_DATA`` or the user cache).
        **kwargs: passed to the specific loader.

    Returns:
        The dataset.
    """
    from cbir_lab.datasets import embedded

    if name is None or name == "embedded":
        return embedded.load_embedded(root=root, **kwargs)
    from cbir_lab.datasets import benchmarks, folder
    from cbir_lab.datasets.registry import BENCHMARKS

    if name in BENCHMARKS:
        return benchmarks.load_benchmark(name, root=root, **kwargs)
    from cbir_lab.datasets.real_photos import REAL_DATASETS, load_real_dataset

    if name in REAL_DATASETS:
        return load_real_dataset(name, root=root, **kwargs)
    return folder.load_folder(name, **kwargs)
