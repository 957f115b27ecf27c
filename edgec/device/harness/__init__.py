"""Device harnesses (scripts that run an artifact on its device and capture outputs) and their templates."""
