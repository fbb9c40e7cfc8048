"""When a step-based save is due: the one definition that checkpoint triggers and configs share."""

from __future__ import annotations

from ..errors import InvalidArgumentError

NO_TRIGGER = (
    "no trigger is set: pass save_every_n_steps= or save_every_seconds= "
    "(training.checkpoint.save_steps in a config), or call save() yourself"
)


def step_is_due(step: int, every_n_steps: int | None) -> bool:
    """True at steps 0, N, 2N, ...; without N no step would ever be due, so that raises.

    Example::

        [s for s in range(7) if step_is_due(s, 3)]   # [0, 3, 6]
    """
    if every_n_steps is None:
        raise InvalidArgumentError("should_save", NO_TRIGGER)
    return step % every_n_steps == 0
