"""The commands: `launch` (plan, run, and status/list/logs/cancel), `launch-report`, `launch-cluster`."""
