"""launch/README.md against what launch really sends.

The execution role's policy covers every S3 key the jobs write: a user copies that policy, and an output it
does not cover fails only on AWS, at the end of a job. So the write locations are taken from the requests
`launch` sends (its dry runs), not from a list here. The metrics it lists are the job's.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "launch" / "README.md"


def execution_role_policy() -> dict[str, Any]:
    text = README.read_text()
    section = text[text.index("### The execution role") : text.index("### The caller")]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    return json.loads(blocks[-1])  # the first block is the trust policy, the second the permissions


def allowed_resources(policy: dict[str, Any], bucket: str, prefix: str, action: str) -> list[str]:
    patterns = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        if action in ([actions] if isinstance(actions, str) else actions):
            resources = statement["Resource"]
            for resource in [resources] if isinstance(resources, str) else resources:
                bucket_path = resource.removeprefix("arn:aws:s3:::")
                patterns.append(bucket_path.replace("B/P/", f"{bucket}/{prefix}/", 1))
    return patterns


def written_uris(document: dict[str, Any]) -> list[str]:
    request = document["request"]
    uris = [o["S3Output"]["S3Uri"] for o in request.get("ProcessingOutputConfig", {}).get("Outputs", [])]
    if "CheckpointConfig" in request:
        uris.append(request["CheckpointConfig"]["S3Uri"])
    if "OutputDataConfig" in request:
        uris.append(request["OutputDataConfig"]["S3OutputPath"])
    return uris


def read_uris(document: dict[str, Any]) -> list[str]:
    request = document["request"]
    uris = [i["S3Input"]["S3Uri"] for i in request.get("ProcessingInputs", [])]
    return uris + [c["DataSource"]["S3DataSource"]["S3Uri"] for c in request.get("InputDataConfig", [])]


@pytest.mark.parametrize(
    ("action", "uris_of", "as_key", "least"),
    [
        # split: 2 outputs; train: checkpoints and output; forecast: 2 outputs
        ("s3:PutObject", written_uris, lambda uri: uri.rstrip("/") + "/some-object", 6),
        # split: raw; train: customers and the fleet manifest; forecast: its manifest file, regressor values
        ("s3:GetObject", read_uris, lambda uri: uri + "some-object" if uri.endswith("/") else uri, 5),
    ],
    ids=["writes", "reads"],
)
def test_the_documented_role_covers_what_every_job_writes_and_reads(
    cli, names, json_documents, action: str, uris_of, as_key, least: int
) -> None:
    patterns = allowed_resources(execution_role_policy(), names.bucket, names.prefix, action)
    assert patterns, f"no {action} statement found in the documented policy"
    checked = []
    regressors = ["--regressors-uri", f"s3://{names.bucket}/{names.prefix}/regressors/weather.csv.gz"]
    for command, *extra in (("process",), ("train",), ("forecast",), ("forecast", *regressors)):
        code, out, err = cli(command, *names.common, *extra, "--dry-run")
        assert code == 0, err
        for document in json_documents(out):
            for uri in uris_of(document):
                allowed = any(fnmatch.fnmatchcase(as_key(uri.removeprefix("s3://")), p) for p in patterns)
                assert allowed, (
                    f"{command} needs {action} on {uri}, which the policy does not allow: {patterns}"
                )
                checked.append(uri)
    assert len(checked) >= least


def test_every_training_metric_is_listed() -> None:
    from fleetcast.training.log_metrics import METRIC_DEFINITIONS

    text = README.read_text()
    missing = [m["Name"] for m in METRIC_DEFINITIONS if f"`{m['Name']}`" not in text]
    assert not missing, f"launch/README.md does not list {missing}"
