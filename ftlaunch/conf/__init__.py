"""Hydra config groups shipped with ftlaunch (pkg://ftlaunch.conf): model, data, method, gpu, cluster."""
