"""An in-memory fake of the few lakeFS REST endpoints that `LakeFSCommitStore` reaches through
the real ``lakefs`` SDK, served by uvicorn on a loopback port in a thread.

Only because lakeFS cannot run here. It takes the request shapes the SDK sends (the raw-body
upload with ``x-lakefs-meta-*`` headers, ``Range`` reads, ``True``/``False`` query flags, JSON
bodies) and answers as lakeFS does: a branch reads its staged changes over its head commit, a
commit with no changes is refused unless ``allow_empty``, listings page by ``after``/``amount``,
errors are ``{"message": ...}`` with lakeFS's status codes, every request needs basic auth.
Paths it does not serve answer 501 so a new SDK call shows up as a failure, not a silent pass.

Use `running_fake_lakefs` (or `start_fake_lakefs` and `FakeLakeFS.stop`); `FakeLakeFS.requests`
logs every request, `FakeLakeFS.uploaded` the paths uploaded.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

ACCESS_KEY_ID = "AKIAFAKELAKEFS0000000"
SECRET_ACCESS_KEY = "fake-lakefs-secret-key"
_META = "x-lakefs-meta-"
_MAX_PAGE = 1000
#: what a lakeFS on the local blockstore says of itself (no pre-signed URLs)
_CONFIG = {
    "version_config": {"version": "1.0.0-fake"},
    "storage_config": {
        "blockstore_type": "local",
        "blockstore_namespace_example": "local://example-bucket/",
        "blockstore_namespace_ValidityRegex": "^local://",
        "pre_sign_support": False,
        "pre_sign_support_ui": False,
        "import_support": False,
        "import_validity_regex": "^local://",
    },
}


@dataclass(frozen=True)
class _Object:
    data: bytes
    physical_address: str
    mtime: int
    metadata: dict[str, str]
    content_type: str

    def stats(self, path: str, user_metadata: bool) -> dict[str, Any]:
        return {
            "path": path,
            "path_type": "object",
            "physical_address": self.physical_address,
            "checksum": hashlib.md5(self.data).hexdigest(),
            "size_bytes": len(self.data),
            "mtime": self.mtime,
            "metadata": dict(self.metadata) if user_metadata else None,
            "content_type": self.content_type,
        }


@dataclass
class _Commit:
    id: str
    parents: list[str]
    committer: str
    message: str
    creation_date: int
    metadata: dict[str, str]
    tree: dict[str, _Object]
    generation: int

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parents": self.parents,
            "committer": self.committer,
            "message": self.message,
            "creation_date": self.creation_date,
            "meta_range_id": hashlib.sha256(repr(sorted(self.tree)).encode()).hexdigest(),
            "metadata": self.metadata,
            "generation": self.generation,
            "version": 1,
        }


@dataclass
class _Branch:
    head: str
    staged: dict[str, _Object | None] = field(default_factory=dict)  # None: a deletion


@dataclass
class _Repo:
    name: str
    storage_namespace: str
    default_branch: str
    creation_date: int
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, _Branch] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "creation_date": self.creation_date,
            "default_branch": self.default_branch,
            "storage_namespace": self.storage_namespace,
            "read_only": False,
        }


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _flag(request: Request, name: str, default: bool) -> bool:
    """A boolean query flag; the SDK sends ``True``/``False`` (``str(bool)``), Go accepts both."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise _Refused(400, f"invalid boolean {name}={value!r}")


def _page(request: Request, keys: list[str], default: int) -> tuple[list[str], dict[str, Any]]:
    after = request.query_params.get("after", "")
    amount = min(int(request.query_params.get("amount", default)), _MAX_PAGE)
    rest = [k for k in keys if k > after] if after else keys
    page = rest[:amount]
    has_more = len(rest) > amount
    pagination = {
        "has_more": has_more,
        "next_offset": page[-1] if has_more else "",
        "results": len(page),
        "max_per_page": _MAX_PAGE,
    }
    return page, pagination


