"""Datasets: the release's HDF5 trajectory format, crash-safe writing, collection, tools."""
