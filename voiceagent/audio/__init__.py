"""Audio in and out: formats and resampling, files, hand-off queues, devices, sources and sinks.

Submodules are imported explicitly (``from voiceagent.audio.files import read_audio``); this
package imports nothing itself, so ``import voiceagent`` never loads PortAudio or libsndfile.
"""
