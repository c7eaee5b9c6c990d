"""voiceagent: a fully local voice assistant for the terminal."""

import os

# onnxruntime 1.29+ uploads usage telemetry and a persistent device id from Linux too, unless
# this is set before it initialises. Silero VAD, Piper and Smart Turn all run on it, and
# nothing of ours may reach the network: set it for every entry point, before any import.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
