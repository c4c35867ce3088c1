"""Change data capture into Bronze, one package per source family (``postgres/``, ``mysql/``):
each reads its stream into the shared fold (``fold.py``) and commits through ``commit.py``."""
