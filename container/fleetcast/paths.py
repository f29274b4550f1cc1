"""The SageMaker container path contract: the only place where `/opt/ml` paths are spelled.

Like the SageMaker toolkits, `SAGEMAKER_BASE_DIR` relocates the whole tree, which is how tests and the
local emulation run the image's code against a folder shaped like `/opt/ml`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_DIR = "/opt/ml"
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
# CheckpointConfig.LocalPath's default, as the API documents it.
DEFAULT_CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# Set by SageMaker in every training container (each host of a job sees the same name).
TRAINING_JOB_NAME_ENV = "TRAINING_JOB_NAME"
# The input channel that carries the previous fleet manifest (model/manifest.py) into `train`.
MANIFEST_CHANNEL = "manifest"
# How SageMaker deals S3 objects out to a job's instances: a training channel's S3DistributionType, a
# ProcessingInput's S3DataDistributionType.
FULLY_REPLICATED, SHARDED_BY_S3_KEY = "FullyReplicated", "ShardedByS3Key"


@dataclass(frozen=True)
class SageMakerPaths:
    base: Path

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> SageMakerPaths:
        environ = os.environ if environ is None else environ
        return cls(Path(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))

    # Training job
    @property
    def input_config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / "hyperparameters.json"

    @property
    def resource_config_file(self) -> Path:
        return self.input_config_dir / "resourceconfig.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config_dir / "inputdataconfig.json"

    @property
    def checkpoint_config_file(self) -> Path:
        # Present only when the job has a CheckpointConfig; see training/config.py (read_checkpoint_config).
        return self.input_config_dir / "checkpointconfig.json"

    @property
    def input_data_dir(self) -> Path:
        return self.base / "input" / "data"

    def channel_dir(self, channel: str) -> Path:
        return self.input_data_dir / channel

    @property
    def manifest_channel_dir(self) -> Path:
        return self.channel_dir(MANIFEST_CHANNEL)

    @property
    def checkpoints_dir(self) -> Path:
        # Where `train` writes archives: CheckpointConfig.LocalPath's default, relocated like the rest.
        return self.in_container(DEFAULT_CHECKPOINT_LOCAL_PATH)

    def in_container(self, path: str) -> Path:
        """A path the platform spells under /opt/ml (e.g. CheckpointConfig.LocalPath), under this base."""
        inside = Path(path)
        try:
            return self.base / inside.relative_to(DEFAULT_BASE_DIR)
        except ValueError:
            return inside

    @property
    def archive_staging_dir(self) -> Path:
        # Archives are written here, then renamed into the checkpoints. Not inside the checkpoints
        # (uploaded continuously, deletes mirrored), model/ or output/data/ (uploaded at the end), or
        # output/intermediate/ (uploaded continuously): a sibling that nothing syncs. A rename needs the
        # same mount; `train` checks that at job start and says so loudly when it does not hold.
        return self.base / "checkpoints-staging"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def processing_message_file(self) -> Path:
        # A Processing job's ExitMessage is read from here.
        return self.output_dir / "message"

    # Processing job. SageMaker describes the job to its container in two files under /opt/ml/config (not
    # input/config as for training): resourceconfig.json ({"current_host": "algo-2", "hosts": [...]}) and
    # processingjobconfig.json (the CreateProcessingJob request: ProcessingInputs with their LocalPath and
    # S3DataDistributionType, ...). Both are in AWS's "Build Your Own Processing Container" guide.
    @property
    def processing_config_dir(self) -> Path:
        return self.base / "config"

    @property
    def processing_resource_config_file(self) -> Path:
        return self.processing_config_dir / "resourceconfig.json"

    @property
    def processing_job_config_file(self) -> Path:
        return self.processing_config_dir / "processingjobconfig.json"

    # The defaults our ProcessingInputs/Outputs use: raw CSVs in, the training channel and split's own
    # reports out (two outputs, so the reports never land among the customers' files).
    @property
    def processing_input_dir(self) -> Path:
        return self.base / "processing" / "input"

    @property
    def processing_output_dir(self) -> Path:
        return self.base / "processing" / "output"

    @property
    def processing_reports_dir(self) -> Path:
        return self.base / "processing" / "reports"

    # The batch forecast job (`fleetcast forecast`): its ProcessingInput and ProcessingOutputs
    @property
    def forecast_models_dir(self) -> Path:
        return self.processing_input_dir / "models"

    @property
    def forecast_regressors_dir(self) -> Path:
        return self.processing_input_dir / "regressors"

    @property
    def forecast_output_dir(self) -> Path:
        return self.processing_output_dir / "forecasts"

    @property
    def forecast_reports_dir(self) -> Path:
        # Beside the dataset, never inside it: a reader of the forecasts prefix sees forecasts only.
        return self.processing_output_dir / "forecast-reports"

    # Multi-model endpoint: the platform extracts each model to <models>/<name>/model
    @property
    def models_dir(self) -> Path:
        return self.base / "models"


def sagemaker_paths() -> SageMakerPaths:
    """The paths of the current process, honouring `SAGEMAKER_BASE_DIR`."""
    return SageMakerPaths.from_env()
