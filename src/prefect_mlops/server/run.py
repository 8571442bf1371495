"""Starting the server: uvicorn over `create_app`, in one process or ``workers`` of them."""

from __future__ import annotations

import uvicorn


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> None:
    """Serve until interrupted; with ``workers > 1`` uvicorn runs that many processes, each
    building the application from the same settings."""
    uvicorn.run(
        "prefect_mlops.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )
