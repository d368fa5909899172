"""The publishing workflow (.github/workflows/publish.yml), checked offline.

* Its YAML passes GitHub's workflow schema, as ``check-jsonschema`` vendors it
  (``--builtin-schema vendor.github-workflows``, no network), and a deliberately
  broken copy fails it, so the check can fail.
* It asks for the permissions it needs, installs PyTorch's CPU wheels before the
  package, builds the book and deploys it to Pages.
* Its script that writes the editions runs here, in a scratch repository with a
  bare ``origin`` and a stand-in ``cbir-lab``: both branches get main's tree with
  ``notebooks/`` replaced by the edition, one commit on top of main.

``check-jsonschema`` is in the [dev] extra: without it the schema tests skip, except
in CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cbir_lab.course.project import SELF_STUDY_BRANCH, SOURCE_BRANCH, STUDENT_BRANCH

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "publish.yml"


def load_workflow(path: Path = WORKFLOW) -> dict:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in workflow:  # YAML 1.1 reads the key `on` as the boolean true
        workflow["on"] = workflow.pop(True)
    return workflow


def check_jsonschema() -> str:
    exe = shutil.which("check-jsonschema")
    if exe is None:
        message = 'check-jsonschema is not installed: pip install -e ".[dev]"'
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)
    return exe


def schema_check(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema with its vendored GitHub-workflow schema; any attempt to reach the network fails."""
    offline = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "NO_PROXY": ""}
    return subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120, env=offline)


def job_steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job_steps(job))


def uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job_steps(job) if "uses" in step]


# --------------------------------------------------------------------------- the schema


