"""snakeflow: MLflow-tracked ML pipelines as one Snakemake workflow.

For every configured dataset (the {dataset} wildcard): download -> clean -> split ->
search and train (one job per model and grid point) -> evaluate -> register -> predict;
every job is one MLflow run nested under the invocation's parent run.
"""

from snakemake.utils import min_version

from scripts.snakeflow import workflow as sf

min_version("9.0")


configfile: "config.yaml"


sf.coerce_cli_values(config, workflow.source_path("schemas/config.schema.json"))
sf.validate(config, workflow.source_path("schemas/config.schema.json"))
DATASETS = sf.resolve_datasets(config)
sf.check_grids(config)
sf.export_tracking_env(config)

MODELS = sorted(config["models"])
RESULTS = "results/{dataset}"


report: "report/workflow.rst"


localrules:
    all,


wildcard_constraints:
    dataset=sf.NAME,  # an unconfigured name stops with the list of configured ones
    model=sf.one_of(MODELS),
    point=sf.one_of(sf.all_points(config)) or "p[0-9a-f]{10}",


envvars:
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",


rule all:
    default_target: True
    input:
        expand(f"{RESULTS}/predictions.csv", dataset=sorted(DATASETS)),


rule download:
    input:
        unpack(sf.download_input(DATASETS)),
    output:
        csv="data/raw/{dataset}.csv",
    log:
        **sf.logs("download", "{dataset}"),
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    conda:
        "envs/download.yaml"
    params:
        dataset="{dataset}",
        url_sha256=sf.url_digest(DATASETS),
        sha256_pin=sf.setting(DATASETS, "sha256"),
        timeout=config["download"]["timeout"],
        attempts=config["download"]["attempts"],
        backoff=config["download"]["backoff"],
        max_bytes=config["download"]["max_bytes"],
    script:
        "scripts/download.py"


checkpoint clean:
    input:
        csv=rules.download.output.csv,
    output:
        task="data/clean/{dataset}.task.json",
        csv="data/clean/{dataset}.csv",
    log:
        **sf.logs("clean", "{dataset}"),
    benchmark:
        "benchmarks/clean/{dataset}.tsv"
    conda:
        "envs/clean.yaml"
    params:
        dataset="{dataset}",
        target=sf.setting(DATASETS, "target"),
        task=sf.setting(DATASETS, "task"),
        drop_columns=sf.setting(DATASETS, "clean", "drop_columns"),
        dropna=sf.setting(DATASETS, "clean", "dropna"),
        drop_duplicates=sf.setting(DATASETS, "clean", "drop_duplicates"),
    script:
        "scripts/clean.py"


rule split:
    input:
        csv=rules.clean.output.csv,
        task=rules.clean.output.task,
    output:
        train="data/split/{dataset}/train.csv",
        test="data/split/{dataset}/test.csv",
    log:
        **sf.logs("split", "{dataset}"),
    benchmark:
        "benchmarks/split/{dataset}.tsv"
    conda:
        "envs/split.yaml"
    params:
        dataset="{dataset}",
        target=sf.setting(DATASETS, "target"),
        task=sf.task_of(DATASETS, checkpoints.clean),
        test_size=sf.setting(DATASETS, "split", "test_size"),
        seed=sf.setting(DATASETS, "split", "seed"),
    script:
        "scripts/split.py"


rule search:
    input:
        csv=rules.split.output.train,
        task=rules.clean.output.task,
    output:
        score=f"{RESULTS}/search/{{model}}/{{point}}.json",
    log:
        **sf.logs("search", "{dataset}/{model}/{point}"),
    benchmark:
        "benchmarks/search/{dataset}/{model}/{point}.tsv"
    conda:
        "envs/search.yaml"
    threads: config["train"]["threads"]
    params:
        **sf.model_params(config, DATASETS, checkpoints.clean),
        point=sf.point_setting(config),
        folds=config["cv"]["folds"],
    script:
        "scripts/search.py"


