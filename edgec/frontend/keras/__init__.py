"""Keras files: Keras 3 archives and SavedModels rebuilt in tf_keras, and the checks before loading."""
