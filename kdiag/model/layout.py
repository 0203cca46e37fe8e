"""The SageMaker TF Serving container's model discovery, applied to a file list.

The same rules serve a model.tar.gz (member names) and a folder on disk (a walk), so the layout
lint never needs to extract anything. Source: tfs_utils.find_models / find_model_versions in
aws/deep-learning-containers (tensorflow/inference/docker/build_artifacts/sagemaker/tfs_utils.py)
and the legacy aws/sagemaker-tensorflow-serving-container, which agree on these rules:
- every file named exactly `saved_model.pb` whose parent directory is all digits marks a model;
  the model's base path is the grandparent, and its name is the base path's basename;
- every all-digit directory under a base path is listed as a version (leading zeros stripped);
  TF Serving loads all of them, and serves the highest by default;
- `code/inference.py` is only looked for at the root (/opt/ml/model/code).
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field

from kdiag.diagnosis.findings import Finding

_DIGITS = re.compile(r"^\d+$")
_LOOKS_LIKE_VERSION = re.compile(r"^v?\d+[.\-]\d*$|^v\d+$")
ROOT_NAME = "model"  # the archive is extracted to /opt/ml/model


@dataclass
class ModelLocation:
    name: str
    base: str  # relative to the archive root; "" is the root itself
    versions: list[str]  # numeric directory names as found
    loadable_versions: list[str]  # those holding a saved_model.pb

    @property
    def served_version(self) -> str | None:
        if not self.versions:
            return None
        return max(self.versions, key=lambda v: int(v))

    def pb_path(self, version: str) -> str:
        return posixpath.join(self.base, version, "saved_model.pb") if self.base else \
            posixpath.join(version, "saved_model.pb")


@dataclass
class Layout:
    models: list[ModelLocation] = field(default_factory=list)
    inference_py: str | None = None  # "code/inference.py" when the container will find it
    python_path_files: list[str] = field(default_factory=list)  # code/requirements.txt, code/lib
    misplaced_code: list[str] = field(default_factory=list)
    keras_files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def default_model(self) -> ModelLocation | None:
        return self.models[0] if self.models else None


def normalise(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def analyse(files: list[str], dirs: list[str] | None = None) -> Layout:
    """Apply the container's rules to relative paths (files) and directories (dirs).

    `dirs` may be omitted: every parent of a file counts as a directory.
    """
    files = sorted({n for n in map(normalise, files) if n})
    file_set = set(files)
    all_dirs = {n for n in map(normalise, dirs or []) if n}
    for f in files:
        parent = f.rpartition("/")[0]
        while parent and parent not in all_dirs:  # stop at a parent already seen: linear
            all_dirs.add(parent)
            parent = parent.rpartition("/")[0]
    # Children of each folder, built once, so each model's version listing is a lookup.
    numeric_children: dict[str, list[str]] = {}
    for d in all_dirs:
        head, _, tail = d.rpartition("/")
        if tail.isdecimal():
            numeric_children.setdefault(head, []).append(tail)
    layout = Layout()

    bases: dict[str, ModelLocation] = {}
    for f in files:
        parts = f.split("/")
        if parts[-1] != "saved_model.pb" or len(parts) < 2 or not _DIGITS.match(parts[-2]):
            continue
        base = "/".join(parts[:-2])
        if base in bases:
            continue
        name = posixpath.basename(base) if base else ROOT_NAME
        prefix = base + "/" if base else ""
        versions = sorted(numeric_children.get(base, []), key=int)
        loadable = [v for v in versions if f"{prefix}{v}/saved_model.pb" in file_set]
        bases[base] = ModelLocation(name=name, base=base, versions=versions,
                                    loadable_versions=loadable)
    layout.models = list(bases.values())

    if "code/inference.py" in file_set:
        layout.inference_py = "code/inference.py"
    layout.python_path_files = [p for p in ("code/requirements.txt", "code/lib")
                                if p in file_set or p in all_dirs]
    layout.misplaced_code = [f for f in files
                             if f.endswith("code/inference.py") and f != "code/inference.py"]
    layout.keras_files = [f for f in files if f.endswith((".keras", ".h5", ".hdf5"))]
    layout.findings = _findings(layout, files, all_dirs)
    return layout


def _findings(layout: Layout, files: list[str], dirs: set[str]) -> list[Finding]:
    out: list[Finding] = []
    pbs = [f for f in files if f.rpartition("/")[2] == "saved_model.pb"]
    pbtxts = [f for f in files if f.rpartition("/")[2] == "saved_model.pbtxt"]
    if not layout.models:
        if layout.keras_files and not pbs:
            out.append(Finding(
                "KD003", "error", "artifact",
                f"Only Keras files ({', '.join(layout.keras_files[:3])}): the TF Serving container "
                "serves SavedModels only, finds no model, exits, and the endpoint fails its "
                "health check.",
                "Export a SavedModel under a numeric version folder: model.export('export/1') "
                "(Keras 3), then tar -czf model.tar.gz -C export 1 code",
            ))
        elif pbs:
            where = ", ".join(pbs[:3])
            out.append(Finding(
                "KD001", "error", "artifact",
                f"saved_model.pb is not inside an all-digit version folder ({where}): the "
                "container finds no model (\"no SavedModel bundles found\") and the endpoint "
                "fails its health check.",
                "Put the SavedModel under a numeric version folder, e.g. 1/saved_model.pb and "
                "1/variables/, at the root of model.tar.gz.",
            ))
        elif pbtxts:
            out.append(Finding(
                "KD007", "error", "artifact",
                "Only saved_model.pbtxt: the container looks for saved_model.pb and finds no model.",
                "Export with tf.saved_model.save or model.export(), which write saved_model.pb.",
            ))
        else:
            out.append(Finding(
                "KD001", "error", "artifact",
                "No SavedModel (saved_model.pb) anywhere: the container finds no model and the "
                "endpoint fails its health check.",
                "Export the model with model.export('export/1') and package export/ as "
                "model.tar.gz with 1/ at its root.",
            ))
    odd_by_parent: dict[str, list[str]] = {}
    for d in dirs:
        head, _, tail = d.rpartition("/")
        if _LOOKS_LIKE_VERSION.match(tail):
            odd_by_parent.setdefault(head, []).append(d)
    for m in layout.models:
        missing = [v for v in m.versions if v not in m.loadable_versions]
        if missing:
            out.append(Finding(
                "KD008", "error", "artifact",
                f"Model {m.name!r}: version folder(s) {', '.join(missing)} hold no saved_model.pb, "
                "but the container lists every numeric folder as a version: TF Serving fails "
                "to load it and the endpoint never becomes healthy.",
                "Remove the empty or partial numeric folders, or finish those exports.",
            ))
        odd = sorted(odd_by_parent.get(m.base, []))
        if odd:
            out.append(Finding(
                "KD009", "warning", "artifact",
                f"Model {m.name!r}: folder(s) {', '.join(odd)} look like versions but are not all "
                "digits, so the container ignores them.",
                "Name version folders with digits only (1, 2, 20240101).",
            ))
    if len(layout.models) > 1:
        names = [m.name for m in layout.models]
        dup = sorted(n for n, c in Counter(names).items() if c > 1)
        out.append(Finding(
            "KD004", "warning", "artifact",
            f"{len(names)} models ({', '.join(names)}): without SAGEMAKER_TFS_DEFAULT_MODEL_NAME "
            "the default is whichever the container finds first (file-system order), so "
            "requests without tfs-model-name may reach the wrong model.",
            "Set SAGEMAKER_TFS_DEFAULT_MODEL_NAME in the model's environment, or send "
            "CustomAttributes='tfs-model-name=<name>' with every request.",
        ))
        if dup:
            out.append(Finding(
                "KD010", "error", "artifact",
                f"Several models share the name {', '.join(dup)} (same folder name in different "
                "parents): TF Serving refuses a config with duplicate model names.",
                "Give each model's base folder a unique name.",
            ))
    for path in layout.misplaced_code:
        out.append(Finding(
            "KD002", "error", "artifact",
            f"{path} is not at the archive root: the container only loads code/inference.py from "
            "/opt/ml/model/code, so your handlers are silently ignored and requests go through "
            "the default JSON/CSV path (e.g. 415 for content types your handler supports).",
            "Put code/ at the top level of model.tar.gz, next to the version folder: "
            "tar -czf model.tar.gz 1 code",
        ))
    if layout.python_path_files and not layout.inference_py:
        out.append(Finding(
            "KD011", "warning", "artifact",
            f"{' and '.join(layout.python_path_files)} without code/inference.py: on container "
            "generations from TF 2.2 (2023 images) on, this alone switches on the Python service, "
            "whose default handler forwards the raw body unchanged: no CSV conversion, no "
            "wrapping of bare JSON lists.",
            "Send TF Serving JSON ({\"instances\": ...}) or add a code/inference.py; remove "
            "requirements.txt/lib if you do not need them.",
        ))
    for m in layout.models:
        served = m.served_version
        out.append(Finding(
            "KD005", "info", "artifact",
            f"The container will serve model {m.name!r} from /opt/ml/model/{m.base or ''}"
            f"{'/' if m.base else ''} (versions {', '.join(m.versions)}; default version "
            f"{int(served) if served else '-'}).",
            "",
        ))
    return out
