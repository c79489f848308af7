"""mixlab.seg: the semantic-segmentation family (datasets, splits, joint augmentations, dense models, inference, the
semi-supervised segmentation loop), beside ``mimo/`` and ``ssl/``. See ARCHITECTURE.md, "Segmentation".

Import what you need from its modules (``mixlab.seg.method.SegSSLMethod``, ``mixlab.seg.config.SegSSLConfig``,
``mixlab.seg.data.build_seg_dataset``...): the package itself imports nothing, so that ``mixlab.metrics`` can use
``mixlab.seg.data`` without importing the training loop.
"""
