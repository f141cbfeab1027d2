"""transformers' model classes, imported one thread at a time.

transformers imports its classes lazily, on first use. Two threads asking at once (a
runner loading the production model as it starts while a training run loads its
parent) can see a half-imported module and fail with "cannot import name
AutoModelForCausalLM"; one lock makes the second wait for the first.
"""

from __future__ import annotations

import threading

_IMPORTING = threading.Lock()


def model_classes():
    """(AutoModelForCausalLM, AutoTokenizer), imported under the lock."""
    with _IMPORTING:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM, AutoTokenizer
