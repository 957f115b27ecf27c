"""Verification: host runtimes against the float model, on-device runs, the host-ISA twin."""
