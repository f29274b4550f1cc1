"""`deploy` and `update`: the multi-model endpoint that serves every <customer>.tar.gz under models/.

deploy: model (PrimaryContainer Mode=MultiModel, ModelDataUrl = the models/ prefix) -> endpoint config
-> endpoint, and optionally Application Auto Scaling target tracking on invocations per instance.
update: a new model and endpoint config for a new image, then UpdateEndpoint; SageMaker keeps the old
fleet serving until the new one is healthy, so there is no downtime.
"""

from __future__ import annotations

import argparse
from typing import Any

from launch.common import (
    Aws,
    LaunchError,
    Layout,
    add_common_arguments,
    aws_from_args,
    base_name,
    layout_from_args,
    note,
    parse_key_values,
    unique_name,
    validate_request,
)

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def scaling_resource_id(endpoint: str, variant: str = VARIANT) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def model_request(name: str, image: str, role: str, layout: Layout, environment: dict[str, str]) -> dict:
    container: dict[str, Any] = {"Image": image, "Mode": "MultiModel", "ModelDataUrl": layout.models}
    if environment:
        container["Environment"] = environment
    return {"ModelName": name, "ExecutionRoleArn": role, "PrimaryContainer": container}


def endpoint_config_request(
    name: str, model_name: str, instance_type: str, instance_count: int, variant: str = VARIANT
) -> dict:
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model_name,
                "InstanceType": instance_type,
                "InitialInstanceCount": instance_count,
                "InitialVariantWeight": 1.0,
            }
        ],
    }


def scaling_requests(
    endpoint: str,
    min_instances: int,
    max_instances: int,
    invocations_per_instance: float,
    scale_in_cooldown: int,
    scale_out_cooldown: int,
    variant: str = VARIANT,
) -> tuple[dict, dict]:
    """RegisterScalableTarget + PutScalingPolicy (target tracking on invocations per instance-minute)."""
    if not 1 <= min_instances <= max_instances:
        raise LaunchError(f"need 1 <= --min-instances ({min_instances}) <= --max-instances ({max_instances})")
    resource = scaling_resource_id(endpoint, variant)
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": min_instances,
        "MaxCapacity": max_instances,
    }
    policy = {
        "PolicyName": f"{endpoint}-invocations-per-instance",
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": SCALABLE_DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(invocations_per_instance),
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": scale_in_cooldown,
            "ScaleOutCooldown": scale_out_cooldown,
        },
    }
    return target, policy


