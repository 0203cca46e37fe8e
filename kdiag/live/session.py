"""boto3 clients for a probe: one session, explicit timeouts and retries, per-service endpoint URLs.

Why explicit: boto3's defaults (legacy retry mode, 60 s read timeout, five tries) can turn one
probe of a production endpoint into five invocations and five minutes (aws-apis-detail.md §1.3,
§6.6). The runtime client never retries by itself (kdiag's own loop in kdiag.live.invoke decides
what is worth retrying); the read-only control-plane, logs and S3 clients use botocore's
"standard" mode, which retries only throttling and transient errors, a bounded number of times.

Credentials come from the standard chain (environment, --profile, SSO, instance role). They are
never printed: `Redactor` scrubs the resolved key id, secret and session token, and anything
shaped like a signature or an access key id, from every text kdiag shows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from kdiag.errors import KdiagError
from kdiag.redact import mask, mask_tree

SERVICES = ("sagemaker-runtime", "sagemaker", "logs", "s3")
USER_AGENT = "kdiag-probe"

@dataclass
class AwsOptions:
    """How to reach AWS. `endpoint_url` applies to every service without its own override;
    None everywhere means botocore's own resolution (AWS_ENDPOINT_URL_* variables included)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    runtime_endpoint_url: str | None = None
    sagemaker_endpoint_url: str | None = None
    logs_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    timeout: float = 70.0  # read timeout per call; AWS advises 70 s for InvokeEndpoint (§1.6)
    connect_timeout: float = 5.0
    control_plane_attempts: int = 3  # botocore "standard" mode, total tries
    max_pool_connections: int = 10

    def url_for(self, service: str) -> str | None:
        own = {"sagemaker-runtime": self.runtime_endpoint_url,
               "sagemaker": self.sagemaker_endpoint_url, "logs": self.logs_endpoint_url,
               "s3": self.s3_endpoint_url}[service]
        return own or self.endpoint_url


class Redactor:
    """Removes credentials from text. Knows the resolved secrets once clients exist."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets = [s for s in (secrets or []) if s and len(s) >= 4]

    def add(self, *secrets: str | None) -> None:
        self._secrets += [s for s in secrets if s and len(s) >= 4 and s not in self._secrets]

    def __call__(self, text: str) -> str:
        return mask(text, self._secrets)

    def tree(self, doc: Any) -> Any:
        """Redact every string in a JSON-like document."""
        return mask_tree(doc, self._secrets)


@dataclass
class AwsClients:
    """Lazily created clients sharing one boto3 session. Thread-safe creation."""

    options: AwsOptions = field(default_factory=AwsOptions)
    redact: Redactor = field(default_factory=Redactor)
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def session(self) -> Any:
        if self._session is None:
            self._session = _make_session(self.options, self.redact)
        return self._session

    @property
    def region(self) -> str | None:
        return self.session.region_name

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = _make_client(self.session, service, self.options)
            return self._clients[service]

    @property
    def runtime(self) -> Any:
        return self.client("sagemaker-runtime")

    @property
    def sagemaker(self) -> Any:
        return self.client("sagemaker")

    @property
    def logs(self) -> Any:
        return self.client("logs")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    def where(self, service: str) -> str:
        """Where calls to `service` go, for messages (never with credentials)."""
        url = self.options.url_for(service)
        if url:
            return url
        try:
            return self.client(service).meta.endpoint_url
        except KdiagError:
            return f"{service} (default endpoint)"


def _make_session(opts: AwsOptions, redact: Redactor) -> Any:
    import boto3
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        session = boto3.Session(profile_name=opts.profile, region_name=opts.region)
    except ProfileNotFound:
        raise KdiagError(f"AWS profile {opts.profile!r} is not in your AWS config or credentials "
                         "files: check the name (aws configure list-profiles) or drop --profile "
                         "to use the default credential chain.") from None
    except BotoCoreError as e:
        raise KdiagError(redact(f"Cannot set up the AWS session: {e}. Check your AWS config "
                                "files and environment variables.")) from None
    if not session.region_name:
        raise KdiagError("No AWS region: pass --region (e.g. --region us-east-1), set "
                         "AWS_REGION, or give the profile a region in ~/.aws/config.")
    try:
        creds = session.get_credentials()
    except BotoCoreError as e:
        raise KdiagError(redact(f"Cannot load AWS credentials: {e}. Check the profile's "
                                "credential settings (aws sts get-caller-identity shows what "
                                "the CLI finds).")) from None
    if creds is None:
        raise KdiagError("No AWS credentials found: kdiag uses the standard chain (environment "
                         "variables, --profile, SSO, instance or task role). Run `aws sso login` "
                         "or `aws configure`, or pass --profile.")
    try:
        frozen = creds.get_frozen_credentials()
    except BotoCoreError as e:
        raise KdiagError(redact(f"Cannot refresh AWS credentials: {e}. Log in again (aws sso "
                                "login) or check the profile.")) from None
    redact.add(frozen.access_key, frozen.secret_key, frozen.token)
    return session


def _make_client(session: Any, service: str, opts: AwsOptions) -> Any:
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    if service == "sagemaker-runtime":
        # One try: kdiag.live.invoke retries throttling and transient errors itself, and never a
        # ModelError or a read timeout (the model may have run; retrying duplicates inference).
        retries = {"mode": "standard", "total_max_attempts": 1}
    else:
        retries = {"mode": "standard", "total_max_attempts": max(1, opts.control_plane_attempts)}
    config = Config(connect_timeout=opts.connect_timeout, read_timeout=opts.timeout,
                    retries=retries, user_agent_extra=USER_AGENT,
                    max_pool_connections=max(10, opts.max_pool_connections))
    try:
        return session.client(service, endpoint_url=opts.url_for(service), config=config)
    except (BotoCoreError, ValueError) as e:
        raise KdiagError(f"Cannot create the {service} client: {e}. Check --region and the "
                         "--*-endpoint-url options.") from None


def error_code(exc: BaseException) -> str | None:
    """The error code of a botocore ClientError (None for anything else)."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return (resp.get("Error") or {}).get("Code")
    return None


