"""Execute a plan: on this node with a live progress bar, or submitted to Slurm."""
