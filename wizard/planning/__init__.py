"""From what was found to the steps of this upgrade: hops, conditions, the plan and the checks before it."""
