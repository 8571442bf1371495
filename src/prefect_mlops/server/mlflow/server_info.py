"""MLflow 3's ``server-info``: what the stock client asks before large artifact uploads and
workspace calls. We say what is true: a SQL store, no workspaces, multipart uploads through
the proxy (parts sent to this server), no presigned or multipart downloads."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

router = APIRouter()

SERVER_INFO = {
    "store_type": "SqlStore",
    "workspaces_enabled": False,
    "trace_archival_enabled": False,
    "multipart_uploads_enabled": True,
    "multipart_downloads_enabled": False,
    "presigned_upload_run_id_supported": False,
    "presigned_upload_model_id_supported": False,
    "features_enabled": {"gateway": False},
}


@router.get("/server-info")
async def server_info() -> JSONResponse:
    return JSONResponse(SERVER_INFO)
