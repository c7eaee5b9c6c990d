"""``voiceagent bench``: accuracy and latency of the whole loop on real recordings.

corpus.py (folders of recordings and their references), runner.py (one recording through a
VoiceSession, as ``talk`` runs it), baseline.py (the sequential README pipeline), pool.py
(each model loaded once), benchmark.py (the utterance-major loop over a model matrix),
metrics.py (pure arithmetic), results.py and report.py (table, Markdown, JSON, chart).
"""