def test_the_publish_workflow_passes_githubs_workflow_schema():
    result = schema_check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize("good, broken, where", [
    ("runs-on: ubuntu-latest", "runs-onn: ubuntu-latest", "'runs-on' is a required property"),
    ("contents: write # push", "contents: admin # push", "$.jobs.editions"),
    ("\non:\n", "\nonn:\n", "'on' is a required property"),
], ids=["misspelt-key", "unknown-permission", "no-trigger"])
def test_a_broken_copy_of_the_workflow_fails_the_schema_check(tmp_path, good, broken, where):
    text = WORKFLOW.read_text(encoding="utf-8")
    assert good in text
    copy = tmp_path / "publish.yml"
    copy.write_text(text.replace(good, broken, 1), encoding="utf-8")
    result = schema_check(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert where in result.stdout


# --------------------------------------------------------------------------- what it does


def test_it_runs_on_each_push_to_main_and_asks_for_the_permissions_it_needs():
    workflow = load_workflow()
    assert workflow["on"]["push"]["branches"] == [SOURCE_BRANCH] == ["main"]
    jobs = workflow["jobs"]
    assert workflow["permissions"] == {"contents": "read"}  # every job gets only what it asks for
    asked = {(name, level) for job in jobs.values() for name, level in job.get("permissions", {}).items()}
    assert {("contents", "write"), ("pages", "write"), ("id-token", "write")} <= asked
    pushing = [name for name, job in jobs.items() if "git push" in runs(job) or "git -C" in runs(job)]
    assert pushing == ["editions"] and jobs["editions"]["permissions"] == {"contents": "write"}
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert jobs["deploy"]["environment"]["name"] == "github-pages"


def test_it_writes_the_editions_to_the_branches_the_badges_open():
    workflow = load_workflow()
    assert workflow["env"]["SELF_STUDY_BRANCH"] == SELF_STUDY_BRANCH == "self-study"
    assert workflow["env"]["STUDENT_BRANCH"] == STUDENT_BRANCH == "student"
    script = runs(workflow["jobs"]["editions"])
    assert "for edition in self-study student; do" in script  # cbir-lab course's own edition names
    assert 'cbir-lab course "$edition"' in script
    assert 'push --force origin "HEAD:refs/heads/$branch"' in script


def test_it_installs_the_cpu_wheels_of_torch_before_the_package_and_deploys_the_book_to_pages():
    jobs = load_workflow()["jobs"]
    for name in ("editions", "book"):
        script = runs(jobs[name])
        torch = script.index("pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu")
        package = re.search(r'pip install -e "?\.', script)
        assert package and torch < package.start(), f"{name}: the package would pull CUDA's torch"
    assert 'pip install -e ".[book]"' in runs(jobs["book"])
    assert 'cbir-lab course book "$RUNNER_TEMP/book"' in runs(jobs["book"])
    upload = next(s for s in job_steps(jobs["book"]) if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "${{ runner.temp }}/book"
    assert jobs["deploy"]["needs"] == "book" and uses(jobs["deploy"]) == ["actions/deploy-pages"]


# --------------------------------------------------------------------------- its script, run here


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def scratch(tmp_path):
    """A clone of a tiny main (two lessons, a glossary, a README, environment.yml) with a bare origin, and a stand-in
    ``cbir-lab`` whose ``course EDITION DIR`` writes one lesson, ``01_a.ipynb``, reading ``<EDITION> edition``, and
    the glossary, and fails as the real one does when either is already there."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    origin, work, bin_dir = tmp_path / "origin.git", tmp_path / "work", tmp_path / "bin"
    git("init", "--quiet", "--bare", str(origin), cwd=tmp_path)
    (work / "notebooks").mkdir(parents=True)
    git("init", "--quiet", "-b", "main", cwd=work)
    (work / "README.md").write_text("# tiny\n")
    (work / "environment.yml").write_text("name: tiny\n")
    (work / "notebooks" / "01_a.ipynb").write_text("instructor edition\n")
    (work / "notebooks" / "02_b.ipynb").write_text("instructor edition\n")
    (work / "notebooks" / "glossary.md").write_text("the glossary\n")
    git("add", "-A", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "main", cwd=work)
    git("remote", "add", "origin", str(origin), cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    bin_dir.mkdir()
    fake = bin_dir / "cbir-lab"
    fake.write_text('#!/bin/sh\n[ "$1" = course ] || exit 2\nmkdir -p "$3"\n'
                    '[ -e "$3/01_a.ipynb" ] || [ -e "$3/glossary.md" ] && exit 3\n'
                    'printf "%s edition\\n" "$2" > "$3/01_a.ipynb"\nprintf "the glossary\\n" > "$3/glossary.md"\n')
    fake.chmod(0o755)
    return {"origin": origin, "work": work, "bin": bin_dir, "tmp": tmp_path}


def run_editions_script(scratch: dict) -> subprocess.CompletedProcess:
    workflow = load_workflow()
    step = next(s for s in job_steps(workflow["jobs"]["editions"]) if "cbir-lab course" in s.get("run", ""))
    runner_temp = scratch["tmp"] / "runner"
    runner_temp.mkdir(exist_ok=True)
    sha = git("rev-parse", "HEAD", cwd=scratch["work"]).strip()
    env = {**os.environ, **workflow["env"], "GITHUB_SHA": sha, "RUNNER_TEMP": str(runner_temp),
           "PATH": f"{scratch['bin']}{os.pathsep}{os.environ['PATH']}", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["bash", "-c", step["run"]], cwd=scratch["work"], env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_editions_script_pushes_each_edition_to_its_branch_on_top_of_main(scratch):
    result = run_editions_script(scratch)
    assert result.returncode == 0, result.stdout + result.stderr
    origin = scratch["origin"]
    main = git("rev-parse", "main", cwd=origin).strip()
    for edition, branch in (("self-study", "self-study"), ("student", "student")):
        assert git("show", f"{branch}:notebooks/01_a.ipynb", cwd=origin) == f"{edition} edition\n"
        files = git("ls-tree", "-r", "--name-only", branch, cwd=origin).split()
        # 02_b, not in the edition, is gone; the glossary is the edition's copy
        assert files == ["README.md", "environment.yml", "notebooks/01_a.ipynb", "notebooks/glossary.md"]
        assert git("rev-parse", f"{branch}~1", cwd=origin).strip() == main  # one commit on top of main
    assert git("show", "main:notebooks/01_a.ipynb", cwd=origin) == "instructor edition\n"  # main is untouched
    assert git("worktree", "list", "--porcelain", cwd=scratch["work"]).count("worktree ") == 1  # it cleans up


def test_the_editions_script_replaces_the_branches_on_the_next_push(scratch):
    assert run_editions_script(scratch).returncode == 0
    work = scratch["work"]
    (work / "README.md").write_text("# tiny, second version\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-am", "second", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    result = run_editions_script(scratch)
    assert result.returncode == 0, result.stdout + result.stderr
    origin = scratch["origin"]
    for branch in ("self-study", "student"):
        assert git("show", f"{branch}:README.md", cwd=origin) == "# tiny, second version\n"
        assert git("rev-parse", f"{branch}~1", cwd=origin) == git("rev-parse", "main", cwd=origin)
