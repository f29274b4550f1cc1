"""`teardown`: delete the endpoint, its endpoint config and model(s), and optionally its autoscaling target.

S3 data (raw/, customers/, models/, output/) is never touched: models/ is what a new deploy serves.
"""

from __future__ import annotations

import argparse
import re

from launch.common import Aws, add_common_arguments, aws_from_args, endpoint_from_args, note, version_stem
from launch.deploy import SCALABLE_DIMENSION, VARIANT, scaling_resource_id


def _deregister(aws: Aws, endpoint: str, variant: str) -> None:
    request = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": scaling_resource_id(endpoint, variant),
        "ScalableDimension": SCALABLE_DIMENSION,
    }
    if not aws.dry_run:
        found = aws.send(
            "application-autoscaling",
            "DescribeScalableTargets",
            {"ServiceNamespace": "sagemaker", "ResourceIds": [request["ResourceId"]]},
        )
        if not found.get("ScalableTargets"):
            note(f"no autoscaling target on {request['ResourceId']}")
            return
    # Deregistering the target deletes its scaling policies with it.
    aws.send("application-autoscaling", "DeregisterScalableTarget", request)
    if not aws.dry_run:
        note(f"deregistered autoscaling on {request['ResourceId']}")


def launch_versions(aws: Aws, endpoint: str, operation: str, member: str, name_key: str) -> list[str]:
    """Names `deploy`/`update` gave this endpoint's models or configs: `<endpoint>-<YYYYmmdd-HHMMSS>`."""
    stem = version_stem(endpoint)
    own = re.compile(re.escape(stem) + r"-\d{8}-\d{6}")
    names, token = [], None
    while True:
        request = {"NameContains": stem, "MaxResults": 100, **({"NextToken": token} if token else {})}
        page = aws.send("sagemaker", operation, request)
        names += [item[name_key] for item in page[member] if own.fullmatch(item[name_key])]
        token = page.get("NextToken")
        if not token:
            return sorted(names)


def teardown(
    aws: Aws,
    endpoint: str,
    *,
    autoscaling: bool = False,
    autoscaling_only: bool = False,
    all_versions: bool = False,
) -> None:
    """Delete in dependency order: scaling target, endpoint, endpoint config, then the model(s) it used."""
    if aws.dry_run:
        # A dry run reads nothing, so the config and model names (from DescribeEndpoint) are unknown.
        if autoscaling or autoscaling_only:
            _deregister(aws, endpoint, VARIANT)
        if not autoscaling_only:
            aws.send("sagemaker", "DeleteEndpoint", {"EndpointName": endpoint})
            note(
                "dry run: DeleteEndpointConfig and DeleteModel follow for the names DescribeEndpoint reports"
            )
        return
    described = aws.send("sagemaker", "DescribeEndpoint", {"EndpointName": endpoint})
    config_name = described["EndpointConfigName"]
    config = aws.send("sagemaker", "DescribeEndpointConfig", {"EndpointConfigName": config_name})
    variants = config["ProductionVariants"]
    if autoscaling or autoscaling_only:
        for variant in variants:
            _deregister(aws, endpoint, variant["VariantName"])
    if autoscaling_only:
        return
    aws.send("sagemaker", "DeleteEndpoint", {"EndpointName": endpoint})
    note(f"deleted endpoint {endpoint}")
    aws.send("sagemaker", "DeleteEndpointConfig", {"EndpointConfigName": config_name})
    note(f"deleted endpoint config {config_name}")
    models = {variant["ModelName"] for variant in variants}
    if all_versions:  # what earlier `update`s left behind
        for old_config in launch_versions(
            aws, endpoint, "ListEndpointConfigs", "EndpointConfigs", "EndpointConfigName"
        ):
            if old_config != config_name:
                aws.send("sagemaker", "DeleteEndpointConfig", {"EndpointConfigName": old_config})
                note(f"deleted endpoint config {old_config}")
        models |= set(launch_versions(aws, endpoint, "ListModels", "Models", "ModelName"))
    for model in sorted(models):
        aws.send("sagemaker", "DeleteModel", {"ModelName": model})
        note(f"deleted model {model}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teardown", help="delete the endpoint, its endpoint config and model")
    p.add_argument("--endpoint-name", default=None, help="default: fleetcast-<prefix>")
    p.add_argument("--autoscaling", action="store_true", help="also deregister its autoscaling target")
    p.add_argument(
        "--autoscaling-only",
        action="store_true",
        help="only deregister autoscaling (before an update that changes the instance type)",
    )
    p.add_argument(
        "--all-versions",
        action="store_true",
        help="also delete the older models and endpoint configs that `update` left for this endpoint",
    )
    add_common_arguments(p)

    def run(args: argparse.Namespace) -> int:
        endpoint = endpoint_from_args(args)
        teardown(
            aws_from_args(args),
            endpoint,
            autoscaling=args.autoscaling,
            autoscaling_only=args.autoscaling_only,
            all_versions=args.all_versions,
        )
        return 0

    p.set_defaults(run=run)
