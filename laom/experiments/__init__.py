"""Experiments over the whole grid of the paper: ``laom sweep`` runs (task, method,
labelled budget, seed) pipelines resumably, ``laom report`` turns their records into
the paper's figures and tables, and :mod:`laom.experiments.paper` holds the paper's
numbers to compare against."""
