"""A local endpoint: the SageMaker TF Serving container in front of a real SavedModel.

`replay` and `serve` go through LocalEndpoint, a RequestPath (the stages `validate` walks too)
whose model runs. TensorFlow is imported on the first model call.
"""

from __future__ import annotations

import shutil
import threading
import weakref
from pathlib import Path

import numpy as np

from kdiag.diagnosis.findings import explain_errors
from kdiag.errors import KdiagError
from kdiag.model.archive import extract_archive
from kdiag.model.artifact import read_model
from kdiag.model.graph_trust import require_trusted, trusted
from kdiag.path.container import generation_for
from kdiag.path.request_path import RequestPath


class LocalEndpoint(RequestPath):
    """One model artifact served as the container would serve it, the SavedModel running
    (njs path, or inference.py handlers when `code_dir` is given: that executes user code).

    An archive is extracted safely to a temporary folder, removed by `close()`."""

    def __init__(self, model: str | Path, *, framework_version: str | None = None,
                 code_dir: Path | None = None, model_name: str | None = None,
                 multi_model: bool = False, artifact_code: bool = False,
                 trust_model: bool | None = None,
                 default_code_dir: Path | None = None) -> None:
        """`artifact_code=True` runs the artifact's own code/inference.py (the user's opt-in,
        as --code): without it, that code is reported (KD230), never run.
        `default_code_dir`: the handlers when the model brings no inference.py of its own
        that runs (a multi-model endpoint's universal script; already opted in)."""
        from kdiag.model.target import findings_on_endpoint, target_from_artifact

        path = Path(model)
        self._tmp: Path | None = None
        uploaded = read_model(path)  # as the container's model discovery sees it
        on_disk = uploaded
        try:
            if uploaded.kind == "archive":
                self._tmp = extract_archive(path)
                # close() removes it; an endpoint dropped without close() (a notebook's
                # kdiag.replay left half-way) removes it when collected or at exit.
                self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
                on_disk = read_model(self._tmp)
            if on_disk.savedmodel_dir is None or not on_disk.signatures:
                raise KdiagError(f"{model} holds no SavedModel kdiag can run. "
                                 + explain_errors(uploaded.findings))
            # A SavedModel is a program: refuse, before anything runs, one that writes, deletes
            # or lists files (KD052), unless the user passed --trust-model.
            # (trust_model None: the CLI's --trust-model, process-wide.)
            self._trust = trusted() if trust_model is None else trust_model
            require_trusted(on_disk.file_ops, str(model), self._trust)
            # The artifact's own code/ folder (what the container finds at /opt/ml/model/code).
            root = self._tmp if self._tmp is not None else path
            self.artifact_code_dir = root / "code" if (root / "code").is_dir() else None
            if artifact_code and code_dir is None:
                code_dir = self.artifact_code_dir
            if default_code_dir is not None and (
                    code_dir is None or not (code_dir / "inference.py").is_file()):
                code_dir = default_code_dir
            target = target_from_artifact(uploaded, code_dir=code_dir, model_name=model_name)
        except BaseException:
            self.close()  # the extraction folder goes on every error, Ctrl-C included
            raise
        self.savedmodel_dir = on_disk.savedmodel_dir
        self.startup_failure: str | None = None  # set by kdiag serve: the container won't start
        # e.g. KD230: inference.py present, not run (a note on a 1.x multi-model endpoint)
        self.target_findings = findings_on_endpoint(
            target.findings, multi_model=multi_model,
            generation_name=generation_for(framework_version).name)
        # The archive's other models (several base folders): TF Serving loads them all, and
        # tfs-model-name routes to them. Opened on first use.
        lay = on_disk.layout
        self.layout = lay
        disk_root = self._tmp if self._tmp is not None else path
        self._sibling_bases = {} if lay is None else {
            m.name: disk_root / m.base for m in lay.models[1:] if m.base}
        self._siblings: dict[str, LocalEndpoint] = {}
        self._framework_version = framework_version
        self._runner = None
        self._lock = threading.Lock()
        super().__init__(target.signatures, generation_for(framework_version),
                         model_name=target.model_name, versions=target.versions,
                         code_dir=code_dir, has_requirements=target.has_requirements,
                         has_lib=target.has_lib, run=self._run_model, multi_model=multi_model)

    # -- the model -------------------------------------------------------------------------
    @property
    def runner(self):
        with self._lock:
            if self._runner is None:
                from kdiag.model.runner import load_runner, require_tensorflow

                require_tensorflow("Running the model")
                self._runner = load_runner(self.savedmodel_dir, trust_model=self._trust)
            return self._runner

    def _run_model(self, tensors: dict[str, np.ndarray], signature_name: str | None = None):
        return self.runner.run(tensors, signature_name)

    # -- several models in one archive -----------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        """Every model TF Serving serves from this artifact, the default first."""
        return [self.model_name, *self._sibling_bases]

    def model_endpoint(self, name: str) -> LocalEndpoint | None:
        """The endpoint answering for model `name` (self for the default), or None."""
        if name == self.model_name:
            return self
        base = self._sibling_bases.get(name)
        if base is None:
            return None
        with self._lock:
            sib = self._siblings.get(name)
            if sib is None:
                sib = LocalEndpoint(base, framework_version=self._framework_version,
                                    model_name=name, multi_model=self.multi_model)
                self._siblings[name] = sib
            return sib

    def discovered_models(self) -> list[tuple[str, str, list[str]]]:
        """(name, base folder, versions) of every model, as the container's discovery lists
        them (a lone version folder: the archive it would be packed as)."""
        if self.layout is None or not self.layout.models:
            return [(self.model_name, "", [str(v) for v in (self.versions or (1,))])]
        return [(self.model_name if i == 0 else m.name, m.base, m.versions)
                for i, m in enumerate(self.layout.models)]

    def route_default_to(self, name: str) -> None:
        """SAGEMAKER_TFS_DEFAULT_MODEL_NAME: requests without tfs-model-name go to `name`.
        Raises KdiagError when no model of the artifact has that name."""
        if name not in self.model_names:
            raise KdiagError(f"SAGEMAKER_TFS_DEFAULT_MODEL_NAME={name} names no model of this "
                             f"artifact (models: {', '.join(self.model_names)})")
        self._default_route = name

    def invoke(self, req, *, wire: bool = True):
        """A request whose tfs-model-name names another model of the archive is answered by
        that model (njs and default-handler paths; with user handlers the default model's)."""
        if self._sibling_bases and self.code_dir is None:
            from kdiag.path.container import parse_custom_attributes

            attrs = parse_custom_attributes(req.custom_attributes, self.gen, "njs",
                                            default_model=self.model_name)
            name = attrs.get("tfs-model-name") if isinstance(attrs, dict) else None
            name = name or getattr(self, "_default_route", None)
            other = self.model_endpoint(name) if name else None
            if other is not None and other is not self:
                return other.invoke(req, wire=wire)
        return super().invoke(req, wire=wire)

    def close(self) -> None:
        for sib in list(getattr(self, "_siblings", {}).values()):
            sib.close()
        if getattr(self, "_tmp", None) is not None:
            self._cleanup()  # shutil.rmtree, once
            self._tmp = None

    def __enter__(self) -> LocalEndpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
