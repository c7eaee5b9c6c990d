"""Reading and writing audio files.

Reading goes through libsndfile (via soundfile), which recognises a file by its content, so a
WAV file named ``.mp3`` still works. Every failure becomes an :class:`AudioError` whose one line
names the file and what to do about it. Long files are streamed block by block, so an hour of
audio never sits in memory at once.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from voiceagent.audio.formats import (
    PIPELINE_RATE_HZ,
    NonFiniteTally,
    StreamResampler,
    to_mono_float32,
)
from voiceagent.errors import AudioError, DependencyError

DEFAULT_BLOCK_S = 1.0
"""Seconds of source audio read per block when streaming a file."""

_READABLE_HINT = "a WAV, FLAC, OGG or MP3 recording"

# Magic bytes of containers, to explain *why* libsndfile refused a file.
_NATIVE_CONTAINERS = {"WAV", "FLAC", "OGG", "AIFF", "CAF"}


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, as stored (before conversion to the pipeline format).

    Attributes:
        path: The file.
        container: libsndfile's name for the container, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``.
        encoding: libsndfile's name for the sample encoding, e.g. ``"PCM_16"``, ``"VORBIS"``.
        sample_rate_hz: Original sample rate.
        channels: Original channel count.
        sample_count: Samples per channel at the original rate.
    """

    path: Path
    container: str
    encoding: str
    sample_rate_hz: int
    channels: int
    sample_count: int

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.sample_count / self.sample_rate_hz


@dataclass(frozen=True, eq=False)
class AudioClip:
    """A whole file converted to the pipeline format.

    Attributes:
        samples: 16 kHz mono float32 samples in [-1, 1].
        info: The file as stored (original rate, channels, duration).
        non_finite_count: NaN/Inf values in the file that were replaced by silence.
    """

    samples: np.ndarray
    info: AudioInfo
    non_finite_count: int = 0

    @property
    def sample_rate_hz(self) -> int:
        """Rate of ``samples`` (always the pipeline rate)."""
        return PIPELINE_RATE_HZ

    @property
    def duration_s(self) -> float:
        """Length of ``samples`` in seconds."""
        return self.samples.size / PIPELINE_RATE_HZ


