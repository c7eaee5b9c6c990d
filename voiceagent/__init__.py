"""voiceagent: a fully local voice assistant for the terminal."""

import os

# onnxruntime 1.29+ uploads usage telemetry and a persistent device id from Linux too, unless
# this is set before it initialises. Silero VAD, Piper and Smart Turn all run on it, and
# nothing of ours may reach the network: set it for every entry point, before any import.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

# numpy's OpenBLAS runs its larger products (the log-mel filter bank of every Whisper and Smart
# Turn input) on every core, and its helper thread then spins for ~100 ms of CPU. On two cores
# that took a core from the models about once a second while the user spoke. Our products are
# small: one thread, unless the user asks for more. Read once, when numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
