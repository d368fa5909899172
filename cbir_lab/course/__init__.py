"""The course as a course: its editions, its book, and the project's one address.

* :mod:`cbir_lab.course.editions`: the student, self-study and instructor editions
  (``cbir-lab course EDITION DIR``).
* :mod:`cbir_lab.course.book`: the self-study edition as a static website
  (``cbir-lab course book DIR``), its widgets drawn by :mod:`cbir_lab.course.stills`,
  checked to load nothing from the network by :mod:`cbir_lab.course.offline`.
* :mod:`cbir_lab.course.project`: the address in ``pyproject.toml`` and every copy
  of it (``cbir-lab course sync-url``).
* :mod:`cbir_lab.course.timing`: each lesson section's minutes, estimated from what
  it asks; :mod:`cbir_lab.course.retime` checks them against, or writes them into, the
  lessons and the README (``cbir-lab course timing``).
* :mod:`cbir_lab.course.objectives`: which graded exercise assesses which learning
  objective, the instructors' table (``cbir-lab course sync-objectives``).
"""

__all__: list[str] = []
