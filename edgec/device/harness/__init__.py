"""edgec.device.harness."""
