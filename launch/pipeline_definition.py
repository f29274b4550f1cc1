"""A SageMaker Pipelines definition, and the checks it must pass before it is sent.

The definition is JSON the service reads (`CreatePipeline`'s `PipelineDefinition`):

    {"Version": "2020-12-01", "Metadata": {}, "Parameters": [{"Name", "Type", "DefaultValue"}],
     "Steps": [{"Name", "Type", "Arguments": <the Create*Job request, without its job name>}]}

where a value may be an expression: `{"Get": "Parameters.X"}`, `{"Get": "Steps.S.<property path>"}`
(a step's properties are its Describe*Job response), `{"Get": "Execution.PipelineExecutionId"}`, or
`{"Std:Join": {"On": "/", "Values": [...]}}`.

The public JSON schema for this document lags the service (it rejects `Std:Join` and
`PipelineExperimentConfig`, which the service accepts), so it is not used. Instead:

- `definition_problems` checks the documented facts: the version, parameter names, types and defaults,
  unique step names of the kinds we use, every `Get` naming a declared parameter, an earlier step (no
  cycle) or an execution variable, and every step property path existing in botocore's model of that
  step's Describe*Job response and ending on a string;
- `arguments_problems` resolves each step's expressions to values of their type (parameters to their
  defaults, step properties and execution variables to placeholders) and validates the result against
  botocore's model of the Create*Job request, as every other launch request is validated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from launch.common import request_problems, service_model

VERSION = "2020-12-01"
PARAMETER_TYPES = {"String": str, "Integer": int, "Float": float, "Boolean": bool}
NAME_PATTERN = re.compile(r"[A-Za-z0-9\-_]{1,64}")
EXECUTION_VARIABLES = frozenset(
    {
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "PipelineName",
        "PipelineArn",
        "CurrentDateTime",
        "StartDateTime",
    }
)
PLACEHOLDER_URI = "s3://placeholder-bucket/placeholder-key"
PLACEHOLDER_TEXT = "placeholder"


@dataclass(frozen=True)
class StepKind:
    create: str  # the request a step's Arguments are
    describe: str  # the response its properties are
    name_member: str  # set by the service, never in Arguments


STEP_KINDS = {
    "Processing": StepKind("CreateProcessingJob", "DescribeProcessingJob", "ProcessingJobName"),
    "Training": StepKind("CreateTrainingJob", "DescribeTrainingJob", "TrainingJobName"),
}


def get(reference: str) -> dict[str, str]:
    return {"Get": reference}


def join(*values: Any, on: str = "/") -> dict[str, Any]:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def parameter(name: str, kind: str, default: Any) -> dict[str, Any]:
    return {"Name": name, "Type": kind, "DefaultValue": default}


def _expressions(value: Any) -> Iterator[Any]:
    """Every expression (Get or Std:Join) anywhere in `value`, outermost first."""
    if isinstance(value, dict):
        if set(value) == {"Get"} or set(value) == {"Std:Join"}:
            yield value
        for item in value.values():
            yield from _expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expressions(item)


_PATH_TOKEN = re.compile(r"([A-Za-z0-9]+)((?:\[(?:\d+|'[^']*')\])*)")


def property_path_problem(step_kind: StepKind, path: str) -> str | None:
    """None when `path` (after `Steps.S.`) names a string in the step's Describe*Job response."""
    shape = service_model("sagemaker").operation_model(step_kind.describe).output_shape
    for token in path.split("."):
        match = _PATH_TOKEN.fullmatch(token)
        if not match:
            return f"{path!r}: cannot read {token!r}"
        member, indexes = match.groups()
        if shape.type_name != "structure" or member not in shape.members:
            return f"{path!r}: {member!r} is not a property of {shape.name}"
        shape = shape.members[member]
        for _ in re.findall(r"\[[^\]]*\]", indexes):
            if shape.type_name != "list":
                return f"{path!r}: {member} is not a list"
            shape = shape.member
    if shape.type_name != "string":
        return f"{path!r} is a {shape.type_name}, not a string"
    return None


def definition_problems(definition: dict[str, Any]) -> list[str]:
    """What is wrong with the document's structure and references (empty when nothing is)."""
    known = {"Version", "Metadata", "Parameters", "Steps", "PipelineExperimentConfig"}
    problems = [f"unknown top-level member {key!r}" for key in definition if key not in known]
    if definition.get("Version") != VERSION:
        problems.append(f"Version must be {VERSION!r}, got {definition.get('Version')!r}")
    parameters: dict[str, dict[str, Any]] = {}
    for index, declared in enumerate(definition.get("Parameters", [])):
        problems += _parameter_problems(f"Parameters[{index}] {declared.get('Name')!r}", declared, parameters)
        parameters[str(declared.get("Name"))] = declared
    steps = definition.get("Steps")
    if not isinstance(steps, list) or not steps:
        return [*problems, "Steps must be a non-empty list"]
    earlier: dict[str, StepKind] = {}
    for index, step in enumerate(steps):
        problems += _step_problems(f"Steps[{index}] {step.get('Name')!r}", step, parameters, earlier)
        if step.get("Type") in STEP_KINDS:
            earlier[str(step.get("Name"))] = STEP_KINDS[step["Type"]]
    return problems


