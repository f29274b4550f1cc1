"""fleetcast: train and serve thousands of per-customer Prophet forecasters on Amazon SageMaker."""

__version__ = "0.1.0"
