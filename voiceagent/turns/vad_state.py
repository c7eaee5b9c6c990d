"""Voice on/off with hysteresis, fed one Silero speech probability per frame.

Silero VAD scores each 512-sample frame (32 ms at 16 kHz) with a speech probability. Raw
probabilities flicker, so this state machine turns them into a few typed events: speech started
(only after enough voiced audio that a cough or a click is not taken for speech), silence started
(with the sample where the voice stopped), speech resumed, and a rejected blip.

Deciding that the user has *finished* their turn is not done here: that is the end-of-utterance
policy in :mod:`voiceagent.turns.endpointing`, which is handed the moment the voice stopped. The
caller ends an utterance by calling :meth:`VadStateMachine.reset`.

Time is counted in samples handed in by the caller, never read from a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from voiceagent.errors import UsageError

SAMPLE_RATE_HZ = 16_000
FRAME_SAMPLES = 512


@dataclass(frozen=True)
class VadConfig:
    """Thresholds and durations for turning speech probabilities into voice on/off.

    Attributes:
        start_threshold: Probability at or above which a frame counts as voiced.
        end_threshold: Probability below which a frame counts as silent. Frames in between keep
            the current state (hysteresis), so a voice that wavers is not chopped up.
        min_speech_ms: Voice shorter than this is dropped as a blip (cough, click, door).
        speech_start_frames: Consecutive voiced frames needed to open (or resume) speech.
        speech_end_frames: Consecutive silent frames that end a candidate as a blip.
        pause_frames: Consecutive silent frames needed to report that the voice stopped. One
            frame (32 ms) is enough: Silero's probability falls smoothly, and over the 30
            speech recordings and hesitations.wav one frame found 99 pauses where two found 97,
            while the transcript of the pause starts 32 ms sooner.
        pre_roll_ms: Audio kept before the start of speech, so STT hears the first phoneme.
        sample_rate_hz: Sample rate of the audio the probabilities were computed on.
        frame_samples: Samples per VAD frame.
    """

    start_threshold: float = 0.5
    end_threshold: float = 0.35
    min_speech_ms: float = 250.0
    speech_start_frames: int = 2
    speech_end_frames: int = 2
    pause_frames: int = 1
    pre_roll_ms: float = 300.0
    sample_rate_hz: int = SAMPLE_RATE_HZ
    frame_samples: int = FRAME_SAMPLES

    def __post_init__(self) -> None:
        if not 0.0 < self.start_threshold <= 1.0:
            raise UsageError(
                f"VAD start threshold {self.start_threshold} is out of range.",
                fix="use a probability between 0 and 1.",
            )
        if not 0.0 <= self.end_threshold <= self.start_threshold:
            raise UsageError(
                f"VAD end threshold {self.end_threshold} must be between 0 and the start "
                f"threshold {self.start_threshold}.",
                fix="lower the end threshold.",
            )
        for name in ("min_speech_ms", "pre_roll_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"VAD {name} is {value}.", fix="use a number of ms >= 0.")
        for name in (
            "speech_start_frames", "speech_end_frames", "pause_frames", "sample_rate_hz",
            "frame_samples",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise UsageError(f"VAD {name} is {getattr(self, name)}.", fix="use 1 or more.")

    @property
    def frame_ms(self) -> float:
        """Duration of one VAD frame in milliseconds."""
        return self.frame_samples * 1000.0 / self.sample_rate_hz

    def ms_to_samples(self, duration_ms: float) -> int:
        """Converts a duration in milliseconds to a whole number of samples."""
        return round(duration_ms * self.sample_rate_hz / 1000.0)

    def samples_to_s(self, samples: int) -> float:
        """Converts a sample count (or index) to seconds."""
        return samples / self.sample_rate_hz


class VadState(Enum):
    """Where the state machine is in an utterance."""

    SILENCE = "silence"
    """No utterance in progress."""
    CANDIDATE = "candidate"
    """Voice heard, but not yet long enough to be speech rather than a blip."""
    SPEECH = "speech"
    """The user is speaking."""
    PAUSE = "pause"
    """An utterance is in progress and the voice is currently off."""


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began: the candidate lasted at least ``min_speech_ms``.

    Attributes:
        start_sample: Start of the first voiced frame of the utterance (looked back to).
        audio_start_sample: ``start_sample`` minus the pre-roll (never below 0): where the
            audio handed to STT should begin.
        detected_sample: End of the frame on which speech was confirmed.
    """

    start_sample: int
    audio_start_sample: int
    detected_sample: int


