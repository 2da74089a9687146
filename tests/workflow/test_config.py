"""The config schema: every key documented, with a valid default; command-line types."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from snakeflow.workflow import coerce_cli_values

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "config.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def keys(schema: dict, prefix: str = ""):
    """(dotted name, sub-schema) of every property, nested ones and those of map entries
    (``datasets.<name>.url``) included; a required key has no default, a ``$ref`` is
    documented where it points."""
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        if "$ref" not in sub:
            yield prefix + name, sub if name not in required else sub | {"default": None}
        yield from keys(sub, f"{prefix}{name}.")
    entry = schema.get("additionalProperties")
    if isinstance(entry, dict):
        yield from keys(entry, f"{prefix}<name>.")


@pytest.mark.parametrize(
    "name,sub", list(keys(SCHEMA)), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_key_has_a_description_and_a_default(name, sub):
    assert sub.get("description", "").strip(), f"{name} has no description"
    assert "default" in sub, f"{name} has no default"


def test_config_yaml_and_every_default_are_valid():
    jsonschema.Draft202012Validator(SCHEMA).validate(CONFIG)
    for name, sub in keys(SCHEMA):
        if name.endswith(("datasets.<name>.url", "datasets.<name>.target", "estimator")):
            continue  # required: no default
        sub = {**sub, "$defs": SCHEMA.get("$defs", {}), "properties": SCHEMA["properties"]}
        jsonschema.Draft202012Validator(sub).validate(sub["default"])


def test_nested_command_line_values_get_their_schema_types():
    # what Snakemake's --config download="{attempts: 2, backoff: 0.5}" hands over
    config = {"download": {"attempts": "2", "backoff": "0.5"}, "train": {"threads": "2"}}
    config["clean"] = {"drop_columns": ["1"]}  # strings in the schema: stay strings
    coerce_cli_values(config, SCHEMA_PATH)
    assert config == {
        "download": {"attempts": 2, "backoff": 0.5},
        "train": {"threads": 2},
        "clean": {"drop_columns": ["1"]},
    }


def test_values_that_do_not_parse_are_left_for_the_schema_to_reject():
    config = {"download": {"attempts": "many"}}
    coerce_cli_values(config, SCHEMA_PATH)
    assert config == {"download": {"attempts": "many"}}
    with pytest.raises(jsonschema.ValidationError, match="many"):
        jsonschema.Draft202012Validator(SCHEMA).validate({**CONFIG, **config})


VALIDATE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from snakeflow import workflow as sf
config = json.loads(sys.argv[3])
try:
    sf.validate(config, sys.argv[2])
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
else:
    def types(value):
        if isinstance(value, dict):
            return {type(value).__name__}.union(*map(types, value.values()))
        return set().union(*map(types, value)) if isinstance(value, list) else set()
    print(json.dumps({"config": config, "jsonschema": "jsonschema" in sys.modules,
                      "dicts": sorted(types(config))}))
"""


def test_a_config_checked_before_is_not_checked_again_anything_else_is(tmp_path):
    """The schema check's outcome is kept (.snakemake/snakeflow/validated.json): the same
    config again gets the very same filled-in config without importing jsonschema; a changed
    config, valid or not, is checked anew."""
    import subprocess
    import sys

    def validate(config):
        argv = [sys.executable, "-c", VALIDATE, str(ROOT / "scripts"), str(SCHEMA_PATH)]
        out = subprocess.run(
            [*argv, json.dumps(config)], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout)

    first = validate(CONFIG)
    assert first["jsonschema"] and first["config"]["split"]["test_size"] == 0.25
    assert first["dicts"] == ["dict"]  # Snakemake's OrderedDict defaults made plain, as cached
    assert (tmp_path / ".snakemake/snakeflow/validated.json").is_file()
    again = validate(CONFIG)
    assert again == first | {"jsonschema": False}
    assert list(again["config"]) == list(first["config"])  # the same order of keys

    changed = CONFIG | {"split": {"test_size": 0.5}}
    assert validate(changed)["config"]["split"] == {"test_size": 0.5, "seed": 42}
    assert validate(changed)["jsonschema"] is False
    bad = CONFIG | {"split": {"test_size": "half"}}
    assert "half" in validate(bad)["error"]
    assert validate(CONFIG)["jsonschema"]  # the last that passed was `changed`

    # a credential in a URL is never written to disk: such a config is checked every time
    kept = (tmp_path / ".snakemake/snakeflow/validated.json").read_text()
    secret = CONFIG | {
        "datasets": {"t": {"url": "https://u:S3CRET@example.org/t.csv", "target": "y"}}
    }
    assert validate(secret)["jsonschema"] and validate(secret)["jsonschema"]
    assert (tmp_path / ".snakemake/snakeflow/validated.json").read_text() == kept
