"""voiceagent: a fully local voice assistant for the terminal."""

__version__ = "0.1.0"
