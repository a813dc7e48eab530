"""The reconciliation engine: diff, plan, apply, revert, drift; pure where it can be."""
