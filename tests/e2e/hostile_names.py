#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Names the target chose never drive the user's terminal (doc/INPUTS.md):
# memspy-rec-target copied to a file whose name holds escape sequences (a
# title change, a colour, a bell, CSI as C1), its custom allocator probed.
# record's summary names each probed entry point by its module's file name:
# no control character of that name may reach memspy's stderr, and the
# name must still be there, each control character made '?'.
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import Fail, record, scenario_main  # noqa: E402

HOSTILE = "rec\x1b]0;owned\x07\x1b[31m\u009b2J-target"
SHOWN = "rec?]0;owned??[31m?2J-target"


def scen_probed_names(args, wd):
    exe = os.path.join(wd, HOSTILE)
    shutil.copy(args.target, exe)
    out = os.path.join(wd, "pool.folded")
    r = record(args.memspy, [exe, "pool", "50"], ["--exact", "--count", "--probe",
                                                  "rec_pool_alloc"], out)
    text = "\n".join(r.err)
    print(text, flush=True)
    bad = sorted({c for c in text if (ord(c) < 0x20 and c not in "\n\t") or
                  0x7f <= ord(c) <= 0x9f})
    if bad:
        raise Fail(f"memspy's stderr holds control characters {bad!r} from the module's name")
    if f"rec_pool_alloc@{SHOWN}" not in text:
        raise Fail(f"the summary does not name rec_pool_alloc@{SHOWN} among the probed "
                   "entry points")


if __name__ == "__main__":
    scenario_main({"probed-names": scen_probed_names}, targets=("target",))
