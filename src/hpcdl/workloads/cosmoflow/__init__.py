"""CosmoFlow (MLPerf HPC): regress four cosmological parameters from n³×4 int16 count cubes.

``params`` (the ``cosmoflow:`` settings, torch-free), ``workload`` (the Workload), ``model``
(the reference network) and ``data`` (the converted ``.npy`` pairs and their staging).
"""
