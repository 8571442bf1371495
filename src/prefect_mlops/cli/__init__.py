"""The ``prefect-mlops`` command."""
