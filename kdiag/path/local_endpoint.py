"""A local endpoint: the SageMaker TF Serving container in front of a real SavedModel.

`replay` and `serve` go through LocalEndpoint, a RequestPath (the stages `validate` walks too)
whose model runs. TensorFlow is imported on the first model call.
"""

from __future__ import annotations

import shutil
import threading
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
                 trust_model: bool | None = None) -> None:
        from kdiag.model.target import target_from_artifact

        path = Path(model)
        self._tmp: Path | None = None
        uploaded = read_model(path)  # as the container's model discovery sees it
        on_disk = uploaded
        try:
            if uploaded.kind == "archive":
                self._tmp = extract_archive(path)
                on_disk = read_model(self._tmp)
            if on_disk.savedmodel_dir is None or not on_disk.signatures:
                raise KdiagError(f"{model} holds no SavedModel kdiag can run. "
                                 + explain_errors(uploaded.findings))
            # A SavedModel is a program: refuse, before anything runs, one that writes, deletes
            # or lists files (KD052), unless the user passed --trust-model.
            # (trust_model None: the CLI's --trust-model, process-wide.)
            self._trust = trusted() if trust_model is None else trust_model
            require_trusted(on_disk.file_ops, str(model), self._trust)
            target = target_from_artifact(uploaded, code_dir=code_dir, model_name=model_name)
        except BaseException:
            self.close()  # the extraction folder goes on every error, Ctrl-C included
            raise
        self.savedmodel_dir = on_disk.savedmodel_dir
        self.target_findings = target.findings  # e.g. KD230: inference.py present, not run
        self._runner = None
        self._lock = threading.Lock()
        super().__init__(target.signatures, generation_for(framework_version),
                         model_name=target.model_name, versions=target.versions,
                         code_dir=code_dir, has_requirements=target.has_requirements,
                         has_lib=target.has_lib, run=self._run_model)

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

    def close(self) -> None:
        if getattr(self, "_tmp", None) is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> LocalEndpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
