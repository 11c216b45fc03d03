"""ssmtts: Transformer vs Mamba+Conv hybrid vs pure Mamba backbones for codec-token TTS.

Data flows one way: corpus -> models -> train -> results/ -> report.
"""
__version__ = "0.1.0"
