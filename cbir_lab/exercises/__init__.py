"""Exercises: self-check functions for each lesson, giving feedback rather than just pass/fail."""

from cbir_lab.exercises.feature_maps import *  # noqa: F401,F403
from cbir_lab.exercises.pooling import *  # noqa: F401,F403
from cbir_lab.exercises.whitening import *  # noqa: F401,F403
from cbir_lab.exercises.retrieval import *  # noqa: F401,F403
from cbir_lab.exercises import feature_maps, pooling, retrieval, whitening

__all__ = [*feature_maps.__all__, *pooling.__all__, *whitening.__all__, *retrieval.__all__]
