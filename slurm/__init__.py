"""Slurm assets shipped with ftlaunch: the batch template (ftlaunch.sbatch) and the local test cluster."""
