"""Datasets in the paper's HDF5 layout: reading, crash-safe writing, collection, tools.

``open_dataset`` reads release files and ours alike; ``Writer`` appends whole
trajectories so that a killed writer never leaves a half-written one; ``validate``
names the first problem of a file in one line. Collection lives in
:mod:`laom.data.collect`, labelled subsets in :mod:`laom.data.labeled`, shard merging in
:mod:`laom.data.merge`.
"""

from laom.data.format import (
    FILE_ATTRS,
    Compression,
    DatasetReader,
    Trajectory,
    ValidationReport,
    Writer,
    create,
    info,
    open_dataset,
    validate,
)

__all__ = [
    "FILE_ATTRS",
    "Compression",
    "DatasetReader",
    "Trajectory",
    "ValidationReport",
    "Writer",
    "create",
    "info",
    "open_dataset",
    "validate",
]
