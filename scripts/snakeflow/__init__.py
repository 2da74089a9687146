"""Code shared by the snakeflow Snakefile and its step scripts.

- ``workflow``: helpers the Snakefile needs at parse time (standard library only, so a
  no-op ``snakemake`` stays cheap);
- ``tracking``: every MLflow call of the pipeline (imports mlflow; step scripts only);
- ``fileio``, ``urls``, ``errors``: atomic writes, URL handling and user-facing errors.
"""

PARENT_ENV = "SNAKEFLOW_PARENT_RUN_ID"  # the invocation's parent run id, passed to every job
GIT_COMMIT_ENV = "SNAKEFLOW_GIT_COMMIT"  # the workflow's git commit, found once per invocation