class FakeLakeFS:
    """The fake server's state and app. ``page_size`` is the default listing page (lakeFS's is
    100); set it small to make the SDK page."""

    def __init__(self, access_key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY) -> None:
        self.access_key_id = access_key_id
        self._auth = "Basic " + base64.b64encode(f"{access_key_id}:{secret}".encode()).decode()
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.page_size = 100
        self.endpoint = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/api/v1/{rest:path}", self._dispatch, methods=_ALL)])

    @property
    def uploaded(self) -> list[str]:
        """The object paths uploaded so far, in order."""
        return [
            query["path"]
            for method, path, query in self.requests
            if method == "POST"
            and re.fullmatch(r"/repositories/[^/]+/branches/[^/]+/objects", path)
        ]

    # -- HTTP ------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        # the raw path: a path parameter may hold an encoded '/' (the SDK quotes with safe='')
        raw = request.scope.get("raw_path", b"").decode().split("?")[0]
        parts = [unquote(p) for p in raw.removeprefix("/api/v1/").split("/")]
        self.requests.append((request.method, "/" + "/".join(parts), dict(request.query_params)))
        if request.headers.get("authorization") != self._auth:
            return JSONResponse({"message": "error authenticating request"}, status_code=401)
        try:
            return await self._route(request, request.method, parts)
        except _Refused as exc:
            return JSONResponse({"message": str(exc)}, status_code=exc.status)

    async def _route(self, request: Request, method: str, parts: list[str]) -> Response:
        match (method, parts):
            case ("GET", ["config"]):  # the SDK asks when a read or write leaves pre_sign unset
                return JSONResponse(_CONFIG)
            case ("POST", ["repositories"]):
                return self._create_repo(await request.json())
            case ("GET", ["repositories", repo]):
                return JSONResponse(self._repo(repo).body())
            case ("POST", ["repositories", repo, "branches"]):
                return self._create_branch(self._repo(repo), await request.json())
            case ("GET", ["repositories", repo, "branches", branch]):
                r = self._repo(repo)
                return JSONResponse({"id": branch, "commit_id": self._branch(r, branch).head})
            case ("GET", ["repositories", repo, "branches", branch, "diff"]):
                return self._uncommitted(request, self._repo(repo), branch)
            case ("POST", ["repositories", repo, "branches", branch, "commits"]):
                return self._commit(self._repo(repo), branch, await request.json())
            case ("POST", ["repositories", repo, "branches", branch, "objects"]):
                return await self._upload(request, self._repo(repo), branch)
            case ("POST", ["repositories", repo, "branches", branch, "objects", "delete"]):
                return self._delete(self._repo(repo), branch, await request.json())
            case ("GET", ["repositories", repo, "commits", ref]):
                r = self._repo(repo)
                return JSONResponse(r.commits[self._commit_id(r, ref)].body())
            case ("GET", ["repositories", repo, "refs", ref, "commits"]):
                return self._log(request, self._repo(repo), ref)
            case ("GET", ["repositories", repo, "refs", ref, "objects"]):
                return self._get(request, self._repo(repo), ref)
            case ("HEAD", ["repositories", repo, "refs", ref, "objects"]):
                self._object(request, self._repo(repo), ref)
                return Response(status_code=200)
            case ("GET", ["repositories", repo, "refs", ref, "objects", "stat"]):
                return self._stat(request, self._repo(repo), ref)
            case ("GET", ["repositories", repo, "refs", ref, "objects", "ls"]):
                return self._ls(request, self._repo(repo), ref)
        raise _Refused(501, f"the fake lakeFS does not serve {method} /{'/'.join(parts)}")

    # -- state -----------------------------------------------------------------------------

    def _repo(self, name: str) -> _Repo:
        if name not in self.repos:
            raise _Refused(404, "repository not found")
        return self.repos[name]

    def _branch(self, repo: _Repo, name: str) -> _Branch:
        if name not in repo.branches:
            raise _Refused(404, "branch not found")
        return repo.branches[name]

    def _commit_id(self, repo: _Repo, ref: str) -> str:
        if ref in repo.branches:
            return repo.branches[ref].head
        if ref in repo.commits:
            return ref
        raise _Refused(404, f"{ref}: ref not found")

    def _tree(self, repo: _Repo, ref: str) -> dict[str, _Object]:
        """The objects ``ref`` reads: a branch's staged changes over its head, or a commit's."""
        tree = dict(repo.commits[self._commit_id(repo, ref)].tree)
        if ref in repo.branches:
            for path, obj in repo.branches[ref].staged.items():
                if obj is None:
                    tree.pop(path, None)
                else:
                    tree[path] = obj
        return tree

    def _new_commit(
        self, repo: _Repo, parents: list[str], message: str, metadata: dict[str, str], tree: dict
    ) -> _Commit:
        generation = 1 + max((repo.commits[p].generation for p in parents), default=0)
        commit = _Commit(
            id=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
            parents=parents,
            committer=self.access_key_id,
            message=message,
            creation_date=int(time.time()),
            metadata=metadata,
            tree=tree,
            generation=generation,
        )
        repo.commits[commit.id] = commit
        return commit

    # -- handlers --------------------------------------------------------------------------

    def _create_repo(self, body: dict[str, Any]) -> Response:
        name = body["name"]
        if name in self.repos:
            raise _Refused(409, "repository already exists")
        default = body.get("default_branch") or "main"
        repo = _Repo(name, body["storage_namespace"], default, int(time.time()))
        first = self._new_commit(repo, [], "Repository created", {}, {})
        repo.branches[default] = _Branch(head=first.id)
        self.repos[name] = repo
        return JSONResponse(repo.body(), status_code=201)

    def _create_branch(self, repo: _Repo, body: dict[str, Any]) -> Response:
        if body["name"] in repo.branches:
            raise _Refused(409, "branch already exists")
        head = self._commit_id(repo, body["source"])
        repo.branches[body["name"]] = _Branch(head=head)
        return PlainTextResponse(head, status_code=201, media_type="text/html")

    def _uncommitted(self, request: Request, repo: _Repo, name: str) -> Response:
        branch = self._branch(repo, name)
        committed = repo.commits[branch.head].tree
        prefix = request.query_params.get("prefix", "")
        changes: dict[str, dict[str, Any]] = {}
        for path, obj in branch.staged.items():
            if not path.startswith(prefix):
                continue
            if obj is None:
                if path in committed:
                    size = len(committed[path].data)
                    changes[path] = {"type": "removed", "size_bytes": size}
            elif committed.get(path) != obj:
                kind = "changed" if path in committed else "added"
                changes[path] = {"type": kind, "size_bytes": len(obj.data)}
        page, pagination = _page(request, sorted(changes), self.page_size)
        results = [{"path": p, "path_type": "object", **changes[p]} for p in page]
        return JSONResponse({"pagination": pagination, "results": results})

    def _commit(self, repo: _Repo, name: str, body: dict[str, Any]) -> Response:
        branch = self._branch(repo, name)
        parent = repo.commits[branch.head]
        tree = self._tree(repo, name)
        if tree == parent.tree and not body.get("allow_empty"):
            raise _Refused(400, "commit: no changes")
        commit = self._new_commit(
            repo, [parent.id], body["message"], dict(body.get("metadata") or {}), tree
        )
        branch.head, branch.staged = commit.id, {}
        return JSONResponse(commit.body(), status_code=201)

    async def _upload(self, request: Request, repo: _Repo, name: str) -> Response:
        branch = self._branch(repo, name)
        path = request.query_params.get("path")
        if not path:
            raise _Refused(400, "path is required")
        if request.headers.get("content-type", "").startswith("multipart/"):
            raise _Refused(501, "the fake lakeFS takes only the raw-body upload the SDK sends")
        metadata = {
            key[len(_META) :]: value
            for key, value in request.headers.items()
            if key.lower().startswith(_META)
        }
        obj = _Object(
            data=await request.body(),
            physical_address=f"{repo.storage_namespace.rstrip('/')}/data/{uuid.uuid4().hex}",
            mtime=int(time.time()),
            metadata=metadata,
            content_type=request.headers.get("content-type", "application/octet-stream"),
        )
        branch.staged[path] = obj
        return JSONResponse(obj.stats(path, True), status_code=201)

    def _delete(self, repo: _Repo, name: str, body: dict[str, Any]) -> Response:
        branch = self._branch(repo, name)
        committed = repo.commits[branch.head].tree
        for path in body["paths"]:
            if path in committed:
                branch.staged[path] = None
            else:
                branch.staged.pop(path, None)
        return JSONResponse({"errors": []})

    def _log(self, request: Request, repo: _Repo, ref: str) -> Response:
        ids: list[str] = []
        current: str | None = self._commit_id(repo, ref)
        while current is not None:
            ids.append(current)
            parents = repo.commits[current].parents
            current = parents[0] if parents else None
        after = request.query_params.get("after")
        start = ids.index(after) + 1 if after in ids else 0
        amount = min(int(request.query_params.get("amount", self.page_size)), _MAX_PAGE)
        page = ids[start : start + amount]
        has_more = start + amount < len(ids)
        pagination = {
            "has_more": has_more,
            "next_offset": page[-1] if has_more else "",
            "results": len(page),
            "max_per_page": _MAX_PAGE,
        }
        results = [repo.commits[c].body() for c in page]
        return JSONResponse({"pagination": pagination, "results": results})

    def _object(self, request: Request, repo: _Repo, ref: str) -> tuple[str, _Object]:
        path = request.query_params.get("path", "")
        obj = self._tree(repo, ref).get(path)
        if obj is None:
            raise _Refused(404, "object not found")
        return path, obj

    def _stat(self, request: Request, repo: _Repo, ref: str) -> Response:
        path, obj = self._object(request, repo, ref)
        return JSONResponse(obj.stats(path, _flag(request, "user_metadata", True)))

    def _get(self, request: Request, repo: _Repo, ref: str) -> Response:
        _flag(request, "presign", False)
        _, obj = self._object(request, repo, ref)
        size = len(obj.data)
        wanted = request.headers.get("range")
        if wanted is None:
            return Response(obj.data, media_type="application/octet-stream")
        found = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
        if found is None:
            raise _Refused(400, f"bad range {wanted!r}")
        start = int(found[1])
        end = min(int(found[2]) if found[2] else size - 1, size - 1)
        if start >= size:
            headers = {"Content-Range": f"bytes */{size}"}
            return JSONResponse({"message": "invalid range"}, status_code=416, headers=headers)
        headers = {"Content-Range": f"bytes {start}-{end}/{size}"}
        body = obj.data[start : end + 1]
        return Response(
            body, status_code=206, headers=headers, media_type="application/octet-stream"
        )

    def _ls(self, request: Request, repo: _Repo, ref: str) -> Response:
        if request.query_params.get("delimiter"):
            raise _Refused(501, "the fake lakeFS lists without a delimiter only")
        tree = self._tree(repo, ref)
        prefix = request.query_params.get("prefix", "")
        keys = sorted(p for p in tree if p.startswith(prefix))
        page, pagination = _page(request, keys, self.page_size)
        user_metadata = _flag(request, "user_metadata", True)
        results = [tree[p].stats(p, user_metadata) for p in page]
        return JSONResponse({"pagination": pagination, "results": results})

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port; returns the endpoint (``http://127.0.0.1:PORT``)."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-lakefs", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake lakeFS did not start")
            time.sleep(0.01)
        self.endpoint = f"http://127.0.0.1:{port}"
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None


_ALL = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]


