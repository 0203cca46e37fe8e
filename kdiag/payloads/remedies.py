"""Runnable snippets for the fixes that are not a payload kdiag can write for the user.

When the cause is that preprocessing lived in Python (image decoding in a predict() override,
a tokenizer in the notebook), the remedy is code: do it on the client, or move it into the
exported graph. Each snippet is complete Python with the model's own input name and shape.
"""

from __future__ import annotations

from kdiag.model.signature import TensorSpec


def _dims(spec: TensorSpec) -> tuple[int, int, int]:
    inst = spec.instance_shape or ()
    h, w = (inst[0], inst[1]) if len(inst) >= 2 else (-1, -1)
    c = inst[2] if len(inst) == 3 else 1
    return (224 if h == -1 else h), (224 if w == -1 else w), (3 if c == -1 else c)


CLIENT_SEND_MARKER = "# send it"


def client_pixels_snippet(name: str, spec: TensorSpec, endpoint: str = "my-endpoint",
                          image_path: str = "image.png") -> str:
    """Decode and resize on the client, then send the pixels the signature takes.

    Written with TensorFlow's decoder, the one the notebook most likely used (PIL's resize
    gives slightly different pixels)."""
    h, w, c = _dims(spec)
    if spec.dtype == "uint8":
        pixels = "tf.cast(tf.round(img), tf.uint8).numpy()"
    else:
        pixels = "(img / 255.0).numpy()  # the scaling your notebook helper applied"
    return (
        "# Remedy 1: decode and resize on the client, send the pixels\n"
        "import json\n\n"
        "import tensorflow as tf\n\n"
        f"data = open({image_path!r}, \"rb\").read()\n"
        f"img = tf.io.decode_image(data, channels={c}, expand_animations=False)\n"
        f"img = tf.image.resize(img, [{h}, {w}])\n"
        f"pixels = {pixels}\n"
        f'body = json.dumps({{"instances": [{{"{name}": pixels.tolist()}}]}})\n\n'
        f"{CLIENT_SEND_MARKER}\n"
        "import boto3\n\n"
        'runtime = boto3.client("sagemaker-runtime")\n'
        f'response = runtime.invoke_endpoint(EndpointName="{endpoint}", '
        'ContentType="application/json", Body=body)\n'
        'print(json.loads(response["Body"].read()))\n')


def reexport_bytes_snippet(name: str, spec: TensorSpec, model_path: str = "model.keras") -> str:
    """Re-export with a serving signature that takes image bytes and decodes in the graph."""
    h, w, c = _dims(spec)
    cast = "tf.cast(img, tf.uint8)" if spec.dtype == "uint8" else \
        "tf.cast(img, tf.float32) / 255.0  # the scaling your notebook helper applied"
    return (
        "# Remedy 2: re-export with a signature that takes the image bytes (tf.string)\n"
        "import keras\n"
        "import tensorflow as tf\n\n"
        f"model = keras.models.load_model({model_path!r})  # the notebook model\n\n\n"
        "def decode(data):\n"
        f"    img = tf.io.decode_image(data, channels={c}, expand_animations=False)\n"
        f"    img = tf.image.resize(img, [{h}, {w}])\n"
        f"    return {cast}\n\n\n"
        "def serve(image_bytes):\n"
        "    pixels = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec("
        f"[{h}, {w}, {c}], tf.{spec.dtype}))\n"
        "    return model(pixels)\n\n\n"
        "archive = keras.export.ExportArchive()\n"
        "archive.track(model)\n"
        'archive.add_endpoint("serving_default", serve, '
        '[tf.TensorSpec([None], tf.string, name="image_bytes")])\n'
        'archive.write_out("export/1")\n'
        '# then send {"instances": [{"b64": base64.b64encode(open("image.png", "rb").read())'
        '.decode()}]}\n')


def tokenizer_export_snippet(name: str, spec: TensorSpec) -> str:
    """Move the notebook's tokenizer into the exported graph (the only fix for text)."""
    length = (spec.instance_shape or (-1,))[0]
    seq = "" if length == -1 else f", output_sequence_length={length}"
    return (
        "# The model must change: export the tokenizer with it\n"
        "import keras\n"
        "import tensorflow as tf\n\n"
        'model = keras.models.load_model("model.keras")  # takes token ids\n'
        "vectorize = keras.layers.TextVectorization(vocabulary=VOCABULARY"
        f"{seq})  # the notebook's vocabulary\n"
        'vectorize(tf.constant(["build"]))  # export needs the layer built\n\n\n'
        "def serve(text):\n"
        f"    return model(tf.cast(vectorize(text), tf.{spec.dtype}))\n\n\n"
        "archive = keras.export.ExportArchive()\n"
        "archive.track(model)\n"
        "archive.track(vectorize)\n"
        'archive.add_endpoint("serving_default", serve, '
        '[tf.TensorSpec([None], tf.string, name="text")])\n'
        'archive.write_out("export/1")\n'
        '# then send {"instances": ["the text"]}\n')
