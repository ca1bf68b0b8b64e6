"""CosmoFlow training in PyTorch: model, data, schedule, checkpoints, MLPerf HPC logging."""
