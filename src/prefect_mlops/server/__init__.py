"""The tracking server: one light process (or N) that teams point every client at.

- ``app.py`` — the ASGI application: health, version, body limit, error mapping, routers;
- ``errors.py`` — our errors as MLflow's error codes and HTTP statuses (never a 5xx for a
  client's mistake);
- ``mlflow/`` — MLflow's REST API, so the stock ``mlflow`` client works against us;
- ``native/`` — the native API that the remote store speaks;
- ``run.py`` — starting it with uvicorn (``prefect-mlops server start``).
"""
