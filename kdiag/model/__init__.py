"""The model layer: reading artifacts (SavedModel, .keras, .h5, model.tar.gz) without TensorFlow,
their signatures, what the container makes of them, and the runner that executes a SavedModel."""
