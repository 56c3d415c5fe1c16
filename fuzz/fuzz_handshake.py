"""atheris harness: ``harness.check_handshake`` on arbitrary and mutated inputs (see fuzz/README.md).

Usage: ``python fuzz/fuzz_handshake.py [corpus dirs or a crash file] [libFuzzer flags]``.
"""

from _main import main

if __name__ == "__main__":
    main("handshake")
