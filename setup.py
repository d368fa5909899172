"""Build hook: ship the lessons in the wheel, while notebooks/ stays their single source.

pyproject.toml holds the project's metadata; this file only adds a step to
``build_py``: the lessons (``notebooks/NN_*.ipynb``) and the reference pages
beside them (``cheat_sheet.md``, ``glossary.md``) are copied into
``cbir_lab/course/lessons/`` of the build, so that ``cbir-lab course`` works
after a plain ``pip install`` of the wheel. A checkout reads ``notebooks/``
directly (:func:`cbir_lab.course.editions.lessons_dir`).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# The reference pages the lessons link to; cbir_lab.course.editions.REFERENCE_PAGES names the same files (the build
# must not import the package it builds).
REFERENCE_PAGES = ("cheat_sheet.md", "glossary.md")


class BuildWithLessons(build_py):
    def run(self):
        super().run()
        lessons = sorted((Path(__file__).resolve().parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if not lessons:
            raise FileNotFoundError("no lessons in notebooks/: the wheel would ship a course without lessons")
        target = Path(self.build_lib) / "cbir_lab" / "course" / "lessons"
        shutil.rmtree(target, ignore_errors=True)  # a renamed lesson must not ship twice from an earlier build
        target.mkdir(parents=True)
        pages = [page for name in REFERENCE_PAGES if (page := lessons[0].parent / name).is_file()]
        for lesson in lessons + pages:
            shutil.copy2(lesson, target / lesson.name)


setup(cmdclass={"build_py": BuildWithLessons})
