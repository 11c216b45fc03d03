"""Polish text -> speech (eSpeak NG) -> codec tokens + exact per-character durations."""
