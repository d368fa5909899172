"""The lessons' studies: comparisons that a lesson draws a conclusion from, each a function over the core.

One module per study, each above :mod:`cbir_lab.index` (the retrieval core they all read):

* :mod:`.methods`: comparison tables (:class:`~.methods.MethodScore` rows) and their
  bootstrap intervals; one query's precision-recall curve across poolings.
* :mod:`.explain`: "why did this match?", contribution maps; a few images compared.
* :mod:`.depth`: conv maps pooled at several depths against the network's FC outputs.
* :mod:`.whitening`: what PCA-whitening does as the dimension d changes (lesson 3).
* :mod:`.encodings`: VLAD, FV and TE against SPoC, and visual words (lesson 7).
* :mod:`.reranking`: α-QE, database-side augmentation and diffusion (lesson 8).
* :mod:`.beyond`: k-reciprocal re-ranking and spatial verification, with what each costs.
* :mod:`.scaling`: a larger backbone (EfficientNet-Lite0/1/2) against multi-scale
  descriptors, each with its extraction time and memory (issue #22).
* :mod:`.real_photos`: every lesson's headline comparison on real photos (the
  Paris slice and ETH-80), with intervals that resample landmarks or objects.
* :mod:`.capstone`: the capstone (lesson 11): tuning and test queries, a grid of
  (pooling, d, re-ranking) chosen on the tuning queries, the report on the test
  queries, and one failure shown.
"""

__all__: list[str] = []
