"""The project's metadata stays coherent: environment.yml mirrors pyproject.toml, layers import one way."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")
yaml = pytest.importorskip("yaml")

# PyPI name → conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch"}


def split_requirement(req: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return dict(split_requirement(r) for r in reqs)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep["pip"]:
                if not pip_dep.startswith("-e"):
                    name, spec = split_requirement(pip_dep)
                    out[name] = spec
        else:
            name, spec = split_requirement(dep)
            out[name] = spec
    return out


def test_environment_yml_has_every_pyproject_requirement_with_the_same_bounds():
    env = environment_requirements()
    for name, spec in pyproject_requirements().items():
        conda = CONDA_NAMES.get(name, name)
        assert conda in env, f"{name} is in pyproject.toml but not in environment.yml"
        assert env[conda] == spec, f"{name}: pyproject.toml says {spec!r}, environment.yml {env[conda]!r}"


def test_environment_yml_has_nothing_pyproject_lacks():
    known = {CONDA_NAMES.get(n, n) for n in pyproject_requirements()} | {"python", "pip"}
    assert set(environment_requirements()) <= known


def test_no_requirement_asks_for_a_newer_torch_than_2_14_1():
    reqs = pyproject_requirements()
    assert not re.search(r"(==|>=|>)\s*2\.(1[5-9]|[2-9]\d)", reqs["torch"])


LAYERS = ["_array", "paths", "images", "backbone_specs", "backbones", "features", "pooling", "aggregation",
          "encodings", "whitening", "heads", "search", "rerank", "kreciprocal", "verification", "indexes", "statistics",
          "evaluation", "datasets", "pipeline", "learning", "trained_heads", "index", "onnx_network", "descriptor_store",
          "collection", "scale", "reproduce", "viz", "studies", "widgets", "exercises", "talk", "course", "cli"]
#: "_array" is the basement, below every floor: it imports nothing of cbir_lab.
#: The ground floor: stages that know nothing of each other (only where files live, and a backbone's own specs).
GROUND_FLOOR = {"images", "backbone_specs", "backbones", "pooling", "aggregation", "whitening", "search", "evaluation"}
#: Stages split in two: the second half builds on the first alone (and the basement).
SECOND_HALVES = {"encodings": {"aggregation", "_array"}}
#: What a widget may build on: any lower floor (the retrieval core, the lessons' studies, the pictures, a stage's
#: values) and the other widgets. The rule that matters is not which floors it reads but that a widget computes
#: nothing itself: every number it shows comes from a function below it, the one the CLI and the notebooks call.
WIDGET_IMPORTS = set(LAYERS[: LAYERS.index("widgets") + 1])


def imported_cbir_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cbir_lab."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cbir_lab.")}
    return names


def test_lower_stages_never_import_higher_ones():
    pkg = ROOT / "cbir_lab"
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg)
        layer = rel.parts[0].removesuffix(".py")
        if layer not in LAYERS:
            continue
        for imported in imported_cbir_modules(path):
            if imported in LAYERS:
                assert LAYERS.index(imported) <= LAYERS.index(layer), f"{rel} (layer {layer}) imports cbir_lab.{imported}"


def test_the_ground_floor_stages_import_none_of_each_other():
    for name in GROUND_FLOOR:
        imported = imported_cbir_modules(ROOT / "cbir_lab" / f"{name}.py")
        allowed = {"paths", "backbone_specs"} if name == "backbones" else {"paths"}
        allowed.add("_array")  # the basement: numpy helpers (l2n, input checks) that every floor shares
        if name == "evaluation":
            allowed.add("statistics")  # its bootstrap section, in a module of its own and re-exported
        assert imported <= allowed, f"cbir_lab.{name} imports {sorted(imported)}"


def test_a_second_half_builds_on_its_first_half_only():
    for name, allowed in SECOND_HALVES.items():
        imported = imported_cbir_modules(ROOT / "cbir_lab" / f"{name}.py")
        assert imported <= allowed, f"cbir_lab.{name} imports {sorted(imported - allowed)}"


def test_widgets_build_only_on_lower_floors():
    for path in (ROOT / "cbir_lab" / "widgets").glob("*.py"):
        imported = imported_cbir_modules(path)
        assert imported <= WIDGET_IMPORTS, f"{path.name} imports {sorted(imported - WIDGET_IMPORTS)}"


def test_every_module_has_a_docstring_and_all():
    for path in (ROOT / "cbir_lab").rglob("*.py"):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} has no module docstring"
        if path.name != "__main__.py":
            assert any(
                isinstance(n, (ast.Assign, ast.AnnAssign))
                and any(getattr(t, "id", None) == "__all__" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
                for n in tree.body
            ), f"{path.relative_to(ROOT)} has no __all__"


def test_dev_installs_every_extra_the_tests_use():
    """CI installs .[dev]: the book's, the talk mode's, grading's and issue #22's (beyond: spatial verification,
    the larger Lites) packages must be in it."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dev = set(extras["dev"])
    for name in ("book", "talk", "grading", "beyond"):
        assert set(extras[name]) <= dev, f"[dev] lacks {sorted(set(extras[name]) - dev)} of [{name}]"


def test_viz_lists_every_public_name_of_its_modules():
    # cbir_lab.viz imports a module on first use of one of its names (so that `cbir-lab search`
    # never loads matplotlib); its table of names must follow each module's own __all__.
    import importlib

    import cbir_lab.viz as viz

    modules = {p.stem for p in (ROOT / "cbir_lab" / "viz").glob("*.py") if not p.stem.startswith("_")}
    assert set(viz._EXPORTS) == modules - {"panels"}  # the numpy canvas the other modules draw with
    for module, names in viz._EXPORTS.items():
        assert tuple(importlib.import_module(f"cbir_lab.viz.{module}").__all__) == names, module
    assert viz.plot_ranking is importlib.import_module("cbir_lab.viz.ranking").plot_ranking
