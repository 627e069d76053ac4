"""Ctrl-C that Python lost. A KeyboardInterrupt raised inside a garbage collector's callback (Brian2's objects
have weakref callbacks) is only printed as ignored, and the work goes on. While `remembered()` is active such
interrupts are recorded instead, and `raise_if_lost()` raises them again: before a result is written
(bridge/app/files.atomic) and between a sweep's tasks."""
import contextlib
import sys

_lost, _depth = [], [0]


@contextlib.contextmanager
def remembered():
    """Lost interrupts recorded while active; nested uses share one record, forgotten when the outermost ends."""
    def hook(unraisable):
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            _lost.append(unraisable.exc_type)
        else:
            previous(unraisable)

    previous, sys.unraisablehook = sys.unraisablehook, hook
    _depth[0] += 1
    try:
        yield
    finally:
        sys.unraisablehook = previous
        _depth[0] -= 1
        if not _depth[0]:
            _lost.clear()


def raise_if_lost():
    if _lost:
        _lost.clear()
        raise KeyboardInterrupt
