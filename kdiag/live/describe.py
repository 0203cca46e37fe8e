"""DescribeEndpoint -> DescribeEndpointConfig -> DescribeModel, and what is wrong there.

The chain and the members read are those of botocore's sagemaker 2017-07-24 service model
(aws-apis-detail.md §2). The container image's tag gives the TensorFlow version, which picks the
container generation kdiag emulates (kdiag.path.generations); the model's Environment holds the
container settings (SAGEMAKER_TFS_DEFAULT_MODEL_NAME and friends).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kdiag.diagnosis.findings import Finding
from kdiag.errors import KdiagError

if TYPE_CHECKING:
    from kdiag.live.session import AwsClients

STAGE = "endpoint"
SERVING = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack",
                     "UpdateRollbackFailed"})  # statuses in which the endpoint takes requests
# [model] EndpointStatus doc strings: OutOfService, Creating, Deleting and Failed take no traffic.

# Repository names of SageMaker's TensorFlow Serving images (DLC and the legacy container),
# optionally -eia / -graviton; the tag starts with the TensorFlow version.
_TFS_REPO = re.compile(r"(?:^|/)(tensorflow-inference|sagemaker-tensorflow-serving)"
                       r"(?:-eia|-graviton|-neuron\w*)?$")
_OSS_TFS_REPO = re.compile(r"(?:^|/)tensorflow/serving$|(?:^|/)tensorflow-serving$")
# Environment entries shown masked: people do put API keys and passwords there.
_SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE", re.I)
_VERSION_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-_.].*)?$")


@dataclass
class ImageInfo:
    image: str
    kind: str  # "sagemaker-tfs" | "tf-serving" | "other" | "unknown"
    framework_version: str | None
    note: str | None = None


def image_info(image: str | None) -> ImageInfo:
    """What the container image says: SageMaker's TF Serving container or not, and its TF
    version (`...tensorflow-inference:2.13-cpu` -> "2.13",
    `...sagemaker-tensorflow-serving:1.15.0-cpu` -> "1.15")."""
    if not image:
        return ImageInfo("", "unknown", None, "the model has no container image")
    ref = image.strip()
    digest = "@" in ref
    name, _, tag = ref.split("@", 1)[0].rpartition(":")
    if not name or "/" in tag:  # no tag: "repo" or "host:port/repo"
        name, tag = ref.split("@", 1)[0], ""
    repo = name.split("/", 1)[1] if "." in name.split("/", 1)[0] and "/" in name else name
    m = _VERSION_TAG.match(tag) if tag else None
    version = f"{m.group(1)}.{m.group(2)}" if m else None
    if _TFS_REPO.search(repo):
        note = None
        if version is None:
            note = ("the image is pinned by digest, so its TensorFlow version is unknown"
                    if digest else f"the image tag {tag or '(none)'!r} names no TensorFlow version")
        return ImageInfo(ref, "sagemaker-tfs", version, note)
    if _OSS_TFS_REPO.search(repo):
        return ImageInfo(ref, "tf-serving", version,
                         "TF Serving's own image, not SageMaker's container: there is no nginx "
                         "or CSV/JSON-lines handling in front of TF Serving")
    return ImageInfo(ref, "other", None, "not a SageMaker TensorFlow Serving image")


@dataclass
class VariantInfo:
    name: str
    model_name: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    desired_instance_count: int | None = None
    serverless: dict | None = None
    weight: float | None = None
    images: list[str] = field(default_factory=list)
    status: list[dict] = field(default_factory=list)


@dataclass
class ModelInfo:
    name: str
    image: ImageInfo | None = None
    model_data_url: str | None = None
    model_data_source: dict | None = None
    environment: dict[str, str] = field(default_factory=dict)
    mode: str | None = None
    containers: int = 1
    default_model_name: str | None = None  # SAGEMAKER_TFS_DEFAULT_MODEL_NAME
    error: str | None = None


@dataclass
class EndpointDescription:
    name: str
    arn: str | None = None
    status: str | None = None
    failure_reason: str | None = None
    config_name: str | None = None
    variants: list[VariantInfo] = field(default_factory=list)
    data_capture: dict | None = None
    models: list[ModelInfo] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    region: str | None = None

    @property
    def serving(self) -> bool:
        return self.status in SERVING

    @property
    def primary_model(self) -> ModelInfo | None:
        return self.models[0] if self.models else None

    @property
    def framework_version(self) -> str | None:
        m = self.primary_model
        return m.image.framework_version if m and m.image else None

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["findings"] = [f.to_dict() for f in self.findings]
        doc["framework_version"] = self.framework_version
        return doc


def _f(code: str, severity: str, message: str, fix: str = "") -> Finding:
    return Finding(code, severity, STAGE, message, fix)  # type: ignore[arg-type]


def describe_endpoint(clients: AwsClients, name: str) -> EndpointDescription:
    """Walk the control plane for `name`. Raises KdiagError when the endpoint does not exist or
    the control plane cannot be used at all; everything else ends up as findings."""
    from botocore.exceptions import BotoCoreError, ClientError

    from kdiag.live.session import error_code, error_message, fatal_error

    sm = clients.sagemaker
    try:
        ep = sm.describe_endpoint(EndpointName=name)
    except (ClientError, BotoCoreError) as e:
        fatal = fatal_error(e, clients, "sagemaker", f"describe endpoint {name!r}")
        if fatal:
            raise fatal from None
        msg = error_message(e)
        if error_code(e) in ("ValidationException", "ValidationError") and (
                "Could not find" in msg or "not found" in msg.lower()):
            raise KdiagError(clients.redact(
                f"Endpoint {name!r} was not found in region {clients.region} ({msg}). Check "
                "the name (aws sagemaker list-endpoints), --region and --profile (the "
                "account).")) from None
        raise KdiagError(clients.redact(
            f"DescribeEndpoint {name!r} failed: {error_code(e) or type(e).__name__}: {msg}"
        )) from None

    desc = EndpointDescription(name=ep.get("EndpointName", name), arn=ep.get("EndpointArn"),
                               status=ep.get("EndpointStatus"),
                               failure_reason=ep.get("FailureReason"),
                               config_name=ep.get("EndpointConfigName"), region=clients.region)
    summary = {v.get("VariantName"): v for v in ep.get("ProductionVariants") or []}
    config: dict[str, Any] = {}
    if desc.config_name:
        try:
            config = sm.describe_endpoint_config(EndpointConfigName=desc.config_name)
        except (ClientError, BotoCoreError) as e:
            fatal = fatal_error(e, clients, "sagemaker", "describe the endpoint config")
            if fatal:
                raise fatal from None
            desc.findings.append(_f("KD806", "warning", clients.redact(
                f"The endpoint config {desc.config_name!r} cannot be read "
                f"({error_code(e)}: {error_message(e)}): it may have been deleted after the "
                "endpoint was created."), "Keep endpoint configs while endpoints use them."))
    for pv in config.get("ProductionVariants") or [{"VariantName": n} for n in summary]:
        vname = pv.get("VariantName", "")
        s = summary.get(vname, {})
        desc.variants.append(VariantInfo(
            name=vname, model_name=pv.get("ModelName"), instance_type=pv.get("InstanceType"),
            instance_count=s.get("CurrentInstanceCount", pv.get("InitialInstanceCount")),
            desired_instance_count=s.get("DesiredInstanceCount"),
            serverless=s.get("CurrentServerlessConfig") or pv.get("ServerlessConfig"),
            weight=s.get("CurrentWeight", pv.get("InitialVariantWeight")),
            images=[d.get("SpecifiedImage", "") for d in s.get("DeployedImages") or []],
            status=[{k: str(v) for k, v in st.items()} for st in s.get("VariantStatus") or []]))
    capture = config.get("DataCaptureConfig") or ep.get("DataCaptureConfig")
    desc.data_capture = _jsonable(capture) if capture else None

    seen: set[str] = set()
    for v in desc.variants:
        if not v.model_name or v.model_name in seen:
            continue
        seen.add(v.model_name)
        desc.models.append(_describe_model(clients, v.model_name))
    desc.findings += endpoint_findings(desc)
    return desc


def _describe_model(clients: AwsClients, model_name: str) -> ModelInfo:
    from botocore.exceptions import BotoCoreError, ClientError

    from kdiag.live.session import error_code, error_message, fatal_error

    try:
        m = clients.sagemaker.describe_model(ModelName=model_name)
    except (ClientError, BotoCoreError) as e:
        fatal = fatal_error(e, clients, "sagemaker", f"describe model {model_name!r}")
        if fatal:
            raise fatal from None
        return ModelInfo(name=model_name, error=clients.redact(
            f"{error_code(e) or type(e).__name__}: {error_message(e)}"))
    containers = m.get("Containers") or []
    primary = m.get("PrimaryContainer") or (containers[0] if containers else {})
    env = {str(k): str(v) for k, v in (primary.get("Environment") or {}).items()}
    source = primary.get("ModelDataSource")
    return ModelInfo(
        name=model_name, image=image_info(primary.get("Image")),
        model_data_url=primary.get("ModelDataUrl"),
        model_data_source=_jsonable(source) if source else None,
        environment={k: "***" if _SECRET_ENV.search(k) else v for k, v in env.items()},
        mode=primary.get("Mode"), containers=max(1, len(containers)),
        default_model_name=env.get("SAGEMAKER_TFS_DEFAULT_MODEL_NAME"))


def endpoint_findings(desc: EndpointDescription) -> list[Finding]:
    """What is wrong, or worth knowing, in the description alone."""
    out: list[Finding] = []
    status = desc.status or "unknown"
    reason = f" FailureReason: {desc.failure_reason}" if desc.failure_reason else ""
    if status in ("Failed", "UpdateRollbackFailed"):
        out.append(_f("KD800", "error",
                      f"Endpoint {desc.name!r} is {status}.{reason}",
                      "Read the FailureReason and the endpoint's CloudWatch logs; a model the "
                      "container cannot load (kdiag inspect model.tar.gz) is the usual cause. "
                      "A Failed endpoint can only be deleted and created again."))
    elif status not in SERVING:
        out.append(_f("KD800", "error",
                      f"Endpoint {desc.name!r} is {status}, not InService: it takes no "
                      f"requests, so kdiag sends none.{reason}",
                      "Wait for InService (aws sagemaker wait endpoint-in-service "
                      f"--endpoint-name {desc.name}) and probe again."))
    elif status != "InService":
        out.append(_f("KD801", "warning",
                      f"Endpoint {desc.name!r} is {status}: it still serves, but answers may "
                      "come from the old or the new configuration.",
                      "Probe again once it is InService."))
    for v in desc.variants:
        if v.serverless is None and v.instance_count == 0:
            out.append(_f("KD806", "warning",
                          f"Variant {v.name!r} has no instances running.",
                          "Check the variant's autoscaling settings."))
        for st in v.status:
            if st.get("Status") and st.get("StatusMessage"):
                out.append(_f("KD806", "info", f"Variant {v.name!r}: {st['Status']}: "
                                               f"{st['StatusMessage']}"))
    for m in desc.models:
        if m.error:
            out.append(_f("KD806", "warning", f"Model {m.name!r} cannot be described: {m.error}",
                          "The endpoint keeps running a deleted model; kdiag cannot see its "
                          "image or artifact."))
            continue
        img = m.image
        if img is not None and img.kind == "sagemaker-tfs" and img.framework_version is None:
            out.append(_f("KD802", "info",
                          f"Model {m.name!r}: {img.note}; kdiag assumes the newest container "
                          "generation.", "Pass --framework-version X.Y."))
        elif img is not None and img.kind != "sagemaker-tfs":
            out.append(_f("KD803", "warning",
                          f"Model {m.name!r} runs {img.image!r}: {img.note}. kdiag's predictions "
                          "model SageMaker's TensorFlow Serving container and may not apply.",
                          "Use the tensorflow-inference image, or read kdiag's predictions as "
                          "TF Serving's alone (--framework-version)."))
        if m.containers > 1:
            out.append(_f("KD804", "info",
                          f"Model {m.name!r} has {m.containers} containers (inference pipeline "
                          "or multi-container); kdiag looks at the first one only."))
        if (m.mode or "") == "MultiModel":
            out.append(_f("KD804", "info",
                          f"Model {m.name!r} is a multi-model endpoint: requests need "
                          "TargetModel, which kdiag does not send."))
        if m.model_data_url is None and m.model_data_source:
            out.append(_f("KD808", "info",
                          f"Model {m.name!r} loads uncompressed model data "
                          f"({(m.model_data_source.get('S3DataSource') or {}).get('S3Uri')}): "
                          "there is no model.tar.gz for --fetch-model.",
                          "Pass --model with a local copy, or --signature."))
    cap = desc.data_capture
    if cap and cap.get("EnableCapture", True) and cap.get("CaptureOptions") is not None and \
            not cap.get("CaptureContentTypeHeader"):
        out.append(_f("KD805", "info",
                      "Data Capture is on without CaptureContentTypeHeader: every captured "
                      "payload is stored as BASE64 (kdiag diff decodes it).",
                      "Set CaptureContentTypeHeader JsonContentTypes/CsvContentTypes to keep "
                      "captures readable."))
    return out


def _jsonable(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {str(k): _jsonable(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_jsonable(v) for v in doc]
    if isinstance(doc, str | int | float | bool) or doc is None:
        return doc
    return str(doc)
