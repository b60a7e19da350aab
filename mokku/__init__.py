"""mokku: an OpenAI-API mock server that echoes the last user message back."""

__version__ = "0.1.0"