@dataclass(frozen=True)
class SilenceStarted:
    """The voice stopped inside an utterance (which may or may not be over).

    Attributes:
        silence_start_sample: Where the voice stopped: start of the first silent frame.
        detected_sample: End of the frame on which the silence was confirmed.
    """

    silence_start_sample: int
    detected_sample: int


@dataclass(frozen=True)
class SpeechResumed:
    """The voice came back during a pause in the same utterance.

    Attributes:
        resume_sample: Start of the first voiced frame after the pause.
        pause_samples: Length of the pause that just ended.
        detected_sample: End of the frame on which the resumption was confirmed.
    """

    resume_sample: int
    pause_samples: int
    detected_sample: int


@dataclass(frozen=True)
class BlipRejected:
    """Voice too short to be speech (a cough or a click); no utterance was started.

    Attributes:
        start_sample: Start of the first voiced frame of the blip.
        end_sample: Where the blip's voice stopped.
        detected_sample: End of the frame on which it was rejected.
    """

    start_sample: int
    end_sample: int
    detected_sample: int


VadEvent = SpeechStarted | SilenceStarted | SpeechResumed | BlipRejected


@dataclass(frozen=True)
class UtteranceStats:
    """Counters for the current utterance, used to reject noise that fooled the VAD.

    Attributes:
        start_sample: Start of the first voiced frame of the utterance.
        voiced_frames: Frames at or above the start threshold.
        total_frames: Frames from the start through the last frame that was not silent, so a
            trailing pause (the one the end-of-utterance policy is waiting out) does not
            dilute the share.
        speech_samples: Samples while the voice was on, pauses excluded.
    """

    start_sample: int
    voiced_frames: int
    total_frames: int
    speech_samples: int

    @property
    def voiced_share(self) -> float:
        """Share of voiced frames, 0.0 to 1.0: real speech is mostly voiced, noise is patchy."""
        return self.voiced_frames / self.total_frames if self.total_frames else 0.0


