"""Evaluation, comparisons, reports and videos: what researchers run and read."""
