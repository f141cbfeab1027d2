"""Text generation and the model store. Imports nothing from Flask.

- `settings`: validated generation settings and presets
- `engine`: `TextGenerator`, a model loaded once that generates for batches of prompts
- `artifacts`, `store`, `importer`: model folders, checksums, GGUF conversion, the store
- `catalog`: the known models srcflask fetches from PyPI wheels, and the default
- `continuation`, `quality`: telling continuations from replies, clean-up, the benchmark
"""

from .engine import GenerationResult, PromptError, PromptFormat, TextGenerator
from .settings import PRESETS, GenerationSettings, SettingsError

__all__ = [
    "PRESETS",
    "GenerationResult",
    "GenerationSettings",
    "PromptError",
    "PromptFormat",
    "SettingsError",
    "TextGenerator",
]
