"""What runs on a device: the QEMU/board firmware, the device harnesses, and their captured outputs."""
