"""kdiag: find why a Keras/TensorFlow model fails behind a SageMaker endpoint, before deploying.

Importing kdiag is cheap: no TensorFlow, no boto3 clients. Heavy imports live inside the
functions that need them.
"""

__version__ = "0.1.0"
