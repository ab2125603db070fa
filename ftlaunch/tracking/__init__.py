"""MLflow: one run per launch with the forecast beside the actuals, the report across runs, calibration from
them."""
