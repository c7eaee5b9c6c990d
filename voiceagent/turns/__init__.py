"""Pure turn-taking logic: VAD state, end-of-utterance policy, text for the voice.

Nothing here touches audio devices, models or clocks: time is handed in as sample counts or
seconds, so every rule can be tested on a scripted timeline.
"""

from voiceagent.turns.endpointing import (
    EndpointAction,
    EndpointDecision,
    EndpointingConfig,
    EndpointingPolicy,
    TranscriptEnding,
    TurnDetectorHint,
)
from voiceagent.turns.sentences import ChunkerConfig, SpeakableChunker
from voiceagent.turns.speech_text import text_for_speech
from voiceagent.turns.vad_state import (
    BlipRejected,
    SilenceStarted,
    SpeechResumed,
    SpeechStarted,
    UtteranceStats,
    VadConfig,
    VadEvent,
    VadState,
    VadStateMachine,
)

__all__ = [
    "BlipRejected",
    "ChunkerConfig",
    "EndpointAction",
    "EndpointDecision",
    "EndpointingConfig",
    "EndpointingPolicy",
    "SilenceStarted",
    "SpeakableChunker",
    "SpeechResumed",
    "SpeechStarted",
    "TranscriptEnding",
    "TurnDetectorHint",
    "UtteranceStats",
    "VadConfig",
    "VadEvent",
    "VadState",
    "VadStateMachine",
    "text_for_speech",
]
