"""edgec.backends.openvino."""
