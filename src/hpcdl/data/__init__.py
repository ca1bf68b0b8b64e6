"""Data preparation by format: TFRecords (:mod:`.tfrecord`, :mod:`.convert`, :mod:`.synth`), ``.npy``
pairs and their lists (:mod:`.lists`), IDX, CIFAR pickles and CSV as per-split arrays
(:mod:`.arrays`), image and mask folders (:mod:`.masks`, :mod:`.cells`), and verified downloads
(:mod:`.download`, :mod:`.fetch`). Each module is the ``hpcdl`` subcommand of the same name; the
workloads declare which of them prepare their data (:mod:`hpcdl.data.stages`).
"""
