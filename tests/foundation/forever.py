"""A module that runs until a signal ends it: the child in tests/foundation/test_child.py."""

import signal

if __name__ == "__main__":
    signal.pause()
