"""``transform:`` at run time: floe.yaml's columns, hashes, masks, renames, drops and filter
applied to Arrow tables before their commit (``table.py``), in a sandboxed engine
(``engine.py``), on the files a dlt load normalized (``files.py``)."""

from floe.runtime.transforms.table import Applied, TableTransform, TransformError

__all__ = ["Applied", "TableTransform", "TransformError"]
