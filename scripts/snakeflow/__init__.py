"""Code shared by the snakeflow Snakefile and its step scripts.

- ``workflow``: helpers the Snakefile needs at parse time (standard library only, so a
  no-op ``snakemake`` stays cheap);
- ``record``: what a step records for MLflow (its job record; standard library only);
- ``models``, ``registry``: saving and loading models, and the Model Registry (register and
  predict are the only steps that reach the tracking store);
- ``fileio``, ``urls``, ``errors``, ``csvio``: atomic writes, URL handling, user-facing
  errors and exact CSV reading.
"""
