"""`syncd simulate`'s options, apart from the simulators so that building the CLI's parser
imports none of them."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `syncd simulate` options: fleet sizes, seed and listen host."""
    parser.add_argument("--devices", type=int, default=20, metavar="N",
                        help="phones in each of the NeoLock and Knox Guard fleets (default 20)")
    parser.add_argument("--locks", type=int, default=10, metavar="N",
                        help="Codelocks K3Connect locks (default 10)")
    parser.add_argument("--terminals", type=int, default=10, metavar="N",
                        help="BioTime terminals (default 10)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the simulated fleets (default 0)")
    parser.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port-base", type=int, default=0, metavar="P",
                        help="fixed ports: NeoLock P, Knox Guard P+1, Codelocks P+2, BioTime P+3, "
                        "control P+4 (default: free ports)")
    parser.add_argument("--syncd-port", type=int, default=8080, metavar="P",
                        help="the port syncd will listen on, for the printed public_url "
                        "(default 8080)")
    parser.add_argument("action", nargs="?", choices=["serve", "push"], default="serve",
                        help="serve the simulators (default), or ask running ones to push")
    parser.add_argument("--count", type=int, default=1, metavar="N",
                        help="with push: how many NeoLock events to push (default 1)")
    parser.add_argument("--control", metavar="URL",
                        help="with push: the control URL `syncd simulate` printed "
                        "(default: http://127.0.0.1:<port-base+4>)")