def start_fake_lakefs() -> FakeLakeFS:
    """A started fake; call `FakeLakeFS.stop` when done."""
    fake = FakeLakeFS()
    fake.start()
    return fake


@contextmanager
def running_fake_lakefs() -> Iterator[FakeLakeFS]:
    """A fake lakeFS for the ``with`` block."""
    fake = start_fake_lakefs()
    try:
        yield fake
    finally:
        fake.stop()


@dataclass
class LakeFSTarget:
    """A lakeFS to test against: a real one (``fake`` is None) or the fake, and a repository
    in it that exists."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    repo: str
    fake: FakeLakeFS | None

    def client(self) -> Any:
        import lakefs

        return lakefs.Client(
            host=self.endpoint, username=self.access_key_id, password=self.secret_access_key
        )

    def new_branch_uri(self, prefix: str = "") -> str:
        """``lakefs://repo/<a fresh branch name>[/prefix]`` (the branch is not created)."""
        uri = f"lakefs://{self.repo}/mlops-test-{uuid.uuid4().hex[:12]}"
        return f"{uri}/{prefix}" if prefix else uri

    def store(self, uri: str) -> Any:
        from prefect_mlops.datasets.objects.lakefs import LakeFSCommitStore

        return LakeFSCommitStore(
            uri,
            endpoint=self.endpoint,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )


@contextmanager
def open_lakefs_target() -> Iterator[LakeFSTarget]:
    """The lakeFS named by ``LAKEFS_ENDPOINT`` (with ``LAKEFS_ACCESS_KEY_ID`` and
    ``LAKEFS_SECRET_ACCESS_KEY``; repository ``LAKEFS_TEST_REPO``, created in
    ``LAKEFS_TEST_STORAGE_NAMESPACE`` if missing) or else a started fake with a repository
    made through the SDK."""
    import os

    import lakefs

    endpoint = os.environ.get("LAKEFS_ENDPOINT")
    if endpoint:
        target = LakeFSTarget(
            endpoint,
            os.environ["LAKEFS_ACCESS_KEY_ID"],
            os.environ["LAKEFS_SECRET_ACCESS_KEY"],
            os.environ.get("LAKEFS_TEST_REPO", "mlops-tests"),
            None,
        )
        namespace = os.environ.get("LAKEFS_TEST_STORAGE_NAMESPACE", "local://mlops-tests")
        lakefs.repository(target.repo, client=target.client()).create(
            storage_namespace=namespace, exist_ok=True
        )
        yield target
        return
    with running_fake_lakefs() as fake:
        target = LakeFSTarget(fake.endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "mlops-tests", fake)
        lakefs.repository(target.repo, client=target.client()).create(
            storage_namespace="local://mlops-tests"
        )
        yield target