def _name_problems(where: str, name: Any, taken: dict[str, Any], reused: str) -> list[str]:
    """A parameter's or a step's name: well formed, and not one an earlier parameter or step took."""
    problems = []
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.append(f"{where}: a name is 1-64 of A-Z a-z 0-9 - _")
    if name in taken:
        problems.append(f"{where}: {reused}")
    return problems


def _parameter_problems(where: str, declared: dict[str, Any], seen: dict[str, Any]) -> list[str]:
    name, kind = declared.get("Name"), declared.get("Type")
    problems = _name_problems(where, name, seen, "declared twice")
    if kind not in PARAMETER_TYPES:
        problems.append(f"{where}: Type {kind!r} is not one of {', '.join(PARAMETER_TYPES)}")
    elif "DefaultValue" in declared:
        default, expected = declared["DefaultValue"], PARAMETER_TYPES[kind]
        if isinstance(default, bool) != (expected is bool) or not isinstance(default, expected):
            problems.append(f"{where}: DefaultValue {default!r} is not a {kind}")
    return problems


def _step_problems(
    where: str, step: dict[str, Any], parameters: dict[str, Any], earlier: dict[str, StepKind]
) -> list[str]:
    name, kind = step.get("Name"), step.get("Type")
    problems = _name_problems(where, name, earlier, "the name is used twice")
    if kind not in STEP_KINDS:
        return [*problems, f"{where}: Type {kind!r} is not one of {', '.join(STEP_KINDS)}"]
    arguments = step.get("Arguments")
    if not isinstance(arguments, dict):
        return [*problems, f"{where}: Arguments must be an object"]
    if STEP_KINDS[kind].name_member in arguments:
        problems.append(
            f"{where}: Arguments must not set {STEP_KINDS[kind].name_member} (the service names jobs)"
        )
    for dependency in step.get("DependsOn", []):
        if dependency not in earlier:
            problems.append(f"{where}: DependsOn {dependency!r} is not an earlier step")
    for expression in _expressions(arguments):
        problems += [f"{where}: {p}" for p in _expression_problems(expression, parameters, earlier)]
    return problems


def _expression_problems(
    expression: dict[str, Any], parameters: dict[str, Any], earlier: dict[str, StepKind]
) -> list[str]:
    if "Std:Join" in expression:
        body = expression["Std:Join"]
        ok = (
            isinstance(body, dict)
            and isinstance(body.get("On"), str)
            and isinstance(body.get("Values"), list)
        )
        return [] if ok else [f"Std:Join needs {{'On': str, 'Values': list}}, got {body!r}"]
    reference = expression["Get"]
    if not isinstance(reference, str):
        return [f"Get needs a string, got {reference!r}"]
    problem = _reference_problem(reference, parameters, earlier)
    return [f"Get {reference!r}: {problem}"] if problem else []


def _reference_problem(
    reference: str, parameters: dict[str, Any], earlier: dict[str, StepKind]
) -> str | None:
    scope, _, rest = reference.partition(".")
    if scope == "Parameters":
        return None if rest in parameters else f"no parameter {rest!r}"
    if scope == "Execution":
        return None if rest in EXECUTION_VARIABLES else f"no execution variable {rest!r}"
    if scope != "Steps":
        return "the scope must be Parameters, Steps or Execution"
    step, _, path = rest.partition(".")
    if step not in earlier:
        return f"{step!r} is not an earlier step (a reference must not loop)"
    return property_path_problem(earlier[step], path)


def resolved(value: Any, defaults: dict[str, Any]) -> Any:
    """`value` with every expression replaced by a value of its type, for validating a request."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            scope, _, rest = str(value["Get"]).partition(".")
            if scope == "Parameters":
                return defaults[rest]
            return PLACEHOLDER_URI if scope == "Steps" else PLACEHOLDER_TEXT
        if set(value) == {"Std:Join"}:
            body = value["Std:Join"]
            return body["On"].join(str(resolved(item, defaults)) for item in body["Values"])
        return {key: resolved(item, defaults) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item, defaults) for item in value]
    return value


def arguments_problems(definition: dict[str, Any]) -> list[str]:
    """Each step's Arguments, expressions resolved, checked against botocore's Create*Job request model."""
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    problems = []
    for step in definition.get("Steps", []):
        kind = STEP_KINDS.get(step.get("Type"))
        if kind is None or not isinstance(step.get("Arguments"), dict):
            continue  # definition_problems reports it
        request = {kind.name_member: "placeholder-job-name", **resolved(step["Arguments"], defaults)}
        shape = service_model("sagemaker").operation_model(kind.create).input_shape
        problems += [
            f"step {step.get('Name')!r} ({kind.create}): {p}" for p in request_problems(shape, request, "")
        ]
    return problems
