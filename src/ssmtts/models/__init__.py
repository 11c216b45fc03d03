"""TTS model with interchangeable backbones. Nothing here reads files."""
from .config import ModelConfig
from .tts import TTSModel

__all__ = ["ModelConfig", "TTSModel"]
