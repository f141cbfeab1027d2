"""Text generation and the model store. Imports nothing from Flask.

- `settings`: validated generation settings and presets
- `engine`: `TextGenerator`, a model loaded once that generates for batches of prompts
- `artifacts`, `store`, `importer`: model folders, checksums, GGUF conversion, the store
- `default_model`: where the default model comes from
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
