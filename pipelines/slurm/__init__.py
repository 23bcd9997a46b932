"""Running on SLURM: ``client`` (sbatch / squeue / sacct / scancel with retries, one query
per poll for all jobs) and ``array`` (one job array per batch, a subject per task)."""
