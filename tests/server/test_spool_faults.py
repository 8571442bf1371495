"""The spool under faults: foreign answers, a server that keeps failing, crashes mid-write."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from prefect_mlops.core.errors import StorageError
from prefect_mlops.core.ids import new_id
from prefect_mlops.core.settings import get_settings
from prefect_mlops.tracking.store import RestTrackingStore
from prefect_mlops.tracking.store import spool as spool_module
from prefect_mlops.tracking.store.spool import Spool, Unreachable
from tests.conftest import _reset_mlops, start_tracking_server, stop_tracking_server

ATTEMPTS = 5  # plain 500s for one entry before it is set aside


def entry(key: str, op: str = "log_metrics") -> dict[str, Any]:
    return {"key": key, "op": op, "method": "POST", "path": "/metrics", "body": {"rows": []}}


def upload_entry(key: str) -> dict[str, Any]:
    return {"key": key, "op": "upload_artifact", "method": "PUT", "path": f"/artifacts/r/{key}"}


@pytest.fixture
def foreign() -> Iterator[tuple[str, dict[str, Any]]]:
    """A local HTTP server that answers every request as ``state`` says (status, headers,
    body), like a proxy or another server at the tracking URI; yields (url, state)."""
    state: dict[str, Any] = {"status": 404, "headers": {}, "body": b"Not Found", "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            elif self.headers.get("Transfer-Encoding") == "chunked":
                while size := int(self.rfile.readline().strip(), 16):
                    self.rfile.read(size + 2)
                self.rfile.readline()
            state["seen"].append(self.path)
            status, headers, body = state["status"], state["headers"], state["body"]
            if callable(status):
                status, headers, body = status(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def store_at(url: str, mlops_home: Path, offline: bool = False) -> RestTrackingStore:
    _reset_mlops()
    return RestTrackingStore(url, get_settings().model_copy(update={"offline": offline}))


def spool_some(store: RestTrackingStore) -> str:
    """An experiment, a run, metrics and an artifact, spooled; the run's id."""
    experiment_id = store.create_experiment("faults", "")
    run = store.create_run(experiment_id, "r", "")
    store.log_metric_rows([(run.info.run_id, "loss", 1.0, 0, i) for i in range(10)])
    store.transport.upload(run.info.run_id, "model.pkl", io.BytesIO(b"weights" * 100))
    return run.info.run_id


def journal_keys(spool: Spool) -> list[str]:
    return [json.loads(line)["key"] for line in spool.journal.read_text().splitlines()]


# -- 1: only the tracking server's own refusal rejects an entry ------------------------------


@pytest.mark.parametrize("status", [401, 403, 404, 405, 408, 413, 429])
def test_a_foreign_4xx_stops_replay_and_keeps_everything(
    mlops_home: Path, foreign: tuple[str, dict[str, Any]], status: int
) -> None:
    url, state = foreign
    state["status"] = status
    state["headers"] = {"Content-Type": "application/json"}
    state["body"] = b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "stock mlflow"}'
    store = store_at(url, mlops_home, offline=True)
    spool_some(store)
    keys = journal_keys(store.spool)
    store.transport.offline = False

    report = store.sync()

    assert not report.complete and report.rejected == []
    assert str(status) in report.reason
    assert journal_keys(store.spool) == keys  # nothing dropped
    assert len(list(store.spool.blobs.iterdir())) == 1  # the artifact's bytes kept
    assert not (store.spool.folder / "rejected.jsonl").exists()


def test_a_digest_mismatch_on_replay_keeps_the_blob_and_stops(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**8)
    spool.append(upload_entry("u"), blob=io.BytesIO(b"precious" * 1000))
    spool.append(entry("after"))

    def send(item: dict[str, Any], _: Spool) -> Any:
        raise StorageError("Artifact reached the server with sha256 X, but Y was sent.")

    report = spool.replay(send)

    assert not report.complete and report.rejected == []
    assert (spool.blobs / "u").read_bytes() == b"precious" * 1000
    assert journal_keys(spool) == ["u", "after"]


