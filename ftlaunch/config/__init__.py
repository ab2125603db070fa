"""The resolved Hydra config -> a validated Job: the rule table, the shipped catalog, the user model folder
(config.json) and data file (rows, token counts)."""
