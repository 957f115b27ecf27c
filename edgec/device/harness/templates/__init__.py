"""Templates of the device harnesses (package data; see edgec/harness.py). Not imported by edgec."""
