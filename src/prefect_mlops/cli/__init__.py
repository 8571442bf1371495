"""The ``prefect-mlops`` command (typer + rich), one module per group of subcommands:

- ``main.py`` — the app, ``setup``, ``demo`` and ``db`` commands;
- ``runs.py``, ``experiments.py``, ``searches.py``, ``server.py`` — their subcommands;
- ``setup.py``, ``demo.py`` — what ``setup`` and ``demo`` do;
- ``output.py`` — tables that fit the terminal, JSON, errors.
"""