def test_the_servers_refusal_sets_aside_keeping_the_blob_and_sync_exits_1(
    mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "server-home"
    home.mkdir()
    proc, url = start_tracking_server(home)
    try:
        monkeypatch.setenv("PREFECT_MLOPS_TRACKING_URI", url)
        store = store_at(url, mlops_home, offline=True)
        run_id = spool_some(store)
        missing = new_id()  # a run the server does not have: it refuses the upload (404)
        store.transport.upload(missing, "lost.bin", io.BytesIO(b"keep me"))
        store.transport.close()

        from prefect_mlops.cli.main import app

        result = CliRunner().invoke(app, ["sync"])

        assert result.exit_code == 1, result.output
        assert "not sent" in result.output and "rejected.jsonl" in result.output
        spool = store.spool
        assert not spool.pending()
        (rejected,) = [json.loads(line) for line in (spool.folder / "rejected.jsonl").open()]
        assert rejected["op"] == "upload_artifact" and missing in rejected["path"]
        assert "NotFound" in rejected["error"]
        assert Path(rejected["blob_path"]).read_bytes() == b"keep me"
        assert Path(rejected["blob_path"]).parent == spool.folder / "rejected-blobs"
        reader = store_at(url, mlops_home)
        assert reader.get_run(run_id).info.run_id == run_id  # the rest was sent
    finally:
        stop_tracking_server(proc)


# -- 2: an entry the server keeps failing on is set aside -----------------------------------


def test_an_entry_failing_with_500_is_set_aside_after_max_attempts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**8)
    for key in ("bad", "good"):
        spool.append(entry(key))
    sent: list[str] = []

    def send(item: dict[str, Any], _: Spool) -> Any:
        if item["key"] == "bad":
            raise Unreachable("The tracking server failed (500): boom", status=500)
        sent.append(item["key"])
        return 1

    for _ in range(ATTEMPTS - 1):
        assert not spool.replay(send).complete
    assert sent == []
    report = spool.replay(send)
    assert report.complete and sent == ["good"]
    assert len(report.rejected) == 1 and "500" in report.rejected[0]
    (line,) = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert json.loads(line)["key"] == "bad" and "failed 5 times" in json.loads(line)["error"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_never_sets_an_entry_aside(tmp_path: Path, status: int) -> None:
    spool = Spool(tmp_path, 10**8)
    spool.append(entry("a"))

    def send(item: dict[str, Any], _: Spool) -> Any:
        raise Unreachable(f"failed ({status})", status=status)

    for _ in range(ATTEMPTS * 2):
        assert not spool.replay(send).complete
    assert journal_keys(spool) == ["a"]


def test_a_server_answering_500_to_one_entry_does_not_block_the_rest(
    mlops_home: Path, foreign: tuple[str, dict[str, Any]]
) -> None:
    url, state = foreign
    ok = {"Content-Type": "application/json"}

    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        if path.endswith("/runs/poison/tags"):
            return 500, {}, b"Internal Server Error"
        return 200, ok, b'{"applied": true, "result": true}'

    state["status"] = answer
    store = store_at(url, mlops_home, offline=True)
    store.transport.write("set_tags", "POST", "/runs/poison/tags", {"items": [["k", "v"]]})
    store.transport.write("log_params", "POST", "/runs/fine/params", {"items": [["p", "1"]]})
    store.transport.offline = False

    reports = [store.sync() for _ in range(ATTEMPTS)]

    assert [r.complete for r in reports] == [False] * (ATTEMPTS - 1) + [True]
    assert not store.spool.pending()
    assert state["seen"][-1].endswith("/runs/fine/params")


# -- 3: crash consistency ---------------------------------------------------------------------


def test_append_cuts_a_torn_tail_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**8)
    spool.append(entry("a"))
    with open(spool.journal, "ab") as journal:
        journal.write(b'{"key":"b","op":"log_me')  # a process killed mid-append
    spool.append(entry("c"))

    assert journal_keys(spool) == ["a", "c"]
    sent: list[str] = []
    report = spool.replay(lambda item, _: sent.append(item["key"]))
    assert report.complete and sent == ["a", "c"] and report.rejected == []


def test_append_writes_everything_when_os_write_writes_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.write
    monkeypatch.setattr(spool_module.os, "write", lambda fd, data: real(fd, bytes(data[:7])))
    spool = Spool(tmp_path, 10**8)
    spool.append(entry("a"))
    spool.append(entry("b"))
    monkeypatch.undo()
    assert journal_keys(spool) == ["a", "b"]


def test_an_undecodable_line_is_set_aside_and_replay_goes_on(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**8)
    spool.append(entry("a"))
    with open(spool.journal, "ab") as journal:
        journal.write(b'{"key":"b","op":\n[1, 2]\n')
    spool.append(entry("c"))
    sent: list[str] = []

    report = spool.replay(lambda item, _: sent.append(item["key"]))

    assert report.complete and sent == ["a", "c"] and len(report.rejected) == 2
    lines = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert all("unreadable" in json.loads(line)["error"] for line in lines)
    assert not spool.pending()


