"""Placeholder replaced below."""
def step_explorer(*a, **k):
    raise NotImplementedError
