"""A small Hugging Face Hub stand-in on 127.0.0.1, enough for ``huggingface_hub`` to push to it and pull from it.

It implements what our code and ``huggingface_hub`` call: repository creation (``POST /api/repos/create``), the
model card check (``POST /api/validate-yaml``, which accepts every card),
model info at a revision (``GET /api/models/{repo}[/revision/{rev}]``), file resolution with ``HEAD`` and
``GET`` (``/{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` and sizes), and the upload endpoints
(``preupload``, which answers "regular" for every file so that contents travel in the commit, and ``commit``,
which reads the NDJSON operations). It stores what is pushed, as commits, and serves it back. Faults for the
fallback tests: a repository can be made to answer 500 or to never answer, and its files can be damaged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (sha, files), oldest first
    fault: str | None = None  # None, "error" (HTTP 500) or "silent" (never answers)

    def snapshot(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if not self.commits:
            return None
        if revision in ("main", "HEAD"):
            return self.commits[-1]
        return next(((sha, files) for sha, files in self.commits if sha.startswith(revision)), None)


class FakeHub:
    """The server and its storage; ``url`` is what ``HF_ENDPOINT`` should be."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self._release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:
                hub._handle(self, "HEAD")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()  # let "silent" handlers return
        self.server.shutdown()
        self.server.server_close()

    # --------------------------------------------------------------------------------------- storage
    def commit(self, repo_id: str, files: dict[str, bytes], deleted: tuple[str, ...] = ()) -> str:
        """Add a commit (files added or replaced on top of the last one); returns its sha."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo())
            current = dict(repo.commits[-1][1]) if repo.commits else {}
            current.update(files)
            for path in deleted:
                current.pop(path, None)
            digest = hashlib.sha1(repo_id.encode() + str(len(repo.commits)).encode())
            for path in sorted(current):
                digest.update(path.encode() + hashlib.sha256(current[path]).digest())
            sha = digest.hexdigest()
            repo.commits.append((sha, current))
            return sha

    # --------------------------------------------------------------------------------------- requests
    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = unquote(urlparse(request.path).path)
        with self.lock:
            self.requests.append(f"{method} {path}")
        body = b""
        if method == "POST":
            body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        parts = path.strip("/").split("/")
        try:
            if method == "POST" and path == "/api/repos/create":
                return self._create(request, json.loads(body or b"{}"))
            if method == "POST" and path == "/api/validate-yaml":  # a model card's front matter: accepted as it is
                return self._json(request, 200, {"errors": [], "warnings": []})
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id = "/".join(parts[2:4])
                if self._fault(request, repo_id):
                    return None
                rest = parts[4:]
                if method == "GET" and not rest:
                    return self._info(request, repo_id, "main")
                if method == "GET" and rest[0] == "revision":
                    return self._info(request, repo_id, "/".join(rest[1:]))
                if method == "POST" and rest[0] == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(request, 200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                                 "shouldIgnore": False} for f in files]})
                if method == "POST" and rest[0] == "commit":
                    return self._commit(request, repo_id, body)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id = "/".join(parts[:2])
                if self._fault(request, repo_id):
                    return None
                return self._resolve(request, method, repo_id, parts[3], "/".join(parts[4:]))
            return self._json(request, 404, {"error": f"no route {path}"})
        except (BrokenPipeError, ConnectionResetError):
            return None

    def _fault(self, request: BaseHTTPRequestHandler, repo_id: str) -> bool:
        repo = self.repos.get(repo_id)
        if repo is None or repo.fault is None:
            return False
        if repo.fault == "silent":
            self._release.wait(60)
            return True
        self._json(request, 500, {"error": "Internal Error"})
        return True

    def _json(self, request: BaseHTTPRequestHandler, status: int, value: dict, headers: dict | None = None) -> None:
        data = json.dumps(value).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if status == 404:
            request.send_header("X-Error-Code", "RepoNotFound" if "Repository" in value.get("error", "") else "EntryNotFound")
            request.send_header("X-Error-Message", value.get("error", ""))
        for name, content in (headers or {}).items():
            request.send_header(name, content)
        request.end_headers()
        request.wfile.write(data)

    def _create(self, request: BaseHTTPRequestHandler, payload: dict) -> None:
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}" if "/" not in payload["name"] else payload["name"]
        with self.lock:
            exists = repo_id in self.repos
            self.repos.setdefault(repo_id, Repo())
        if exists:
            return self._json(request, 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"})
        return self._json(request, 200, {"url": f"{self.url}/{repo_id}", "name": repo_id})

    def _info(self, request: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._json(request, 404, {"error": "Repository not found"})
        snapshot = repo.snapshot(revision)
        if snapshot is None:
            return self._json(request, 404, {"error": f"Invalid rev id: {revision}"},
                              {"X-Error-Code": "RevisionNotFound"})
        sha, files = snapshot
        return self._json(request, 200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False, "tags": [],
                                         "siblings": [{"rfilename": name} for name in sorted(files)],
                                         "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())})

    def _resolve(self, request: BaseHTTPRequestHandler, method: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._json(request, 404, {"error": "Repository not found"})
        snapshot = repo.snapshot(revision)
        if snapshot is None:
            return self._json(request, 404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound"})
        sha, files = snapshot
        if path not in files:
            return self._json(request, 404, {"error": f"Entry not found: {path}"}, {"X-Repo-Commit": sha})
        data = files[path]
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(data)))
        request.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        request.send_header("X-Repo-Commit", sha)
        request.end_headers()
        if method == "GET":
            request.wfile.write(data)

    def _commit(self, request: BaseHTTPRequestHandler, repo_id: str, body: bytes) -> None:
        if repo_id not in self.repos:
            return self._json(request, 404, {"error": "Repository not found"})
        added, deleted = {}, []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item["key"] == "file":
                added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deleted.append(item["value"]["path"])
            elif item["key"] == "lfsFile":
                return self._json(request, 400, {"error": "this stand-in takes regular uploads only"})
        sha = self.commit(repo_id, added, tuple(deleted))
        return self._json(request, 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                                         "success": True})
