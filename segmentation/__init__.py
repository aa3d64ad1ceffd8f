"""STCNN video object segmentation engine: a library with no web framework in it.

The one call most users need is :func:`segmentation.pipeline.segment`.
"""

__version__ = "0.1.0"
