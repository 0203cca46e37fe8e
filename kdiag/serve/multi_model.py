"""`kdiag serve --multi-model DIR`: the container with SAGEMAKER_MULTI_MODEL=true.

The container starts no model; SageMaker (or a test) drives its model management API, served by
the Python service (python_service.py PythonServiceResource, DLC 2.2-2.19 at 6712253d and the
2.20+ rewrite; G1 repo's equivalent):

- `POST /models` `{"model_name", "url"}` loads the model whose base path is `url` (a folder of
  numeric version folders): 200 `{"success": ...}`, 409 already loaded, 404 no numeric folder,
  507 out of ports or memory, 500 for a body without `model_name`/`url`;
- `GET /models` lists the loaded models with TF Serving's model status, `GET /models/NAME` one;
- `DELETE /models/NAME` unloads; `POST /models/NAME/invoke` invokes (the Python service's default
  handler or inference.py: njs never runs in this mode); `POST /invocations` names no model.

Container paths `/opt/ml/models/...` in `url` map to DIR. On the Runtime API route,
`invoke_endpoint(TargetModel="a.tar.gz")` loads DIR/a.tar.gz on first use, as SageMaker downloads
and extracts `<ModelDataUrl prefix>/a.tar.gz` and calls `POST /models` before invoking.

User code (python_service.py, serve.py), per generation:
- universal script: G1 (sagemaker-tensorflow-serving 1.x, since dc1ccd1) reads
  /opt/ml/models/code/ (DIR/code); the 2.x DLC images since beb9f5b3 (2023-03) and 2.20+ read
  /opt/ml/code/ (DIR/../code). Its inference.py is imported when the service starts (a failure
  keeps the container from becoming healthy), its requirements.txt pip-installed at start-up
  (ignored when lib/ exists), its lib/ put on the import path.
- per-model script (2.x, 2.20+; G1 ignores it): /opt/ml/models/<model_name>/model/code/ —
  found by the model's NAME, not its url — imported at `POST /models` (a failure: falcon's 500),
  its lib/ appended to sys.path, its requirements.txt never installed. A TargetModel archive's
  own code/ is that folder (SageMaker extracts it to /opt/ml/models/<id>/model).
- for each request: the model's own handlers if it has them, else the universal script, else
  the default handler (2.20+: which answers 415 for unknown content types).
kdiag runs none of it unless the user opts in (`--code` names the universal folder,
`--run-archive-code` runs what the container would find); otherwise it logs what the endpoint
would run, as KD230 does for one model.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import KdiagError
from kdiag.path.container import Request, generation_for
from kdiag.path.request_path import Invocation
from kdiag.path.target_model import target_model_name

CONTAINER_ROOT = "/opt/ml/models"
# python_service.py _parse_sagemaker_port_range_mme with the range the platform sets
# (SAGEMAKER_SAFE_PORT_RANGE; the public tests use 9000-9999): 90% of it, REST ports in the
# lower half, gRPC in the upper, handed out from the top.
PORT_RANGE = (9000, 9999)
DEFAULT_MAX_MODELS = 8  # kdiag's own cap: each loaded model holds a TensorFlow session
# G3 (2.20+) checks names before using them in paths (python_service.py _MODEL_NAME_RE).
_G3_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,254}\Z")
_FALCON_500 = b'{"title": "500 Internal Server Error"}'
JSON = "application/json"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str | None = JSON
    note: str = ""


def _error(status: int, message: str, note: str = "") -> Answer:
    return Answer(status, json.dumps({"error": message}).encode(), JSON, note)


@dataclass
class _Loaded:
    endpoint: object  # LocalEndpoint
    rest_port: int
    grpc_port: int


class ModelManager:
    """The loaded models of one multi-model container. Thread-safe."""

    is_multi_model = True  # what ServerApp looks for
    model_name = "{model_name}"  # for the route list: models are named by POST /models
    versions = None

    def __init__(self, models_dir: str | Path, *, framework_version: str | None = None,
                 max_models: int = DEFAULT_MAX_MODELS, log=None, code_dir: Path | None = None,
                 run_model_code: bool = False) -> None:
        """`code_dir`: the universal code folder to run (--code); `run_model_code`: run the
        code the container finds itself, universal and per model (--run-archive-code)."""
        self.root = Path(models_dir).resolve()
        if not self.root.is_dir():
            raise KdiagError(f"{models_dir} is not a folder: --multi-model takes the folder of "
                             "models (what SageMaker mounts at /opt/ml/models).")
        self.framework_version = framework_version
        self.gen = generation_for(framework_version)
        self.max_models = max_models
        self.log = log or (lambda line: None)
        self.run_model_code = run_model_code
        found = self.universal_code_location()
        # The universal folder the container reads, and whether kdiag runs its inference.py.
        self.universal_code_dir: Path | None = (
            Path(code_dir) if code_dir is not None
            else found if found is not None and found.is_dir() else None)
        self.runs_universal = code_dir is not None or run_model_code
        self.startup_failure: str | None = None  # set by start(): the container won't start
        self._models: dict[str, _Loaded] = {}
        self._lock = threading.RLock()
        lo, hi = PORT_RANGE
        upper = lo + int((hi - lo) * 0.9)
        mid = (lo + upper) // 2
        self._rest_ports = list(range(lo, mid))
        self._grpc_ports = list(range(mid, upper))

    # -- user code -------------------------------------------------------------------------
    def universal_code_location(self) -> Path:
        """Where the container looks for the universal code/ folder (G1: /opt/ml/models/code,
        later images: /opt/ml/code, DIR being /opt/ml/models)."""
        return self.root / "code" if self.gen.name == "G1" else self.root.parent / "code"

    def model_code_location(self, name: str) -> Path | None:
        """/opt/ml/models/<name>/model/code: a model's own code (None on G1, which has none,
        and for a name that would leave DIR)."""
        if self.gen.name == "G1":
            return None
        return self.local_path(f"{name}/model/code")

    @property
    def _universal_handlers(self) -> Path | None:
        """The universal code folder whose inference.py runs (opted in and present)."""
        where = self.universal_code_dir
        if self.runs_universal and where is not None and (where / "inference.py").is_file():
            return where
        return None

    def start(self, *, install_requirements: bool = False) -> str | None:
        """The container's start-up with its universal code: requirements.txt installed (or
        checked), inference.py imported. Logs what runs and what kdiag leaves out; returns
        (and keeps as `startup_failure`) why the container would not start, if it would not."""
        from kdiag.path.request_path import handlers_for
        from kdiag.serve.requirements import startup_failure_for

        where = self.universal_code_dir
        if where is None:
            self.log("kdiag serve: no universal code folder (the container would look in "
                     f"{self.universal_code_location()}): models without code of their own "
                     "use the default handler")
            return None
        script = where / "inference.py"
        if script.is_file() and not self.runs_universal:
            self.log(f"kdiag serve: KD230 warning: {script} is the endpoint's universal "
                     "inference.py: the container runs it for every model without its own. kdiag "
                     "runs it only with --run-archive-code (or --code), so it answers with the "
                     "default handler.")
        failure = startup_failure_for(where, has_lib=(where / "lib").is_dir(),
                                      install=install_requirements, log=self.log)
        if failure is None and self._universal_handlers is not None:
            error = handlers_for(self._universal_handlers).startup_error
            if error:
                failure = (f"{script} fails at import ({error}): the container's Python service "
                           "worker fails to boot, so it never becomes healthy.")
            else:
                self.log(f"kdiag serve: running the universal {script}")
        self.startup_failure = failure
        return failure

    def _code_for(self, name: str, own: Path | None) -> tuple[Path | None, str]:
        """(the code folder whose handlers serve model `name`, a note for the log)."""
        universal = self._universal_handlers
        fallback = (f"the universal {universal / 'inference.py'}" if universal is not None
                    else "the default handler")
        if own is None or not (own / "inference.py").is_file():
            return universal, f"handlers: {fallback}"
        if not self.run_model_code:
            return universal, (f"KD230 warning: {own / 'inference.py'} is this model's own "
                               "inference.py: the container runs it for this model; kdiag runs "
                               f"it only with --run-archive-code, so it answers with {fallback}")
        note = f"handlers: its own {own / 'inference.py'}"
        if (own / "requirements.txt").is_file():
            note += (" (its requirements.txt is not installed: the container installs only the "
                     "universal one)")
        return own, note

    # -- paths -----------------------------------------------------------------------------
    def local_path(self, url: str) -> Path | None:
        """`url` as a path under DIR (a container path under /opt/ml/models, or relative), or
        None when it points outside."""
        rel = url
        if url == CONTAINER_ROOT or url.startswith(CONTAINER_ROOT + "/"):
            rel = url[len(CONTAINER_ROOT):].lstrip("/")
        elif url.startswith("/"):
            return None
        p = (self.root / rel).resolve()
        return p if p == self.root or self.root in p.parents else None

    @staticmethod
    def _has_version_folder(base: Path) -> bool:
        """python_service.py validate_model_dir: any all-digit folder anywhere below."""
        return any(any(d.isdigit() for d in dirs) for _, dirs, _ in _walk(base))

    # -- the management API ----------------------------------------------------------------
    def load(self, body: bytes) -> Answer:
        try:
            data = json.loads(body.decode("utf-8"))
            name, url = data["model_name"], data["url"]
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            # falcon's answer to the handler's unhandled exception
            return Answer(500, _FALCON_500, JSON, f"bad load request: {type(e).__name__}")
        if not isinstance(name, str) or not isinstance(url, str):
            return Answer(500, _FALCON_500, JSON, "bad load request: model_name/url not strings")
        if self.gen.name == "G3" and not _G3_NAME_RE.match(name):
            return _error(400, f"invalid model_name: {name!r}")
        with self._lock:
            if name in self._models:
                return _error(409, f"Model {name} is already loaded.")
            if not self._rest_ports:
                return _error(507, "Memory exhausted: no available ports to load the model.")
            base = self.local_path(url)
            if base is None or not base.exists() or not self._has_version_folder(base):
                return _error(404, f"Could not find valid base path {url} for servable {name}")
            if len(self._models) >= self.max_models:
                return Answer(507, b"Memory exhausted: not enough memory to start TFS instance",
                              JSON, f"kdiag's cap of {self.max_models} loaded models")
            return self._start(name, base, own_code=self.model_code_location(name))

    def _start(self, name: str, base: Path, *, own_code: Path | None = None,
               archive: bool = False) -> Answer:
        """Load one model. `own_code`: its /opt/ml/models/<name>/model/code; `archive`: a
        TargetModel archive, whose own code/ is that folder once extracted."""
        from kdiag.path.local_endpoint import LocalEndpoint
        from kdiag.serve.server import load_model

        code_dir, note = (None, "") if archive else self._code_for(name, own_code)
        try:
            ep = LocalEndpoint(base, framework_version=self.framework_version, model_name=name,
                               multi_model=True, code_dir=code_dir,
                               artifact_code=archive and self.run_model_code
                               and self.gen.name != "G1",
                               default_code_dir=self._universal_handlers if archive else None)
            if archive:
                own = None if self.gen.name == "G1" else ep.artifact_code_dir
                note = self._code_for(name, own)[1]
        except KdiagError as e:
            # TF Serving fails to load it; the container's wait for the model gives up.
            self.log(f"kdiag serve: model {name} does not load: {e}")
            return Answer(408, b"Timed out after 55 seconds", JSON, f"does not load: {e}")
        error = getattr(ep.handlers, "startup_error", None)
        if error and ep.code_dir != self._universal_handlers:
            # python_service._import_custom_modules raises inside POST /models: falcon's 500
            ep.close()
            self.log(f"kdiag serve: model {name}: {ep.code_dir}/inference.py fails at import "
                     f"({error})")
            return Answer(500, _FALCON_500, JSON, f"its inference.py fails at import: {error}")
        if self.gen.name == "G1":
            ignored = ep.artifact_code_dir if archive else self.local_path(f"{name}/model/code")
            if ignored is not None and (ignored / "inference.py").is_file():
                note += (f"; its own {ignored / 'inference.py'} is ignored (the 1.x images "
                         "read only the universal script)")
        self.log(f"kdiag serve: model {name}: {note}")
        try:
            seconds = load_model(ep)
        except KdiagError as e:
            ep.close()
            self.log(f"kdiag serve: model {name} does not load: {e}")
            return Answer(408, b"Timed out after 55 seconds", JSON, f"does not load: {e}")
        rest, grpc = self._rest_ports.pop(), self._grpc_ports.pop()
        self._models[name] = _Loaded(ep, rest, grpc)
        self.log(f"kdiag serve: loaded model {name} from {base} (versions "
                 f"{', '.join(map(str, ep.versions or ()))}) in {seconds:.1f} s")
        return Answer(200, json.dumps({"success": f"Successfully loaded model {name}, listening "
                                                  f"on rest port {rest} and grpc port {grpc}."}
                                      ).encode())

    def unload(self, name: str) -> Answer:
        if self.gen.name == "G3" and not _G3_NAME_RE.match(name):
            return _error(400, f"invalid model_name: {name!r}")
        with self._lock:
            loaded = self._models.pop(name, None)
            if loaded is None:
                return _error(404, f"Model {name} is not loaded yet")
            self._rest_ports.append(loaded.rest_port)
            self._grpc_ports.append(loaded.grpc_port)
        loaded.endpoint.close()
        return Answer(200, json.dumps({"success": f"Successfully unloaded model {name}."}
                                      ).encode())

    def _status(self, name: str) -> dict:
        from kdiag.serve.server import status_json

        ep = self._models[name].endpoint
        return json.loads(status_json(sorted(ep.versions) if ep.versions else [1]))

    def list(self) -> Answer:
        with self._lock:
            return Answer(200, json.dumps({n: self._status(n) for n in self._models}).encode())

    def describe(self, name: str) -> Answer:
        if self.gen.name == "G3" and not _G3_NAME_RE.match(name):
            return _error(400, f"invalid model_name: {name!r}")
        with self._lock:
            if name not in self._models:
                # sic: the 2.2-2.19 images drop the "not" in this one message
                word = "is not loaded yet." if self.gen.name == "G3" else "is loaded yet."
                return _error(404, f"Model {name} {word}")
            if self.gen.name != "G3":
                # The 2.2-2.19 code reads .rest_port off the list of instances: AttributeError.
                return Answer(500, _FALCON_500, JSON, "the container's GET /models/NAME bug")
            return Answer(200, json.dumps({"model": self._status(name)}).encode())

    def invoke(self, name: str | None, req: Request) -> Answer | Invocation:
        if name is None:
            if self.gen.name == "G1":  # errata §7: the handler falls through
                return _error(500, "local variable 'data' referenced before assignment")
            return _error(400, "Invocation request does not contain model name.")
        with self._lock:
            loaded = self._models.get(name)
        if loaded is None:
            return _error(404, f"Model {name} is not loaded yet.")
        return loaded.endpoint.invoke(req, wire=False)

    # -- the Runtime's TargetModel ---------------------------------------------------------
    def target_model(self, target: str) -> tuple[str | None, str | None]:
        """(model name, None) once DIR/target is loaded, or (None, the Runtime's error)."""
        name = target_model_name(target)
        with self._lock:
            if name in self._models:
                return name, None
            archive = self.local_path(target)
            if archive is None or not archive.is_file():
                # [inferred] AWS's wording for a TargetModel with no object behind it.
                return None, (f"Failed to download model data(bucket: local, key: {target}). "
                              "Please ensure that there is an object located at the URL and "
                              "that the role passed to CreateModel has permissions to download "
                              "the model.")
            if len(self._models) >= self.max_models:
                victim = next(iter(self._models))  # SageMaker unloads to make room
                self.log(f"kdiag serve: unloading {victim} to make room for {target}")
                self.unload(victim)
            ans = self._start(name, archive, archive=True)
        if ans.status != 200:
            return None, f"Model {target} could not be loaded: {ans.note or ans.body.decode()}"
        return name, None

    def close(self) -> None:
        with self._lock:
            models, self._models = self._models, {}
        for loaded in models.values():
            loaded.endpoint.close()

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._models)


def _walk(base: Path):
    import os

    count = 0
    for cur, dirs, files in os.walk(base, followlinks=False):
        count += len(dirs) + len(files)
        if count > 100_000:
            return
        yield cur, dirs, files
