"""Lesson 8's index explorer: every setting measured when built, each control shows one."""

import numpy as np
import pytest

from cbir_lab.scale import IndexStudy, ScaleDatabase
from cbir_lab.widgets import IndexTradeoffExplorer

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(0)
    db = rng.standard_normal((1500, 8)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    queries = db[:4] + 0.05
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    database = ScaleDatabase(db, queries, [{"ok": [i], "junk": []} for i in range(4)], np.concatenate([queries, db[4:40]]),
                             "1,500 random vectors")
    return IndexStudy(database, k=10, code_sizes=(2, 4), nlist=16)


def test_explorer_measures_every_offered_setting_and_shows_the_chosen_one(study):
    explorer = IndexTradeoffExplorer(study, nprobes=(1, 4, 16, 64))
    assert explorer.nprobe.options == (1, 4, 16)  # 64 > 16 cells: not offered
    assert len(explorer.measures) == 1 + 3 + 2 + 2 * 3
    explorer.kind.value = "ivf"
    explorer.nprobe.value = 16
    assert explorer.setting() == ("ivf", 0, 16) and explorer.code_size.disabled and not explorer.nprobe.disabled
    assert explorer.current.recall == pytest.approx(1.0)  # every cell scanned
    assert explorer.caption.startswith(f"IVF-Flat, nprobe 16: recall@10 1.000 (1.000 on the {len(study.database.query_vecs)} queries)")
    explorer.kind.value = "pq"
    assert explorer.setting() == ("pq", explorer.code_size.value, 0) and explorer.nprobe.disabled
    explorer.kind.value = "flat"
    assert explorer.current.recall == 1.0 and bytes(explorer.view.value).startswith(b"\x89PNG")
    assert explorer.error is None
    assert repr(explorer) == "IndexTradeoffExplorer(kind='flat', code_size=0, nprobe=0)"
