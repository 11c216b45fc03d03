"""Training and measurement harness: batches, loop, metrics, milestones, timing, CSVs."""
