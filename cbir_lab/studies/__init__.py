"""The lessons' studies: comparisons that a lesson draws a conclusion from, each a function over the core.

* :mod:`.real_photos`: every lesson's headline comparison on real photos (the
  Paris slice and ETH-80), with intervals that resample landmarks or objects.
"""

__all__: list[str] = []
