"""Code shared by the snakeflow Snakefile and its step scripts.

- ``workflow``: helpers the Snakefile needs at parse time (standard library only, so a
  no-op ``snakemake`` stays cheap): datasets, their settings, grid points;
- ``record``: what a step records for MLflow (its job record; standard library only);
- ``tasks``: a dataset's task (classification or regression), decided from its target
  (standard library and pyarrow: clean uses it);
- ``learners``: what differs between the two tasks, behind one interface (``task_for``):
  split stratification, CV folds, predictions, metrics, the default gate, signature output;
- ``plots``, ``cards``: evaluate's plots, and the registry's texts (gate reason, model card);
- ``cleaning``: clean's streaming CSV engine (kept rows byte-identical);
- ``features``, ``metrics``: the preprocessing and estimator of a model, and its scores;
- ``models``, ``registry``: saving and loading models, and the Model Registry (register and
  predict are the only steps that reach the tracking store);
- ``fileio``, ``urls``, ``errors``, ``csvio``: atomic writes, URL handling, user-facing
  errors and exact CSV reading.
"""
