"""snakeflow: an MLflow-tracked ML pipeline as a Snakemake workflow.

download -> clean; every job is one MLflow run nested under the invocation's parent run.
"""

from snakemake.utils import min_version, validate

from scripts.snakeflow import workflow as sf

min_version("9.0")


configfile: "config.yaml"


sf.coerce_cli_values(config, "schemas/config.schema.yaml")
validate(config, "schemas/config.schema.yaml")
sf.export_tracking_env(config)

DATASET = config["dataset"]


envvars:
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",


rule all:
    default_target: True
    input:
        f"data/clean/{DATASET}.csv",


rule download:
    input:
        **sf.download_input(config),
    output:
        csv=f"data/raw/{DATASET}.csv",
    log:
        f"logs/download/{DATASET}.log",
    benchmark:
        f"benchmarks/download/{DATASET}.tsv"
    retries: 1
    conda:
        "envs/download.yaml"
    params:
        url_sha256=sf.data_url_digest(config),
        sha256_pin=config["data_sha256"],
        timeout=config["download"]["timeout"],
        attempts=config["download"]["attempts"],
        backoff=config["download"]["backoff"],
        max_bytes=config["download"]["max_bytes"],
    script:
        "scripts/download.py"


rule clean:
    input:
        csv=rules.download.output.csv,
    output:
        csv=f"data/clean/{DATASET}.csv",
    log:
        f"logs/clean/{DATASET}.log",
    benchmark:
        f"benchmarks/clean/{DATASET}.tsv"
    conda:
        "envs/clean.yaml"
    params:
        target=config["target"],
        drop_columns=config["clean"]["drop_columns"],
        dropna=config["clean"]["dropna"],
        drop_duplicates=config["clean"]["drop_duplicates"],
    script:
        "scripts/clean.py"


onstart:
    sf.start_invocation(workflow, config)


onsuccess:
    sf.end_invocation("FINISHED")


onerror:
    sf.end_invocation("FAILED")
