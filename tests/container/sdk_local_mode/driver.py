"""What a new user types, run with the SageMaker Python SDK v2 in local mode against our image.

This runs in the side venv that setup.sh makes (the SDK is not one of the project's dependencies), so it
imports nothing from fleetcast or the tests: the test module starts it, reads the one JSON object it
prints last on stdout, and checks the results with the project's own code.

    driver.py train --image TAG --data DIR --output DIR --root DIR --instances N [--hyperparameters JSON]
    driver.py serve --image TAG --model-data PATH --root DIR --port PORT --customer ID --other ID

Kept offline: telemetry opted out in the session's config, output_path on file://, and the endpoint's
port bound to 127.0.0.1 (the SDK binds 0.0.0.0 and has no setting for it, so the one function that
writes the port mapping is wrapped).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import traceback
from pathlib import Path

import sagemaker
import urllib3
from sagemaker.deserializers import JSONDeserializer
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession
from sagemaker.local import image as local_image
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import JSONSerializer

RESULT_MARKER = "SDK-LOCAL-MODE-RESULT "
ROLE = "arn:aws:iam::111111111111:role/fleetcast-local"  # local mode never calls IAM with it
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def bind_endpoint_to_loopback() -> None:
    create_host = local_image._SageMakerContainer._create_docker_host

    def loopback_only(self, *args, **kwargs):
        host = create_host(self, *args, **kwargs)
        if "ports" in host:
            host["ports"] = [f"127.0.0.1:{mapping}" for mapping in host["ports"]]
        return host

    local_image._SageMakerContainer._create_docker_host = loopback_only


def local_session(root: Path, port: int = 0) -> LocalSession:
    session = LocalSession(sagemaker_config=NO_TELEMETRY)
    local = {"local_code": True, "container_root": str(root)}
    if port:
        local["serving_port"] = port
    session.config = {"local": local}
    return session


def train(args: argparse.Namespace) -> dict:
    session = local_session(args.root)
    estimator = Estimator(
        image_uri=args.image,
        role=ROLE,
        instance_count=args.instances,
        instance_type="local",
        output_path=f"file://{args.output}",
        hyperparameters=json.loads(args.hyperparameters),
        sagemaker_session=session,
    )
    try:
        estimator.fit({"train": f"file://{args.data}"}, wait=True, logs=True)
    except Exception as exc:  # the test checks the reason; the traceback helps whoever reads the log
        traceback.print_exc()
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "model_data": estimator.model_data}


def serve(args: argparse.Namespace) -> dict:
    bind_endpoint_to_loopback()
    session = local_session(args.root, args.port)
    model = Model(image_uri=args.image, model_data=args.model_data, role=ROLE, sagemaker_session=session)
    name = f"fleetcast-local-{args.port}"
    model.deploy(initial_instance_count=1, instance_type="local", endpoint_name=name)
    published = subprocess.run(
        ["docker", "ps", "--filter", f"publish={args.port}", "--format", "{{.Ports}}"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    request = {"period": 3}
    results: dict[str, dict] = {}
    try:
        calls = {
            # The SDK's default: bytes sent as application/octet-stream, the answer returned as bytes.
            "default_serializer": (Predictor(name, sagemaker_session=session), json.dumps(request).encode()),
            "json_serializer": (
                Predictor(name, session, serializer=JSONSerializer(), deserializer=JSONDeserializer()),
                request,
            ),
            # The blog's habit: a JSON string, sent with an explicit JSON content type.
            "string_payload": (
                Predictor(name, session, serializer=JSONSerializer()),
                json.dumps(request),
            ),
        }
        for label, (predictor, payload) in calls.items():
            results[label] = call(predictor.predict, payload)
        target = Predictor(name, session, serializer=JSONSerializer())
        other = f"{args.other}.tar.gz"
        results["mismatched_target_model"] = call(target.predict, request, target_model=other)
        # The SDK's local runtime hides HTTP status codes (an error body comes back as if it were the
        # answer), so the same requests again, straight to the container, for their status.
        results["http_default_content_type"] = post(args.port, request, "application/octet-stream")
        results["http_matching_target_model"] = post(
            args.port, request, "application/json", f"{args.customer}.tar.gz"
        )
        results["http_mismatched_target_model"] = post(args.port, request, "application/json", other)
    finally:
        session.delete_endpoint(name)
    return {"ok": True, "results": results, "published": published}


def post(port: int, body: dict, content_type: str, target_model: str | None = None) -> dict:
    headers = {"Content-Type": content_type}
    if target_model:
        headers["X-Amzn-SageMaker-Target-Model"] = target_model
    response = urllib3.PoolManager().request(
        "POST", f"http://127.0.0.1:{port}/invocations", body=json.dumps(body).encode(), headers=headers
    )
    return {"status": response.status, "answer": response.data.decode("utf-8", errors="replace")}


def call(predict, payload, **kwargs) -> dict:
    """The answer, or the error, of one predict call, in a form the test can read."""
    try:
        answer = predict(payload, **kwargs)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8", errors="replace")
    return {"answer": answer}


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    s = sub.add_parser("serve")
    for p in (t, s):
        p.add_argument("--image", required=True)
        p.add_argument("--root", type=Path, required=True, help="the SDK's container_root")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--output", type=Path, required=True)
    t.add_argument("--instances", type=int, default=1)
    t.add_argument("--hyperparameters", default="{}")
    s.add_argument("--model-data", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--customer", required=True)
    s.add_argument("--other", required=True, help="a customer whose model is not the one served")
    args = parser.parse_args()
    result = {"sdk": sagemaker.__version__, **(train(args) if args.command == "train" else serve(args))}
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
