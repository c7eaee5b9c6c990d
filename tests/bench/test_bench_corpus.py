"""Corpus folders: NAME.txt references, LibriSpeech transcripts, noise, the bundled samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceagent.audio.files import probe_audio, write_wav
from voiceagent.bench.corpus import (
    SAMPLE_QUESTION_TEXT,
    CorpusKind,
    default_corpus,
    load_corpora,
    load_corpus,
)
from voiceagent.errors import UsageError

pytestmark = pytest.mark.unit


def _wav(path: Path, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, np.zeros(int(16000 * seconds), np.float32), 16000)
    return path


def test_name_txt_beside_the_audio_is_its_reference(tmp_path):
    _wav(tmp_path / "b.wav")
    _wav(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("  Hello\n  world. \n")
    (tmp_path / "b.txt").write_text("Good morning.")
    (tmp_path / "notes.md").write_text("not audio")
    corpus = load_corpus(tmp_path)
    assert [u.name for u in corpus.utterances] == ["a", "b"]
    assert [u.reference for u in corpus.utterances] == ["Hello world.", "Good morning."]
    assert corpus.kind is CorpusKind.SPEECH
    assert corpus.name == tmp_path.name
    assert all(u.expects_speech for u in corpus.utterances)


def test_a_librispeech_folder_works_as_it_is(tmp_path):
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "84" / "121123"
    for index in range(3):
        _wav(chapter / f"84-121123-000{index}.flac")
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n"
        "84-121123-0001 BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED\n"
        "84-121123-0002 AT THIS MOMENT THE WHOLE SOUL OF THE OLD MAN SEEMED CENTRED\n"
    )
    corpus = load_corpus(tmp_path / "LibriSpeech")
    assert [u.name for u in corpus.utterances] == [
        f"dev-clean/84/121123/84-121123-000{i}" for i in range(3)
    ]
    assert corpus.utterances[0].reference == "GO DO YOU HEAR"
    assert corpus.utterances[2].reference.endswith("SEEMED CENTRED")
    assert corpus.kind is CorpusKind.SPEECH


def test_a_folder_without_references_is_noise(tmp_path):
    _wav(tmp_path / "dishes.wav")
    _wav(tmp_path / "music.wav")
    (tmp_path / "music.license.txt").write_text("CC BY 3.0")  # not a reference: other name
    corpus = load_corpus(tmp_path)
    assert corpus.kind is CorpusKind.NOISE
    assert all(u.reference is None and not u.expects_speech for u in corpus.utterances)


def test_an_empty_reference_expects_no_speech(tmp_path):
    _wav(tmp_path / "quiet.wav")
    (tmp_path / "quiet.txt").write_text("\n")
    _wav(tmp_path / "talk.wav")
    (tmp_path / "talk.txt").write_text("hi there")
    corpus = load_corpus(tmp_path)
    assert corpus.kind is CorpusKind.MIXED
    assert [u.expects_speech for u in corpus.utterances] == [False, True]


def test_limit_keeps_the_first_recordings_of_each_corpus(tmp_path):
    for name in ("c", "a", "b"):
        _wav(tmp_path / "one" / f"{name}.wav")
        _wav(tmp_path / "two" / f"{name}.wav")
    corpora = load_corpora([tmp_path / "one", tmp_path / "two"], limit=2)
    assert [[u.name for u in c.utterances] for c in corpora] == [["a", "b"], ["a", "b"]]
    with pytest.raises(UsageError):
        load_corpora([tmp_path / "one"], limit=0)


def test_hidden_files_are_ignored(tmp_path):
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / ".cache" / "b.wav")
    assert [u.name for u in load_corpus(tmp_path).utterances] == ["a"]


@pytest.mark.parametrize("problem", ["missing", "file", "empty"])
def test_a_bad_corpus_is_one_clear_usage_error(tmp_path, problem):
    target = tmp_path / "corpus"
    if problem == "file":
        target.write_text("x")
    elif problem == "empty":
        target.mkdir()
    with pytest.raises(UsageError) as caught:
        load_corpus(target)
    assert str(target) in str(caught.value)


def test_the_default_corpus_is_the_shipped_sample_set():
    corpus = default_corpus()
    assert corpus.kind is CorpusKind.SPEECH
    assert len(corpus.utterances) == 4
    first = corpus.utterances[0]
    assert first.name == "sample_question" and first.reference == SAMPLE_QUESTION_TEXT
    for utterance in corpus.utterances:
        info = probe_audio(utterance.path)
        assert (info.sample_rate_hz, info.channels) == (16000, 1)
        assert 1.0 < info.duration_s < 4.0
        assert utterance.corpus == "samples"
    assert load_corpora([]) == [corpus]