rule train:
    input:
        csv=rules.split.output.train,
        task=rules.clean.output.task,
        raw=rules.download.output.csv,  # the signature types columns as pandas reads it
        search=sf.search_results(config, rules.search.output.score),
    output:
        model=directory(f"{RESULTS}/models/{{model}}"),
    log:
        **sf.logs("train", "{dataset}/{model}"),
    benchmark:
        "benchmarks/train/{dataset}/{model}.tsv"
    conda:
        "envs/train.yaml"
    threads: config["train"]["threads"]
    params:
        **sf.model_params(config, DATASETS, checkpoints.clean),
    script:
        "scripts/train.py"


rule evaluate:
    input:
        model=rules.train.output.model,
        test=rules.split.output.test,
        task=rules.clean.output.task,
    output:
        metrics=f"{RESULTS}/metrics/{{model}}.json",
        plots=report(
            directory(f"{RESULTS}/plots/{{model}}"),
            patterns=["{name}.png", "{name}.csv"],
            caption="report/plots.rst",
            category="Evaluation",
            subcategory="{dataset}: {model}",
        ),
    log:
        **sf.logs("evaluate", "{dataset}/{model}"),
    benchmark:
        "benchmarks/evaluate/{dataset}/{model}.tsv"
    conda:
        "envs/evaluate.yaml"
    params:
        dataset="{dataset}",
        target=sf.setting(DATASETS, "target"),
        task=sf.task_of(DATASETS, checkpoints.clean),
    script:
        "scripts/evaluate.py"


rule register:
    input:
        metrics=sf.dataset_models(
            config, DATASETS, checkpoints.clean, rules.evaluate.output.metrics
        ),
        models=sf.dataset_models(
            config, DATASETS, checkpoints.clean, rules.train.output.model
        ),
        test=rules.split.output.test,
        task=rules.clean.output.task,
    output:
        registration=report(
            f"{RESULTS}/registration.json",
            caption="report/registration.rst",
            category="Registration",
            subcategory="{dataset}",
        ),
        table=report(
            f"{RESULTS}/metrics.tsv",
            caption="report/metrics.rst",
            category="Evaluation",
            subcategory="{dataset}",
        ),
    log:
        **sf.logs("register", "{dataset}"),
    conda:
        "envs/register.yaml"
    params:
        dataset="{dataset}",
        task=sf.task_of(DATASETS, checkpoints.clean),
        model_name=sf.setting(DATASETS, "register", "model_name"),
        metric=sf.metric_of(DATASETS, checkpoints.clean),
        threshold=sf.setting(DATASETS, "register", "threshold"),
        alias=sf.setting(DATASETS, "register", "alias"),
        challenger_alias=sf.setting(DATASETS, "register", "challenger_alias"),
        target=sf.setting(DATASETS, "target"),
        min_delta=sf.setting(DATASETS, "register", "min_delta"),
    script:
        "scripts/register.py"


rule predict:
    input:
        registration=rules.register.output.registration,
        csv=sf.predict_input(DATASETS, rules.split.output.test),
        task=rules.clean.output.task,
    output:
        predictions=f"{RESULTS}/predictions.csv",
    log:
        **sf.logs("predict", "{dataset}"),
    benchmark:
        "benchmarks/predict/{dataset}.tsv"
    conda:
        "envs/predict.yaml"
    params:
        dataset="{dataset}",
        task=sf.task_of(DATASETS, checkpoints.clean),
        model_name=sf.setting(DATASETS, "register", "model_name"),
        alias=sf.setting(DATASETS, "register", "alias"),
        target=sf.setting(DATASETS, "target"),
    script:
        "scripts/predict.py"


onstart:
    sf.check_estimators(config, workflow)


onsuccess:
    sf.end_rate_timers()


onerror:
    sf.end_rate_timers()