def import_soundfile() -> ModuleType:
    try:
        import soundfile
    except ImportError as error:
        raise DependencyError(
            "The Python package 'soundfile' (audio file reading) is not installed.",
            fix="pip install soundfile",
        ) from error
    except OSError as error:
        # The package is there but its libsndfile could not be loaded.
        raise DependencyError(
            f"The sound file library libsndfile could not be loaded ({error}).",
            fix="sudo apt-get install libsndfile1",
        ) from error
    return soundfile


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Read a file's header and check that it holds usable audio.

    Args:
        path: The audio file.

    Returns:
        Its container, encoding, rate, channels and length.

    Raises:
        AudioError: The file is missing, empty, not audio, unsupported, corrupt or has no samples.
    """
    file_path = Path(path)
    soundfile = import_soundfile()
    _check_is_readable_file(file_path)
    try:
        with soundfile.SoundFile(str(file_path)) as sound_file:
            info = AudioInfo(
                path=file_path,
                container=str(sound_file.format),
                encoding=str(sound_file.subtype),
                sample_rate_hz=int(sound_file.samplerate),
                channels=int(sound_file.channels),
                sample_count=int(sound_file.frames),
            )
    except (RuntimeError, soundfile.SoundFileError) as error:
        raise _unreadable_error(file_path, soundfile, error) from error
    if info.sample_count <= 0:
        raise AudioError(
            f"{file_path} contains no audio (0 samples).",
            fix="record or export at least half a second of speech into it.",
        )
    return info


def iter_audio_blocks(
    path: str | os.PathLike[str],
    block_s: float = DEFAULT_BLOCK_S,
    tally: NonFiniteTally | None = None,
) -> Iterator[np.ndarray]:
    """Stream a file as 16 kHz mono float32 blocks without loading it whole.

    The file is probed at once (so a bad file fails here, not at the first ``next``); decoding
    happens lazily, ``block_s`` seconds of source audio at a time.

    Args:
        path: The audio file.
        block_s: Seconds of source audio decoded per block (bounds memory use).
        tally: If given, counts NaN/Inf samples that were replaced by silence.

    Returns:
        An iterator of 16 kHz mono float32 blocks (lengths vary a little around
        ``block_s * 16000`` because of the resampler's delay; the last one may be short).

    Raises:
        AudioError: As for :func:`probe_audio`, or while decoding a corrupt file.
    """
    if block_s <= 0:
        raise ValueError(f"block_s must be positive, got {block_s}")
    info = probe_audio(path)
    return _decode_blocks(info, block_s, tally)


def _decode_blocks(
    info: AudioInfo, block_s: float, tally: NonFiniteTally | None
) -> Iterator[np.ndarray]:
    soundfile = import_soundfile()
    block_frames = max(1, round(block_s * info.sample_rate_hz))
    resampler = StreamResampler(info.sample_rate_hz, PIPELINE_RATE_HZ)
    frames_read = 0
    try:
        with soundfile.SoundFile(str(info.path)) as sound_file:
            while True:
                try:
                    raw = sound_file.read(block_frames, dtype="float32", always_2d=True)
                except (RuntimeError, soundfile.SoundFileError) as error:
                    at_s = frames_read / info.sample_rate_hz
                    raise AudioError(
                        f"{info.path} is truncated or corrupt: decoding failed in the block "
                        f"starting at {at_s:.1f} s ({_reason(error)}).",
                        fix=f"export or record it again, or {_convert_fix(info.path)}",
                    ) from error
                if raw.shape[0] == 0:
                    break
                frames_read += raw.shape[0]
                block = resampler.process(to_mono_float32(raw, tally))
                if block.size:
                    yield block
    except (RuntimeError, soundfile.SoundFileError) as error:
        # Opening again can fail if the file changed since it was probed.
        raise _unreadable_error(info.path, soundfile, error) from error
    tail = resampler.flush()
    if tail.size:
        yield tail


def read_audio(path: str | os.PathLike[str]) -> AudioClip:
    """Read a whole file and convert it to 16 kHz mono float32.

    Args:
        path: The audio file (any rate, any channel count, any format libsndfile reads).

    Returns:
        The converted samples together with the file's original properties.

    Raises:
        AudioError: The file is missing, empty, not audio, unsupported or corrupt.
    """
    info = probe_audio(path)
    tally = NonFiniteTally()
    blocks = list(_decode_blocks(info, DEFAULT_BLOCK_S, tally))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return AudioClip(samples=samples, info=info, non_finite_count=tally.count)


def write_wav(
    path: str | os.PathLike[str],
    samples: np.ndarray,
    sample_rate_hz: int,
    subtype: str = "PCM_16",
) -> Path:
    """Write samples to a WAV file atomically (temporary file, then rename).

    A reader never sees a half-written file, and an existing file at ``path`` is only replaced
    once the new one is complete.

    Args:
        path: Destination file; its folder must exist.
        samples: ``(frames,)`` or ``(frames, channels)`` float samples in [-1, 1]; values outside
            are clipped (libsndfile would otherwise wrap them around).
        sample_rate_hz: Rate to record in the header.
        subtype: libsndfile encoding, e.g. ``"PCM_16"`` or ``"FLOAT"``.

    Returns:
        The path written.

    Raises:
        AudioError: The file cannot be written (missing folder, no permission, disk full).
    """
    soundfile = import_soundfile()
    target = Path(path)
    data = np.clip(np.nan_to_num(np.asarray(samples, dtype=np.float32)), -1.0, 1.0)
    with atomic_destination(target) as temporary:
        try:
            soundfile.write(str(temporary), data, sample_rate_hz, format="WAV", subtype=subtype)
        except (RuntimeError, soundfile.SoundFileError, ValueError) as error:
            raise AudioError(f"Could not write {target}: {error}.") from error
    return target


@contextmanager
def atomic_destination(target: Path) -> Iterator[Path]:
    """Give a temporary path beside ``target`` that is renamed onto it on success.

    On an exception the temporary file is removed and ``target`` is left untouched.

    Args:
        target: The file the caller wants to create or replace.

    Yields:
        A temporary path in the same folder (so the final rename is atomic).

    Raises:
        AudioError: The folder is missing or not writable, or the rename fails.
    """
    temporary = temporary_beside(target)
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    commit_temporary(temporary, target)


def temporary_beside(target: Path) -> Path:
    """Create an empty hidden temporary file in ``target``'s folder.

    Raises:
        AudioError: The folder is missing or not writable.
    """
    folder = target.parent
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        raise AudioError(
            f"Could not write {target}: {error.strerror or error}.",
            fix=f"check that the folder {folder} exists and is writable.",
        ) from error
    os.close(handle)
    return Path(name)


def commit_temporary(temporary: Path, target: Path) -> None:
    """Rename a finished temporary file onto ``target`` (atomic on the same filesystem).

    Raises:
        AudioError: The rename fails; the temporary file is removed.
    """
    try:
        # mkstemp creates 0600; a WAV the user asked for should be readable like any file.
        # (Reading the umask would mean setting it, which races with other threads.)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise AudioError(f"Could not write {target}: {error.strerror or error}.") from error


def _check_is_readable_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"Audio file not found: {path}.", fix="check the path and try again.")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file.", fix=f"pass {_READABLE_HINT}.")
    try:
        size_bytes = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as error:
        raise AudioError(
            f"Cannot read {path}: {error.strerror or error}.",
            fix="check the file's permissions.",
        ) from error
    if size_bytes == 0:
        raise AudioError(
            f"{path} is empty (0 bytes).", fix=f"record or export it again as {_READABLE_HINT}."
        )


def _convert_fix(path: Path) -> str:
    converted = path.with_name(f"{path.stem}-converted.wav")
    command = f"ffmpeg -i {shlex.quote(str(path))} {shlex.quote(str(converted))}"
    return f"convert it to WAV with `{command}`."


def sniff_container(head: bytes) -> str | None:
    """Guess a container from a file's first bytes.

    Args:
        head: The first (at least 12) bytes of the file.

    Returns:
        ``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"AIFF"``, ``"CAF"``, ``"MP3"``, ``"MP4/M4A"``,
        ``"WebM/Matroska"``, ``"text"``, or None if unknown.
    """
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64"):
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:4] == b"FORM":
        return "AIFF"
    if head[:4] == b"caff":
        return "CAF"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "WebM/Matroska"
    if _looks_like_text(head):
        return "text"
    return None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sample.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(character.isprintable() or character in "\r\n\t" for character in text)
    return bool(text) and printable / len(text) > 0.95


def _reason(error: BaseException) -> str:
    reason = str(getattr(error, "error_string", "") or error).strip().rstrip(".")
    # libsndfile's mpg123 path says this about any undecodable MP3, which misleads users.
    if "does not exist or is not a regular file" in reason:
        return "no decodable audio found"
    return reason.removeprefix("Error : ")


def _unreadable_error(path: Path, soundfile: ModuleType, error: BaseException) -> AudioError:
    reason = _reason(error)
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        head = b""
    container = sniff_container(head)
    if container == "text":
        return AudioError(
            f"{path} is not audio (it looks like a text file).", fix=f"pass {_READABLE_HINT}."
        )
    readable = _NATIVE_CONTAINERS | ({"MP3"} if "MP3" in soundfile.available_formats() else set())
    if container in readable:
        return AudioError(
            f"{path} looks like {container} audio but cannot be decoded ({reason}); "
            "it is probably truncated or corrupt.",
            fix=f"export or record it again, or {_convert_fix(path)}",
        )
    described = f" ({container})" if container else ""
    return AudioError(
        f"{path} is in a format this build cannot read{described}: {reason}.",
        fix=_convert_fix(path),
    )
