"""What a run records about the process it ran in, each part switched by a setting.

- ``environment.py`` — git commit/branch/diff, interpreter, packages, environment variables;
- ``console.py`` — stdout and stderr, still printed, saved as ``console.log``;
- ``telemetry.py`` — CPU, memory, disk, network and NVIDIA GPUs as ``system/*`` metrics;
- ``arguments.py`` — ``argparse`` arguments, logged as ``args.*`` params.
"""
