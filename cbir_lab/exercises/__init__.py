"""Exercises: self-check functions for each lesson, giving feedback rather than just pass/fail, and quick checks.

The formula exercises check a transcription bit for bit; the decision exercises
(:mod:`~cbir_lab.exercises.decisions`, :mod:`~cbir_lab.exercises.claims`) check a choice against what the data can defend,
with a tolerance. Each ``check_*`` prints what is right or wrong and returns a
:class:`~cbir_lab.exercises._feedback.CheckResult`; ``.require()`` raises when
the answer is missing or wrong, which is how a graded test cell ends.
:class:`~cbir_lab.exercises.quiz.QuickCheck` asks a multiple-choice question.
"""

from cbir_lab.exercises._feedback import CheckResult, ExerciseNotPassed
from cbir_lab.exercises.prerequisites import *  # noqa: F401,F403
from cbir_lab.exercises.feature_maps import *  # noqa: F401,F403
from cbir_lab.exercises.pooling import *  # noqa: F401,F403
from cbir_lab.exercises.whitening import *  # noqa: F401,F403
from cbir_lab.exercises.retrieval import *  # noqa: F401,F403
from cbir_lab.exercises.benchmarks import *  # noqa: F401,F403
from cbir_lab.exercises.encodings import *  # noqa: F401,F403
from cbir_lab.exercises.decisions import *  # noqa: F401,F403
from cbir_lab.exercises.claims import *  # noqa: F401,F403
from cbir_lab.exercises.learning import *  # noqa: F401,F403
from cbir_lab.exercises.beyond import *  # noqa: F401,F403
from cbir_lab.exercises.later import *  # noqa: F401,F403
from cbir_lab.exercises.quiz import *  # noqa: F401,F403
from cbir_lab.exercises import (beyond, benchmarks, claims, decisions, encodings, feature_maps, later, learning, pooling,
                                prerequisites, quiz, retrieval, whitening)

__all__ = sorted({"CheckResult", "ExerciseNotPassed", *prerequisites.__all__, *feature_maps.__all__, *pooling.__all__,
                  *whitening.__all__, *retrieval.__all__, *benchmarks.__all__, *encodings.__all__, *decisions.__all__,
                  *claims.__all__, *learning.__all__, *beyond.__all__, *later.__all__, *quiz.__all__})
