"""The Gemini API (Google AI's ``generativelanguage``) on mokku's core."""
