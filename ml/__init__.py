"""The bridge from SoA collections to PyTorch: tensors with no copies, models
run in place on the data's own device and stream.

Example::

    >>> import numpy as np, portable as pt, ml
    >>> L = pt.Layout.define("L", [("a", pt.column(np.float32)), ("b", pt.column(np.float32))])
    >>> c = pt.PortableCollection(L, 3, pt.get_device("cpu_serial"), zero=True)
    >>> meta = ml.SoAMetadata(c)
    >>> meta.append_block("ab", "a", "b")
    >>> meta.tensor("ab")[:, 1] = 5.0      # writes land in the collection
    >>> c.column("b").tolist()
    [5.0, 5.0, 5.0]
"""
from .metadata import Block, MetadataError, ModelMetadata, SoAMetadata
from .model import Model, ModelFileError, aot_compile, set_threads

__all__ = ["Block", "MetadataError", "Model", "ModelFileError", "ModelMetadata", "SoAMetadata",
           "aot_compile", "set_threads"]
