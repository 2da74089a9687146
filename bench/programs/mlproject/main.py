"""The pipeline's driver, as in MLflow's multistep example: one parent run, mlflow.run per step."""

import argparse
import os

import mlflow

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="download,clean")
    parser.add_argument("--data_url", required=True)
    args = parser.parse_args()
    steps = args.steps.split(",")
    with mlflow.start_run():
        if "download" in steps:
            mlflow.run(
                HERE, "download", env_manager="local", parameters={"data_url": args.data_url}
            )
        if "clean" in steps:
            mlflow.run(HERE, "clean", env_manager="local")


if __name__ == "__main__":
    main()
