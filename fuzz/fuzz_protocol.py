"""atheris harness: ``harness.check_protocol`` on arbitrary and mutated inputs (see fuzz/README.md).

Usage: ``python fuzz/fuzz_protocol.py [corpus dirs or a crash file] [libFuzzer flags]``.
"""

from _main import main

if __name__ == "__main__":
    main("protocol")
