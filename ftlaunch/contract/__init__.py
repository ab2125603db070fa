"""plan.json and what both sides share: data rows and paths, prompts, metric names, errors, run folders, the
lines meant for a person. Standard library only; the compute side (ftlaunch.recipes) imports nothing else of
ftlaunch."""
