"""Step 2 of the MLflow Projects pipeline: drop rows with nulls, log the result."""

import mlflow
import pandas as pd

RAW, CLEAN = "raw.csv", "clean.csv"


def main() -> None:
    with mlflow.start_run():
        pd.read_csv(RAW).dropna().to_csv(CLEAN, index=False)
        mlflow.log_artifact(CLEAN)


if __name__ == "__main__":
    main()
