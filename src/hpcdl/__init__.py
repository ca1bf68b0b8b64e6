"""hpcdl: a containerized Snakemake pipeline for scientific deep-learning benchmarks."""
