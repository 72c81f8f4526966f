"""speechtao: an open transfer-learning toolkit for conversational AI (ASR and NLP), CPU first."""

__version__ = "0.1.0"
