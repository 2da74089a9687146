"""Step 1 of the MLflow Projects pipeline: fetch the CSV, log it as an artifact."""

import sys

import mlflow
import requests

RAW = "raw.csv"


def main(url: str) -> None:
    with mlflow.start_run():
        response = requests.get(url, timeout=60)
        response.raise_for_status()
        with open(RAW, "wb") as fh:
            fh.write(response.content)
        mlflow.log_artifact(RAW)


if __name__ == "__main__":
    main(sys.argv[1])
