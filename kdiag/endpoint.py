"""A local endpoint: the SageMaker TF Serving container in front of a real SavedModel.

`replay` and `serve` go through LocalEndpoint, a RequestPath (the stages `validate` walks too)
whose model runs. TensorFlow is imported on the first model call.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np

from kdiag.artifacts import read_model
from kdiag.artifacts.archive import extract_archive
from kdiag.errors import KdiagError
from kdiag.findings import explain_errors
from kdiag.path.container import generation_for
from kdiag.path.request_path import RequestPath


class LocalEndpoint(RequestPath):
    """One model artifact served as the container would serve it, the SavedModel running
    (njs path, or inference.py handlers when `code_dir` is given: that executes user code).

    An archive is extracted safely to a temporary folder, removed by `close()`."""

    def __init__(self, model: str | Path, *, framework_version: str | None = None,
                 code_dir: Path | None = None, model_name: str | None = None) -> None:
        path = Path(model)
        self._tmp: Path | None = None
        art = read_model(path)
        if art.kind == "archive":
            self._tmp = extract_archive(path)
            art_disk = read_model(self._tmp)
            art_disk.model_name = art.model_name
            art = art_disk
        if art.savedmodel_dir is None or not art.signatures:
            self.close()
            raise KdiagError(f"{model} holds no SavedModel kdiag can run. "
                             + explain_errors(art.findings))
        self.artifact = art
        self.savedmodel_dir = art.savedmodel_dir
        lay = art.layout
        # inference.py present but not run (no code_dir): serve as if code/ were absent.
        uses_code = bool(lay) and (not lay.inference_py or code_dir is not None)
        self.unrun_code = bool(lay and lay.inference_py and code_dir is None)
        self._runner = None
        self._lock = threading.Lock()
        super().__init__(
            art.signatures, generation_for(framework_version),
            model_name=model_name or (art.model_name if art.kind == "archive" else None)
            or "model",
            versions=tuple(int(v) for v in lay.default_model.loadable_versions)
            if lay is not None and lay.default_model is not None else
            ((int(art.version),) if art.version and art.version.isdigit() else None),
            code_dir=code_dir,
            has_requirements=uses_code and "code/requirements.txt" in lay.python_path_files,
            has_lib=uses_code and "code/lib" in lay.python_path_files,
            run=self._run_model)

    # -- the model -------------------------------------------------------------------------
    @property
    def runner(self):
        with self._lock:
            if self._runner is None:
                from kdiag.runner import load_runner, require_tensorflow

                require_tensorflow("Running the model")
                self._runner = load_runner(self.savedmodel_dir)
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