def error_message(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        msg = (resp.get("Error") or {}).get("Message")
        if msg:
            return str(msg)
    return str(exc)


CREDENTIAL_ERROR_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
    "ExpiredTokenException", "InvalidSignatureException", "SignatureDoesNotMatch",
    "IncompleteSignature", "MissingAuthenticationToken", "InvalidAccessKeyId",
    "AuthFailure", "RequestExpired",
})
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied",
                                 "UnauthorizedOperation", "NotAuthorized"})


def fatal_error(exc: BaseException, clients: AwsClients, service: str, action: str
                ) -> KdiagError | None:
    """A KdiagError (one paragraph, exit 2) when `exc` means kdiag cannot go on at all:
    no credentials, rejected credentials, no network path. None when the error is about the
    request itself and belongs in the report instead."""
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProxyConnectionError,
        SSLError,
    )

    red = clients.redact
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return KdiagError("No usable AWS credentials: kdiag uses the standard chain (environment "
                          "variables, --profile, SSO, instance or task role). Run `aws sso "
                          "login` or `aws configure`, or pass --profile.")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ProxyConnectionError
                  | SSLError):
        return KdiagError(red(
            f"Cannot reach {service} at {clients.where(service)} to {action}: "
            f"{type(exc).__name__}. Check --region, network access (VPC endpoints need "
            f"--{_option_for(service)}-endpoint-url or --endpoint-url), and proxies."))
    code = error_code(exc)
    if code in CREDENTIAL_ERROR_CODES:
        return KdiagError(red(
            f"AWS rejected the credentials while trying to {action} ({code}: "
            f"{error_message(exc)}). Log in again (aws sso login), check --profile, or check "
            "the system clock."))
    if code in ACCESS_DENIED_CODES:
        return KdiagError(red(
            f"Access denied while trying to {action} ({code}: {error_message(exc)}). The "
            "identity kdiag runs as needs sagemaker:DescribeEndpoint, DescribeEndpointConfig, "
            "DescribeModel and InvokeEndpoint (plus logs:FilterLogEvents and s3:GetObject for "
            "logs and --fetch-model)."))
    return None


def _option_for(service: str) -> str:
    return {"sagemaker-runtime": "runtime", "sagemaker": "sagemaker", "logs": "logs",
            "s3": "s3"}[service]
