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
    endpoint_from_args,
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


def model_request(name: str, image: str, role: str, models_url: str, environment: dict[str, str]) -> dict:
    container: dict[str, Any] = {"Image": image, "Mode": "MultiModel", "ModelDataUrl": models_url}
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
        ("CreateModel", model_request(version, image, role, layout.models, environment)),
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
    role: str | None = None,
    models_url: str | None = None,
    instance_type: str | None = None,
    instance_count: int | None = None,
    environment: dict[str, str] | None = None,
    wait: bool = False,
) -> str:
    """New model + endpoint config for `image`, then UpdateEndpoint; returns the new version's name.

    Everything not given is kept from the running endpoint: the role, the models prefix and the container
    environment of its model, its variant name and instance type, and its current instance count (which
    autoscaling may have changed). A dry run reads nothing, so it needs role and models prefix given and
    shows the deploy defaults for the rest.
    """
    variant = VARIANT
    if aws.dry_run:
        if not (role and models_url):
            raise LaunchError("a dry run reads nothing: pass --role, --bucket and --prefix to update")
        instance_type = instance_type or DEFAULT_INSTANCE_TYPE
        instance_count = instance_count or 1
        note("dry run: the running endpoint is not read; instance type/count are the flags or defaults")
    else:
        current = aws.send("sagemaker", "DescribeEndpoint", {"EndpointName": endpoint})
        config = aws.send(
            "sagemaker", "DescribeEndpointConfig", {"EndpointConfigName": current["EndpointConfigName"]}
        )
        old_variant = config["ProductionVariants"][0]
        old_model = aws.send("sagemaker", "DescribeModel", {"ModelName": old_variant["ModelName"]})
        old_container = old_model["PrimaryContainer"]
        role = role or old_model["ExecutionRoleArn"]
        models_url = models_url or old_container["ModelDataUrl"]
        environment = environment or old_container.get("Environment") or {}
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
    requests = [
        ("CreateModel", model_request(version, image, role, models_url, environment or {})),
        (
            "CreateEndpointConfig",
            endpoint_config_request(version, version, instance_type, instance_count, variant),
        ),
        ("UpdateEndpoint", {"EndpointName": endpoint, "EndpointConfigName": version}),
    ]
    for operation, request in requests:
        validate_request("sagemaker", operation, request)
    for operation, request in requests:
        aws.send("sagemaker", operation, request)
    if not aws.dry_run:
        note(f"updating endpoint {endpoint} to {version} ({image}); the old version serves until it is ready")
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
        help="container environment, e.g. --env FLEETCAST_SERVER=lean (repeatable)"
        + ("" if defaults else "; default: the running model's"),
    )
    p.add_argument("--wait", action="store_true", help="wait until the endpoint is InService")
    # update keeps the running model's role and models prefix unless told otherwise.
    add_common_arguments(p, needs=("image", "role", "bucket", "prefix") if defaults else ("image",))


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
        endpoint = endpoint_from_args(args)
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
        aws = aws_from_args(args)
        update(
            aws,
            endpoint=endpoint_from_args(args),
            image=args.image,
            role=args.role,
            models_url=layout_from_args(args).models if args.bucket else None,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            environment=parse_key_values(args.env, "--env"),
            wait=args.wait,
        )
        return 0

    u.set_defaults(run=run_update)
