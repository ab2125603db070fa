"""Slurm: the batch script, commands under a timeout, discovery of what the cluster has, its queue, GPU-hour
allocations, and how a job ended."""
