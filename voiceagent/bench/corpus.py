"""Benchmark corpora: folders of recordings and what was said in them.

A corpus is a folder of audio files (searched recursively). The reference transcript of
``name.wav`` is ``name.txt`` beside it, or its line ``name TEXT`` in a LibriSpeech
``*.trans.txt`` file in the same folder, so LibriSpeech folders work as they are. A recording
without a reference (or with an empty one) expects no speech: it is noise, and every turn the
assistant takes on it is a false turn. A folder with no references at all is a noise corpus.

With no folder given, the benchmark uses the sample set shipped with the package
(``voiceagent/bench/samples`` plus the bundled sample question).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from voiceagent.errors import UsageError
from voiceagent.paths import SAMPLE_QUESTION

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif"})
SAMPLES_DIR = Path(__file__).with_name("samples")
SAMPLE_QUESTION_TEXT = "Will we ever forget it."  # CMU ARCTIC a0005, see voiceagent/data/README.md
DEFAULT_CORPUS_NAME = "samples"


class CorpusKind(StrEnum):
    SPEECH = "speech"  # every recording has a reference
    NOISE = "noise"  # none has: nobody speaks
    MIXED = "mixed"


@dataclass(frozen=True)
class Utterance:
    """One recording of a corpus.

    Attributes:
        path: The audio file.
        name: Its id within the corpus (path relative to the corpus, without suffix).
        corpus: Name of the corpus it belongs to.
        reference: What was said, or None when nobody speaks (noise).
    """

    path: Path
    name: str
    corpus: str
    reference: str | None

    @property
    def expects_speech(self) -> bool:
        return bool(self.reference and self.reference.strip())


@dataclass(frozen=True)
class Corpus:
    name: str
    path: Path
    utterances: tuple[Utterance, ...]

    @property
    def kind(self) -> CorpusKind:
        speech = [u.expects_speech for u in self.utterances]
        if all(speech):
            return CorpusKind.SPEECH
        if not any(speech):
            return CorpusKind.NOISE
        return CorpusKind.MIXED

    def limited(self, limit: int | None) -> Corpus:
        """The first ``limit`` recordings (in name order), or all of them."""
        if limit is None:
            return self
        return Corpus(self.name, self.path, self.utterances[:limit])


def read_librispeech_transcripts(folder: Path) -> dict[str, str]:
    """``ID -> TEXT`` from every ``*.trans.txt`` in ``folder`` (lines "ID TEXT")."""
    references: dict[str, str] = {}
    for trans in sorted(folder.glob("*.trans.txt")):
        for line in _read_text(trans).splitlines():
            utterance_id, _, text = line.strip().partition(" ")
            if utterance_id:
                references[utterance_id] = text.strip()
    return references


def load_corpus(path: Path) -> Corpus:
    """Read a corpus folder: every audio file under it, with its reference if there is one.

    Raises:
        UsageError: The folder does not exist or holds no audio.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"corpus folder {path} does not exist.", fix="check the path.")
    if not path.is_dir():
        raise UsageError(
            f"corpus {path} is not a folder.",
            fix="pass a folder of audio files (name.txt beside name.wav is its transcript).",
        )
    audio_files = sorted(
        p for p in path.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )  # fmt: skip
    if not audio_files:
        raise UsageError(
            f"corpus folder {path} holds no audio files.",
            fix=f"put recordings there ({', '.join(sorted(AUDIO_SUFFIXES))}).",
        )
    transcripts: dict[Path, dict[str, str]] = {}
    utterances = []
    for audio in audio_files:
        folder = audio.parent
        if folder not in transcripts:
            transcripts[folder] = read_librispeech_transcripts(folder)
        beside = audio.with_suffix(".txt")
        if beside.is_file():
            reference: str | None = " ".join(_read_text(beside).split())
        else:
            reference = transcripts[folder].get(audio.stem)
        name = audio.relative_to(path).with_suffix("").as_posix()
        utterances.append(Utterance(audio, name, path.name or str(path), reference))
    return Corpus(path.name or str(path), path, tuple(utterances))


def default_corpus() -> Corpus:
    """The sample set shipped with the package: the bundled question plus ``samples/``."""
    shipped = load_corpus(SAMPLES_DIR)
    question = Utterance(
        SAMPLE_QUESTION, SAMPLE_QUESTION.stem, DEFAULT_CORPUS_NAME, SAMPLE_QUESTION_TEXT
    )
    others = tuple(
        Utterance(u.path, u.name, DEFAULT_CORPUS_NAME, u.reference) for u in shipped.utterances
    )
    return Corpus(DEFAULT_CORPUS_NAME, SAMPLES_DIR, (question, *others))


def load_corpora(paths: list[Path], limit: int | None = None) -> list[Corpus]:
    """The corpora to run (the sample set when ``paths`` is empty), each cut to ``limit``."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}.")
    corpora = [load_corpus(p) for p in paths] if paths else [default_corpus()]
    return [c.limited(limit) for c in corpora]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or exc}).") from None
