"""Run the whole test bed in the foreground for manual use: `python -m tests.testbed`.

Prints the fake engine's URL, CA file and credentials and writes a gimme config that points at
it; VMs created through it boot as emulated nodes. Needs root; stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
from pathlib import Path

from tests.testbed.bed import TestBed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-scale", type=float, default=0.2, help="scale of the VM delays")
    parser.add_argument("--workdir", type=Path, help="where to keep state (default: a temp dir)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("testbed: the emulated nodes need root (namespaces, overlayfs, sshd)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gimme-testbed-"))
    with TestBed(workdir / "bed", delay_scale=args.delay_scale) as bed:
        env = bed.gimme_env(workdir / "home")
        print(f"engine URL:  {bed.engine.url}")
        print(f"CA file:     {bed.engine.ca_file}")
        print(f"user:        {bed.engine.username}")
        print(f"password:    in {workdir / 'home' / 'engine.password'} (mode 0600)")
        print(f"gimme:       GIMME_CONFIG={env.config} GIMME_STATE={env.state} gimme create ...")
        print("Ctrl-C stops the engine and every node.", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping")


if __name__ == "__main__":
    main()
