"""Artifacts of a run: files, folders, bytes, text, dicts, tables, images, figures."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.tracking import media
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.client.base import ClientBase
from prefect_mlops.tracking.entities import FileInfo
from prefect_mlops.tracking.store.base import ArtifactFiles


class ArtifactsClient(ClientBase):
    def _location(self, run_id: str) -> ArtifactFiles:
        """The run's files, where its store keeps them (storage itself, or the server)."""
        return self.store.artifact_location(self.store.get_run_info(run_id))

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> FileInfo:
        """Upload one file under ``artifact_path`` (a folder inside the run's artifacts)."""
        self.require_writable(run_id)
        source = Path(local_path)
        if not source.is_file():
            raise InvalidInput(f"log_artifact needs an existing file; {str(source)!r} is not one.")
        rel = v.safe_artifact_path(
            f"{v.safe_artifact_path(artifact_path)}/{source.name}" if artifact_path else source.name
        )
        size, digest = self._location(run_id).write_file(rel, source)
        self.store.record_artifact(run_id, rel, size, digest)
        return FileInfo(rel, False, size, digest)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[FileInfo]:
        """Upload every file below ``local_dir``, keeping the folder structure."""
        self.require_writable(run_id)
        root = Path(local_dir)
        if not root.is_dir():
            raise InvalidInput(f"log_artifacts needs an existing folder; {str(root)!r} is not one.")
        base = v.safe_artifact_path(artifact_path)
        location = self._location(run_id)
        stored = []
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel_in_dir = file.relative_to(root).as_posix()
            rel = v.safe_artifact_path(f"{base}/{rel_in_dir}" if base else rel_in_dir)
            size, digest = location.write_file(rel, file)
            self.store.record_artifact(run_id, rel, size, digest)
            stored.append(FileInfo(rel, False, size, digest))
        return stored

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> FileInfo:
        """Store ``data`` as the artifact ``artifact_file``."""
        self.require_writable(run_id)
        rel = v.safe_artifact_path(artifact_file)
        if not rel:
            raise InvalidInput("artifact_file must name a file, e.g. 'notes/summary.txt'.")
        size, digest = self._location(run_id).write_stream(rel, io.BytesIO(data))
        self.store.record_artifact(run_id, rel, size, digest)
        return FileInfo(rel, False, size, digest)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> FileInfo:
        return self.log_bytes(run_id, text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> FileInfo:
        """Store ``dictionary`` as YAML for ``.yaml``/``.yml`` files, JSON otherwise."""
        if artifact_file.lower().endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(dictionary, sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(dictionary, indent=2, default=str)
        return self.log_text(run_id, text, artifact_file)

    def log_table(self, run_id: str, data: Any, artifact_file: str) -> FileInfo:
        """Store a table (dict of columns or a pandas DataFrame) as MLflow's JSON table format."""
        if not artifact_file.lower().endswith(".json"):
            raise InvalidInput(f"log_table writes JSON; {artifact_file!r} must end with '.json'.")
        return self.log_text(run_id, media.table_json(data), artifact_file)

    def log_image(self, run_id: str, image: Any, artifact_file: str) -> FileInfo:
        """Store a numpy array or PIL image as an image file (format from the suffix)."""
        return self.log_bytes(run_id, media.image_bytes(image, artifact_file), artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> FileInfo:
        """Store a matplotlib figure (PNG, SVG, PDF... by suffix)."""
        return self.log_bytes(run_id, media.figure_bytes(figure, artifact_file), artifact_file)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        self.store.get_run_info(run_id)
        return self.store.list_artifacts(run_id, v.safe_artifact_path(path))

    def list_artifact_files(self, run_id: str, path: str = "") -> list[FileInfo]:
        """Every artifact file at or under ``path``, with size and sha256, sorted by path."""
        return self.store.list_artifact_files(run_id, path)

    def download_artifacts(
        self, run_id: str, path: str = "", dst_path: str | os.PathLike[str] | None = None
    ) -> Path:
        """Download a file or folder of artifacts; returns the local path."""
        rel = v.safe_artifact_path(path)
        files = [f.path for f in self.store.list_artifact_files(run_id, rel)]
        if not files:
            raise NotFound(f"Run {run_id} has no artifact at {path!r}.")
        dest_root = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="mlops-"))
        location = self._location(run_id)
        for file in files:
            location.download(file, dest_root / file)
        return dest_root / rel if rel else dest_root

    def open_artifact(self, run_id: str, path: str) -> Any:
        """A readable binary stream of one artifact."""
        rel = v.safe_artifact_path(path)
        if rel not in {f.path for f in self.store.list_artifact_files(run_id, rel)}:
            raise NotFound(f"Run {run_id} has no artifact file {path!r}.")
        return self._location(run_id).open_read(rel)
