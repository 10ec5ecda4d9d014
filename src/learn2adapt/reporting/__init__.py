"""Reports: run records and summaries, Markdown reports, plots, aggregates, claims and the variant labels they show."""
