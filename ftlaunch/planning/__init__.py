"""Search the configurations worth forecasting, choose one by the decision flow (docs/decision-flow.md), and
turn the choice into a plan."""
