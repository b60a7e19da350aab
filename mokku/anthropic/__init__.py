"""Anthropic's Messages API on mokku's core: its dialect, its endpoints and its stream."""
