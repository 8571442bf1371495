"""The tracking domain: runs, params, metrics, artifacts, search, and how Prefect flow runs
become tracked runs. Layers, each importing only those below (see the README's Architecture
section and the import-linter contracts in pyproject.toml):

- ``plugin.py`` — the Prefect plugin entry point (zero-code tracking);
- ``autolog/`` — framework hooks, one module per library;
- ``flow_runs/`` — the Prefect side: binding, auto-tracking, reconcile, UI artifacts;
- ``capture/`` — run context: environment, console, system telemetry, arguments;
- ``fluent.py`` — MLflow's module-level functions over the active run;
- ``client/`` — `TrackingClient`, one module per concern;
- ``writer.py`` — the metric buffer;
- ``store/`` — the `TrackingStore` protocol and its SQL (and remote) implementations;
- ``search/`` — the filter grammar and run comparison;
- ``tables.py``, ``media.py``, ``charts.py`` — table definitions, artifact encodings, SVG charts;
- ``runtime.py`` — the seam the Prefect side registers its callbacks through;
- ``pending.py`` — background work that reads wait for;
- ``entities.py``, ``validation.py`` — the records users get, and the rules on names and values.
"""