class VadStateMachine:
    """Turns per-frame speech probabilities into voice on/off events, with hysteresis.

    Feed every frame in order with :meth:`update`; call :meth:`reset` once the end-of-utterance
    policy has ended (or dropped) the utterance.
    """

    def __init__(self, config: VadConfig | None = None) -> None:
        self._config = config if config is not None else VadConfig()
        self._min_speech_samples = self._config.ms_to_samples(self._config.min_speech_ms)
        self._pre_roll_samples = self._config.ms_to_samples(self._config.pre_roll_ms)
        self._last_frame_end_sample: int | None = None
        self._clear()

    def _clear(self) -> None:
        self._state = VadState.SILENCE
        # Runs of consecutive frames, with where each run began, so events can look back.
        self._voiced_run_frames = 0
        self._voiced_run_start_sample = 0
        self._silent_run_frames = 0
        self._silent_run_start_sample = 0
        # Current utterance.
        self._utterance_start_sample = 0
        self._voiced_frames = 0
        self._frames_seen = 0
        self._frames_through_last_sound = 0
        self._closed_speech_samples = 0
        self._segment_start_sample = 0
        self._silence_start_sample = 0

    @property
    def config(self) -> VadConfig:
        """The configuration this machine was built with."""
        return self._config

    @property
    def state(self) -> VadState:
        """The current state."""
        return self._state

    @property
    def is_speech(self) -> bool:
        """Whether the user is speaking right now (confirmed speech, not in a pause)."""
        return self._state is VadState.SPEECH

    @property
    def is_in_utterance(self) -> bool:
        """Whether an announced utterance is in progress (speaking or pausing)."""
        return self._state in (VadState.SPEECH, VadState.PAUSE)

    @property
    def voiced_frames(self) -> int:
        """Voiced frames in the current utterance (0 when there is none)."""
        return self._voiced_frames if self._state is not VadState.SILENCE else 0

    @property
    def total_frames(self) -> int:
        """Frames of the current utterance, trailing silence excluded (0 when there is none)."""
        return self._frames_through_last_sound if self._state is not VadState.SILENCE else 0

    def stats(self) -> UtteranceStats | None:
        """Counters for the utterance in progress, or None when there is none."""
        if self._state is VadState.SILENCE or self._last_frame_end_sample is None:
            return None
        speech_samples = self._closed_speech_samples
        if self._state in (VadState.SPEECH, VadState.CANDIDATE):
            speech_samples += self._last_frame_end_sample - self._segment_start_sample
        return UtteranceStats(
            start_sample=self._utterance_start_sample,
            voiced_frames=self._voiced_frames,
            total_frames=self._frames_through_last_sound,
            speech_samples=speech_samples,
        )

    def reset(self) -> None:
        """Ends the current utterance and returns to silence.

        Runs of frames in progress are forgotten too, so speech that continues past a forced
        end (say, the maximum turn length) must be confirmed afresh before it starts a new one.
        """
        self._clear()

    def update(self, probability: float, frame_end_sample: int) -> list[VadEvent]:
        """Feeds one frame's speech probability.

        Args:
            probability: Silero's speech probability for the frame, 0.0 to 1.0.
            frame_end_sample: Index one past the frame's last sample, counted from the start
                of the input audio. Must increase from call to call.

        Returns:
            The events this frame caused, in order (usually none).

        Raises:
            ValueError: If ``frame_end_sample`` does not increase.
        """
        if (
            self._last_frame_end_sample is not None
            and frame_end_sample <= self._last_frame_end_sample
        ):
            raise ValueError(
                f"VAD frames must move forward: frame_end_sample {frame_end_sample} after "
                f"{self._last_frame_end_sample}."
            )
        self._last_frame_end_sample = frame_end_sample
        if not math.isfinite(probability):
            # A glitch on one frame must not end a conversation; reading it as silence is safe
            # because silence can only delay a start, never invent speech.
            probability = 0.0
        config = self._config
        frame_start_sample = max(0, frame_end_sample - config.frame_samples)
        is_voiced = probability >= config.start_threshold
        is_silent = probability < config.end_threshold

        if is_voiced:
            if self._voiced_run_frames == 0:
                self._voiced_run_start_sample = frame_start_sample
            self._voiced_run_frames += 1
        else:
            self._voiced_run_frames = 0
        if is_silent:
            if self._silent_run_frames == 0:
                self._silent_run_start_sample = frame_start_sample
            self._silent_run_frames += 1
        else:
            self._silent_run_frames = 0

        if self._state is VadState.SILENCE:
            if self._voiced_run_frames >= config.speech_start_frames:
                self._open_candidate()
            else:
                return []
        else:
            self._count_frame(is_voiced=is_voiced, is_silent=is_silent)

        return self._transition(frame_end_sample, is_silent=is_silent)

    def _open_candidate(self) -> None:
        # The frames of the opening run are all voiced and all belong to the utterance.
        self._state = VadState.CANDIDATE
        self._utterance_start_sample = self._voiced_run_start_sample
        self._segment_start_sample = self._voiced_run_start_sample
        self._voiced_frames = self._voiced_run_frames
        self._frames_seen = self._voiced_run_frames
        self._frames_through_last_sound = self._voiced_run_frames
        self._closed_speech_samples = 0

    def _count_frame(self, *, is_voiced: bool, is_silent: bool) -> None:
        self._frames_seen += 1
        if is_voiced:
            self._voiced_frames += 1
        if not is_silent:
            self._frames_through_last_sound = self._frames_seen

    def _transition(self, frame_end_sample: int, *, is_silent: bool) -> list[VadEvent]:
        config = self._config
        if self._state is VadState.CANDIDATE:
            if self._silent_run_frames >= config.speech_end_frames:
                blip = BlipRejected(
                    start_sample=self._utterance_start_sample,
                    end_sample=self._silent_run_start_sample,
                    detected_sample=frame_end_sample,
                )
                self._clear()
                return [blip]
            # Only a frame with the voice on can promote: a candidate fading out mid-dip is
            # not yet known to be more than a blip.
            long_enough = (
                frame_end_sample - self._utterance_start_sample >= self._min_speech_samples
            )
            if not is_silent and long_enough:
                self._state = VadState.SPEECH
                return [
                    SpeechStarted(
                        start_sample=self._utterance_start_sample,
                        audio_start_sample=max(
                            0, self._utterance_start_sample - self._pre_roll_samples
                        ),
                        detected_sample=frame_end_sample,
                    )
                ]
            return []
        if self._state is VadState.SPEECH:
            if self._silent_run_frames >= config.pause_frames:
                self._state = VadState.PAUSE
                self._silence_start_sample = self._silent_run_start_sample
                self._closed_speech_samples += max(
                    0, self._silence_start_sample - self._segment_start_sample
                )
                return [
                    SilenceStarted(
                        silence_start_sample=self._silence_start_sample,
                        detected_sample=frame_end_sample,
                    )
                ]
            return []
        # PAUSE: resuming needs the same confirmation as starting, but not min_speech_ms:
        # waiting that long would let the end-of-utterance policy cut off a user who resumed.
        if self._voiced_run_frames >= config.speech_start_frames:
            self._state = VadState.SPEECH
            resume_sample = self._voiced_run_start_sample
            self._segment_start_sample = resume_sample
            return [
                SpeechResumed(
                    resume_sample=resume_sample,
                    pause_samples=resume_sample - self._silence_start_sample,
                    detected_sample=frame_end_sample,
                )
            ]
        return []
