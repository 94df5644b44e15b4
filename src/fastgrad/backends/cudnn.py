"""cuDNN flags as PyTorch's CPU build has them: settable, without effect (there is no cuDNN)."""
enabled = True
deterministic = False
benchmark = False
allow_tf32 = True


def is_available():
    return False


def version():
    return None
