"""Experiments: comparisons, sweeps, their runners, loading any run, and videos."""
