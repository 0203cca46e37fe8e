"""kdiag's side of AWS: clients, endpoint description, invocation, logs and model artifacts.

Everything here imports boto3 inside functions, so `import kdiag.live...` stays cheap. Facts
about the APIs (error shapes, retry behaviour, moto's coverage) are in
/work/shared/design/aws-apis-detail.md; section numbers in comments refer to it.
"""
