"""The course as a course: its editions (student, self-study, instructor) and, later, the book.

See :mod:`cbir_lab.course.editions`; ``cbir-lab course EDITION DIR`` writes one.
"""

__all__: list[str] = []
