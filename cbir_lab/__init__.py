"""cbir_lab: content-based image retrieval with CNN features, for teaching.

The modules follow the pipeline, each stage importing only the ones before it:

    backbones → features → pooling → whitening → search → evaluation
    → datasets → pipeline → index → collection → viz → widgets / exercises → cli

Start with :func:`cbir_lab.datasets.load_dataset`, :func:`cbir_lab.backbones.load_backbone`
and :func:`cbir_lab.pipeline.extract_dataset`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