def test_the_offset_is_reset_before_the_journal_is_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path, 10**8)
    for key in ("a", "b", "c"):
        spool.append(entry(key))
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if self == spool.journal:
            raise RuntimeError("killed")  # the process dies as it empties the journal
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(RuntimeError):
        spool.replay(lambda item, _: None)
    monkeypatch.undo()
    assert spool._read_offset() == 0  # so entries appended later are not skipped


def test_a_stale_offset_past_a_new_journal_sends_everything(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**8)
    for key in ("a", "b", "c"):
        spool.append(entry(key))
    size = spool.journal.stat().st_size
    spool.journal.write_bytes(b"")
    spool._write_offset(size)  # what a crash between the two used to leave
    for key in ("new1", "new2", "new3"):
        spool.append(entry(key))
    sent: list[str] = []

    report = spool.replay(lambda item, _: sent.append(item["key"]))

    assert report.complete and sent == ["new1", "new2", "new3"]


def test_a_missing_blob_counts_as_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**8)
    spool.append(upload_entry("u"), blob=io.BytesIO(b"x"))
    spool.append(entry("m"))
    (spool.blobs / "u").unlink()  # sent and removed; the crash came before the offset
    sent: list[str] = []

    def send(item: dict[str, Any], sp: Spool) -> Any:
        if item.get("blob"):
            (sp.blobs / item["blob"]).read_bytes()
        sent.append(item["key"])

    report = spool.replay(send)
    assert report.complete and sent == ["m"] and not spool.pending()


def test_an_unexpected_error_stops_replay_without_breaking_writes(
    mlops_home: Path, foreign: tuple[str, dict[str, Any]]
) -> None:
    url, state = foreign
    state.update(status=200, headers={"Content-Type": "application/json"})
    state["body"] = b'{"applied": true, "result": 1}'
    store = store_at(url, mlops_home, offline=True)
    store.transport.write("log_metrics", "POST", "/metrics", {"rows": []})
    with open(store.spool.journal, "ab") as journal:  # a line replay cannot send
        journal.write(b'{"key":"x","op":"create_experiment","method":"POST","body":{}}\n')
    store.transport.offline = False

    report = store.sync()
    assert not report.complete and "create_experiment" in report.reason
    assert journal_keys(store.spool)[-1] == "x"  # kept, retried later
    # every later write is spooled behind it, and none raises
    assert store.transport._retry_at > 0
    store.log_metric_rows([("r" * 32, "loss", 1.0, 0, 0)])
    assert journal_keys(store.spool)[-1] != "x"


# -- 4: only a 2xx with the server's JSON is success ----------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_success_the_write_is_spooled(
    mlops_home: Path, foreign: tuple[str, dict[str, Any]], status: int
) -> None:
    url, state = foreign
    state.update(status=status, headers={"Location": "https://example.invalid/"}, body=b"")
    store = store_at(url, mlops_home)
    store.log_metric_rows([("r" * 32, "loss", 1.0, 0, i) for i in range(10)])
    assert store.spool.pending()

    report = store.sync()
    assert not report.complete and str(status) in report.reason
    assert store.spool.pending()


@pytest.mark.parametrize("body", [b"<html>login</html>", b"", b"[1, 2]", b'{"something": "else"}'])
def test_a_2xx_that_is_not_the_servers_answer_is_spooled(
    mlops_home: Path, foreign: tuple[str, dict[str, Any]], body: bytes
) -> None:
    url, state = foreign
    state.update(status=200, headers={"Content-Type": "text/html"}, body=body)
    store = store_at(url, mlops_home)
    store.log_metric_rows([("r" * 32, "loss", 1.0, 0, 0)])
    store.transport.upload("r" * 32, "a.txt", io.BytesIO(b"abc"))
    assert len(journal_keys(store.spool)) == 2
    assert not store.sync().complete


# -- 5: offline experiment records -------------------------------------------------------------


def test_concurrent_experiment_records_are_all_kept(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        spool = Spool(tmp_path, 10**8)
        for j in range(30):
            try:
                spool.add_experiment(f"{i}-{j}", {"experiment": {}, "server_id": None})
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(Spool(tmp_path, 1).experiments()) == 180
    assert not list(tmp_path.glob("*.tmp"))


def test_the_record_is_saved_before_the_journal_entry(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at("http://127.0.0.1:9", mlops_home, offline=True)
    seen: list[bool] = []
    real = os.write

    def write(fd: int, data: Any) -> int:
        if b"create_experiment" in bytes(data):
            seen.append(bool(store.spool.experiments()))
        return real(fd, data)

    monkeypatch.setattr(spool_module.os, "write", write)
    experiment_id = store.create_experiment("early", "")
    monkeypatch.undo()
    assert seen == [True]
    assert experiment_id in store.spool.experiments()
