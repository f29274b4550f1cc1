"""fleetcast: train and serve thousands of per-customer Prophet forecasters on Amazon SageMaker.

The version lives in pyproject.toml only; `fleetcast --version` reads it from the installed metadata.
"""
