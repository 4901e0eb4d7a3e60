"""The pre-label stage: a detector proposes boxes for each upload before the launcher makes it labeling work."""
