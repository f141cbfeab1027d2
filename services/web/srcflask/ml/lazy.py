"""Models load into a process one at a time.

transformers is not safe for two threads loading at once: its classes are imported
lazily, on first use ("cannot import name AutoModelForCausalLM" for the second
thread), and `from_pretrained` patches module-wide state while it builds a model on
the meta device ("Cannot copy out of meta tensor" for the other). A runner loads the
production model as it starts while a training run may load its parent, so every
load takes this lock; loads are rare and seconds long, so waiting costs little.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOADING = threading.RLock()


@contextmanager
def one_load_at_a_time() -> Iterator[None]:
    with _LOADING:
        yield


def model_classes():
    """(AutoModelForCausalLM, AutoTokenizer), imported under the lock."""
    with _LOADING:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM, AutoTokenizer
