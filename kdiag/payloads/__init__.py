"""Payloads: the request bodies kdiag writes for a signature.

`build` turns named numpy tensors into the exact text of a TF Serving REST request and of the
other content types the SageMaker TF Serving container accepts (JSON lines, CSV); `sample`
generates seeded tensors from a signature and picks the body that carries them. The submodules
import numpy and orjson, so this package imports nothing itself: `import kdiag.payloads` stays cheap.
"""
