"""The training engine: settings, Trainer, schedule, checkpoints, MLPerf logging, staging."""
