"""snakeflow: an MLflow-tracked ML pipeline as a Snakemake workflow.

download -> clean -> split -> train (one job per model) -> evaluate -> register -> predict;
every job is one MLflow run nested under the invocation's parent run.
"""

from snakemake.utils import min_version, validate

from scripts.snakeflow import workflow as sf

min_version("9.0")


configfile: "config.yaml"


sf.coerce_cli_values(config, workflow.source_path("schemas/config.schema.json"))
validate(config, "schemas/config.schema.json")
sf.check_grids(config)
sf.export_tracking_env(config)

DATASET = config["dataset"]
MODELS = sorted(config["models"])
RESULTS = f"results/{DATASET}"


report: "report/workflow.rst"


localrules:
    all,


wildcard_constraints:
    model=sf.one_of(MODELS),
    point=sf.one_of(sf.all_points(config)) or "p[0-9a-f]{10}",


envvars:
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",


rule all:
    default_target: True
    input:
        f"{RESULTS}/predictions.csv",


rule download:
    input:
        **sf.download_input(config),
    output:
        csv=f"data/raw/{DATASET}.csv",
    log:
        **sf.logs("download", DATASET),
    benchmark:
        f"benchmarks/download/{DATASET}.tsv"
    conda:
        "envs/download.yaml"
    params:
        dataset=DATASET,
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
        **sf.logs("clean", DATASET),
    benchmark:
        f"benchmarks/clean/{DATASET}.tsv"
    conda:
        "envs/clean.yaml"
    params:
        dataset=DATASET,
        target=config["target"],
        drop_columns=config["clean"]["drop_columns"],
        dropna=config["clean"]["dropna"],
        drop_duplicates=config["clean"]["drop_duplicates"],
    script:
        "scripts/clean.py"


rule split:
    input:
        csv=rules.clean.output.csv,
    output:
        train=f"data/split/{DATASET}/train.csv",
        test=f"data/split/{DATASET}/test.csv",
    log:
        **sf.logs("split", DATASET),
    benchmark:
        f"benchmarks/split/{DATASET}.tsv"
    conda:
        "envs/split.yaml"
    params:
        dataset=DATASET,
        target=config["target"],
        test_size=config["split"]["test_size"],
        seed=config["split"]["seed"],
    script:
        "scripts/split.py"


rule search:
    input:
        csv=rules.split.output.train,
    output:
        score=f"{RESULTS}/search/{{model}}/{{point}}.json",
    log:
        **sf.logs("search", f"{DATASET}/{{model}}/{{point}}"),
    benchmark:
        f"benchmarks/search/{DATASET}/{{model}}/{{point}}.tsv"
    conda:
        "envs/search.yaml"
    threads: config["train"]["threads"]
    params:
        dataset=DATASET,
        target=config["target"],
        estimator=sf.model_setting(config, "estimator"),
        model_params=sf.model_setting(config, "params"),
        point=sf.point_setting(config),
        folds=config["cv"]["folds"],
        metric=config["register"]["metric"],
        drop=config["features"]["drop"],
        infer_drop=config["features"]["infer_drop"],
        seed=config["split"]["seed"],
    script:
        "scripts/search.py"


rule train:
    input:
        csv=rules.split.output.train,
        raw=rules.download.output.csv,  # the signature types columns as pandas reads it
        search=sf.search_results(config, rules.search.output.score),
    output:
        model=directory(f"{RESULTS}/models/{{model}}"),
    log:
        **sf.logs("train", f"{DATASET}/{{model}}"),
    benchmark:
        f"benchmarks/train/{DATASET}/{{model}}.tsv"
    conda:
        "envs/train.yaml"
    threads: config["train"]["threads"]
    params:
        dataset=DATASET,
        target=config["target"],
        estimator=sf.model_setting(config, "estimator"),
        model_params=sf.model_setting(config, "params"),
        drop=config["features"]["drop"],
        infer_drop=config["features"]["infer_drop"],
        seed=config["split"]["seed"],
        metric=config["register"]["metric"],
    script:
        "scripts/train.py"


rule evaluate:
    input:
        model=rules.train.output.model,
        test=rules.split.output.test,
    output:
        metrics=f"{RESULTS}/metrics/{{model}}.json",
        confusion=report(
            f"{RESULTS}/plots/{{model}}/confusion_matrix.png",
            caption="report/confusion.rst",
            category="Evaluation",
            subcategory="{model}",
        ),
        roc=report(
            f"{RESULTS}/plots/{{model}}/roc.png",
            caption="report/roc.rst",
            category="Evaluation",
            subcategory="{model}",
        ),
        pr=report(
            f"{RESULTS}/plots/{{model}}/pr.png",
            caption="report/pr.rst",
            category="Evaluation",
            subcategory="{model}",
        ),
    log:
        **sf.logs("evaluate", f"{DATASET}/{{model}}"),
    benchmark:
        f"benchmarks/evaluate/{DATASET}/{{model}}.tsv"
    conda:
        "envs/evaluate.yaml"
    params:
        dataset=DATASET,
        target=config["target"],
    script:
        "scripts/evaluate.py"


rule register:
    input:
        metrics=expand(rules.evaluate.output.metrics, model=MODELS),
        models=expand(rules.train.output.model, model=MODELS),
        test=rules.split.output.test,
    output:
        registration=report(
            f"{RESULTS}/registration.json",
            caption="report/registration.rst",
            category="Registration",
        ),
        table=report(
            f"{RESULTS}/metrics.tsv",
            caption="report/metrics.rst",
            category="Evaluation",
        ),
    log:
        **sf.logs("register", DATASET),
    conda:
        "envs/register.yaml"
    params:
        dataset=DATASET,
        model_name=sf.model_name(config),
        metric=config["register"]["metric"],
        threshold=config["register"]["threshold"],
        alias=config["register"]["alias"],
        challenger_alias=config["register"]["challenger_alias"],
        target=config["target"],
        min_delta=config["register"]["min_delta"],
    script:
        "scripts/register.py"


rule predict:
    input:
        registration=rules.register.output.registration,
        csv=sf.predict_input(config, rules.split.output.test),
    output:
        predictions=f"{RESULTS}/predictions.csv",
    log:
        **sf.logs("predict", DATASET),
    benchmark:
        f"benchmarks/predict/{DATASET}.tsv"
    conda:
        "envs/predict.yaml"
    params:
        dataset=DATASET,
        model_name=sf.model_name(config),
        alias=config["register"]["alias"],
        target=config["target"],
    script:
        "scripts/predict.py"


onstart:
    sf.check_grid_params(config)