def _refuse_existing(aws: Aws, endpoint: str) -> None:
    """CreateEndpoint on an existing name fails only after the model and config exist: check first."""
    from botocore.exceptions import ClientError

    try:
        status = aws.send("sagemaker", "DescribeEndpoint", {"EndpointName": endpoint})["EndpointStatus"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationException":
            return  # "Could not find endpoint": the name is free
        raise
    raise LaunchError(f"endpoint {endpoint} already exists ({status}): use `update` for a new image")


def _wait_in_service(aws: Aws, endpoint: str) -> None:
    from launch.status import KINDS, wait_for

    if wait_for(aws.client("sagemaker"), KINDS["endpoint"], endpoint) != 0:
        raise LaunchError(f"endpoint {endpoint} did not reach InService (see above)")


def deploy(
    aws: Aws,
    *,
    endpoint: str,
    image: str,
    role: str,
    layout: Layout,
    instance_type: str,
    instance_count: int,
    environment: dict[str, str],
    scaling: tuple[dict, dict] | None,
    wait: bool,
) -> str:
    """Create model, endpoint config and endpoint (names share a timestamp); returns the endpoint name."""
    version = unique_name(endpoint)
    creates = [
        ("CreateModel", model_request(version, image, role, layout, environment)),
        ("CreateEndpointConfig", endpoint_config_request(version, version, instance_type, instance_count)),
        ("CreateEndpoint", {"EndpointName": endpoint, "EndpointConfigName": version}),
    ]
    # Everything is checked before anything is created, so a bad flag leaves nothing half-made behind.
    for operation, request in creates:
        validate_request("sagemaker", operation, request)
    for operation, request in zip(
        ("RegisterScalableTarget", "PutScalingPolicy"), scaling or (), strict=False
    ):
        validate_request("application-autoscaling", operation, request)
    if not aws.dry_run:
        _refuse_existing(aws, endpoint)
    for operation, request in creates:
        aws.send("sagemaker", operation, request)
    if aws.dry_run:
        if scaling:
            # On AWS the target can only be registered once the endpoint is InService.
            for operation, request in zip(
                ("RegisterScalableTarget", "PutScalingPolicy"), scaling, strict=True
            ):
                aws.send("application-autoscaling", operation, request)
        return endpoint
    note(f"creating endpoint {endpoint} (model and endpoint config {version}) serving {layout.models}")
    if wait or scaling:
        _wait_in_service(aws, endpoint)
    if scaling:
        target, policy = scaling
        aws.send("application-autoscaling", "RegisterScalableTarget", target)
        aws.send("application-autoscaling", "PutScalingPolicy", policy)
        note(f"autoscaling {target['MinCapacity']}-{target['MaxCapacity']} instances on {endpoint}")
    return endpoint


def update(
    aws: Aws,
    *,
    endpoint: str,
    image: str,
    role: str,
    layout: Layout,
    instance_type: str | None,
    instance_count: int | None,
    environment: dict[str, str],
    wait: bool,
) -> str:
    """New model + endpoint config for `image`, then UpdateEndpoint; returns the new config name.

    Variant name, instance type and the current instance count (which autoscaling may have changed) are
    taken from the running endpoint unless given. In a dry run nothing is read, so they must be given or
    fall back to the deploy defaults.
    """
    variant = VARIANT
    validate_request("sagemaker", "CreateModel", model_request("check", image, role, layout, environment))
    if aws.dry_run:
        instance_type = instance_type or DEFAULT_INSTANCE_TYPE
        instance_count = instance_count or 1
        note("dry run: the current variant is not read; instance type/count shown are the flags or defaults")
    else:
        current = aws.send("sagemaker", "DescribeEndpoint", {"EndpointName": endpoint})
        config = aws.send(
            "sagemaker", "DescribeEndpointConfig", {"EndpointConfigName": current["EndpointConfigName"]}
        )
        old_variant = config["ProductionVariants"][0]
        live = (current.get("ProductionVariants") or [{}])[0]
        variant = old_variant["VariantName"]
        if (
            instance_type
            and instance_type != old_variant["InstanceType"]
            and _has_scaling(aws, endpoint, variant)
        ):
            raise LaunchError(
                "changing the instance type of an autoscaled variant fails on AWS: run "
                f"`teardown --autoscaling-only` for {endpoint} first, then deploy autoscaling again"
            )
        instance_type = instance_type or old_variant["InstanceType"]
        instance_count = (
            instance_count or live.get("CurrentInstanceCount") or old_variant["InitialInstanceCount"]
        )
    version = unique_name(endpoint)
    aws.send("sagemaker", "CreateModel", model_request(version, image, role, layout, environment))
    aws.send(
        "sagemaker",
        "CreateEndpointConfig",
        endpoint_config_request(version, version, instance_type, instance_count, variant),
    )
    aws.send("sagemaker", "UpdateEndpoint", {"EndpointName": endpoint, "EndpointConfigName": version})
    if not aws.dry_run:
        note(f"updating endpoint {endpoint} to {version} ({image}); the old config keeps serving until then")
        if wait:
            _wait_in_service(aws, endpoint)
    return version


def _has_scaling(aws: Aws, endpoint: str, variant: str) -> bool:
    found = aws.send(
        "application-autoscaling",
        "DescribeScalableTargets",
        {"ServiceNamespace": "sagemaker", "ResourceIds": [scaling_resource_id(endpoint, variant)]},
    )
    return bool(found.get("ScalableTargets"))


DEFAULT_INSTANCE_TYPE = "ml.m5.large"


def _variant_arguments(p: argparse.ArgumentParser, defaults: bool) -> None:
    p.add_argument("--endpoint-name", default=None, help="default: fleetcast-<prefix>")
    p.add_argument(
        "--instance-type",
        default=DEFAULT_INSTANCE_TYPE if defaults else None,
        help="instance type" + ("" if defaults else " (default: the endpoint's current one)"),
    )
    p.add_argument(
        "--instance-count",
        type=int,
        default=1 if defaults else None,
        help="instances" + ("" if defaults else " (default: the endpoint's current count)"),
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="container environment, e.g. --env FLEETCAST_SERVER=lean (repeatable)",
    )
    p.add_argument("--wait", action="store_true", help="wait until the endpoint is InService")
    add_common_arguments(p, needs=("image", "role", "bucket", "prefix"))


def endpoint_name(args: argparse.Namespace) -> str:
    return args.endpoint_name or base_name(args.prefix or "")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="multi-model endpoint over models/ (optionally autoscaled)")
    _variant_arguments(p, defaults=True)
    scaling = p.add_argument_group("autoscaling (set --max-instances to enable)")
    scaling.add_argument("--min-instances", type=int, default=None, help="default: --instance-count")
    scaling.add_argument("--max-instances", type=int, default=None)
    scaling.add_argument(
        "--invocations-per-instance",
        type=float,
        default=200.0,
        help="target invocations per instance per minute",
    )
    scaling.add_argument("--scale-in-cooldown", type=int, default=300, help="seconds")
    scaling.add_argument("--scale-out-cooldown", type=int, default=60, help="seconds")

    def run_deploy(args: argparse.Namespace) -> int:
        aws, layout = aws_from_args(args), layout_from_args(args)
        endpoint = endpoint_name(args)
        policy = None
        if args.max_instances is not None:
            policy = scaling_requests(
                endpoint,
                args.min_instances if args.min_instances is not None else args.instance_count,
                args.max_instances,
                args.invocations_per_instance,
                args.scale_in_cooldown,
                args.scale_out_cooldown,
            )
        elif args.min_instances is not None:
            raise LaunchError("--min-instances needs --max-instances (that is what turns autoscaling on)")
        deploy(
            aws,
            endpoint=endpoint,
            image=args.image,
            role=args.role,
            layout=layout,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            environment=parse_key_values(args.env, "--env"),
            scaling=policy,
            wait=args.wait,
        )
        return 0

    p.set_defaults(run=run_deploy)

    u = sub.add_parser("update", help="move an endpoint to a new image without downtime")
    _variant_arguments(u, defaults=False)

    def run_update(args: argparse.Namespace) -> int:
        aws, layout = aws_from_args(args), layout_from_args(args)
        update(
            aws,
            endpoint=endpoint_name(args),
            image=args.image,
            role=args.role,
            layout=layout,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            environment=parse_key_values(args.env, "--env"),
            wait=args.wait,
        )
        return 0

    u.set_defaults(run=run_update)
