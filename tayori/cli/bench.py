"""`tayori bench …`: benchmarks (being built)."""
