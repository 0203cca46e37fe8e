"""A real `kdiag probe` session against local stand-ins, for the README.

moto's server plays the SageMaker control plane, CloudWatch Logs and S3; `kdiag serve` plays the
runtime with the fixture model. The endpoint is created through boto3 as a deployment would,
then `kdiag probe` runs as a user would run it, with --endpoint-url pointing at loopback.
Usage: python scripts/probe_demo.py [extra kdiag probe options]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdiag.path.local_endpoint import LocalEndpoint  # noqa: E402
from kdiag.serve.server import start_server  # noqa: E402
from tests._aws_rig import deploy, moto_server, put_logs  # noqa: E402

NAME = "churn-model"


def main() -> int:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo",
           "AWS_DEFAULT_REGION": "us-east-1", "COLUMNS": "100", "NO_COLOR": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_DEFAULT_REGION")})
    model = ROOT / "fixtures" / "models" / "custom" / "export" / "1"
    with moto_server() as aws, LocalEndpoint(model) as ep, \
            start_server(ep, endpoint_name=NAME) as runtime:
        deploy(aws, NAME)
        put_logs(aws, NAME, [
            '10.32.0.2 - - [25/Nov/2026:17:30:01 +0000] "GET /ping HTTP/1.1" 200 0 "-" "AHC/2.0"',
            '10.32.0.2 - - [25/Nov/2026:17:30:02 +0000] "POST /invocations HTTP/1.1" 400 157 "-" '
            '"AHC/2.0"',
        ])
        body = ROOT / "examples" / "numbers_as_strings.json"
        argv = [sys.executable, "-m", "kdiag", "probe", NAME, "--endpoint-url", aws,
                "--runtime-endpoint-url", runtime.url, "--signature", str(model),
                "--payload", str(body), *sys.argv[1:]]
        shown = ["kdiag", "probe", NAME, "--endpoint-url", "http://127.0.0.1:5000",
                 "--runtime-endpoint-url", "http://127.0.0.1:8080", "--signature",
                 str(model.relative_to(ROOT)), "--payload", str(body.relative_to(ROOT)),
                 *sys.argv[1:]]
        p = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
        out = (p.stdout + p.stderr).replace(aws, "http://127.0.0.1:5000").replace(
            runtime.url, "http://127.0.0.1:8080")
        print("$ " + " ".join(shown))
        print("\n".join(line.rstrip() for line in out.splitlines()))
        print(f"(exit code {p.returncode})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
