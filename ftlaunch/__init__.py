"""ftlaunch: plan, then run, LLM fine-tuning jobs.

Layers, each importing only those before it (tests/test_layers.py keeps it so):

    contract   plan.json and what the login side and the compute side share (standard library only)
    forecast   pure arithmetic: parameters, memory, speed, cost of one configuration
    config     Hydra's config dict -> a validated Job (model files, data files, token counts)
    planning   search the configurations, choose one, write it as a plan
    cluster    Slurm: batch scripts, submission, discovery, queue, outcomes
    run        execute a plan here or through Slurm, with live progress
    tracking   MLflow: the forecast beside the actuals, reports, calibration
    cli        the commands: launch, launch-report, launch-cluster

The compute side, ftlaunch.recipes, imports only ftlaunch.contract.
"""

__version__ = "0.1.0"
