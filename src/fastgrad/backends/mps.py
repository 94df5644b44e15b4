"""Apple's Metal backend: not available (fastgrad runs on the CPU)."""


def is_available():
    return False


def is_built():
    return False
