"""Fuzz recipe and target-profile parsing (edgec.compress.recipe.load, edgec.core.targets.resolve).

Even first bytes: the rest is an ``edgec.toml`` recipe. Odd: it is ``bad.toml`` in a copy of the
shipped ``targets/`` folder, resolved (``extends`` chains into the real profiles).
"""

from __future__ import annotations

import shutil

from harness import MAX_INPUT, ROOT, SCRATCH, expect_refusal, run, scratch_file

TARGETS = SCRATCH / "targets"


def test_one_input(data: bytes) -> None:
    from edgec.compress import recipe
    from edgec.core import targets

    if not data or len(data) > MAX_INPUT:
        return
    if data[0] % 2 == 0:
        expect_refusal(recipe.load, scratch_file("edgec.toml", data[1:]))
    else:
        (TARGETS / "bad.toml").write_bytes(data[1:])
        expect_refusal(targets.resolve, "bad", TARGETS)


if __name__ == "__main__":
    shutil.copytree(ROOT / "targets", TARGETS)
    run(test_one_input, ["edgec.compress.recipe", "edgec.core.targets"])
