"""The Telugu data kit: importers on tiny fixtures in each layout, the text bank, and the
synthetic corpus (determinism, split hygiene, pairing, format, loudness, voices, pauses)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from models.controls import EMOTIONS, SPEAKERS
from models.data.bank import INTENTS, OPENERS
from models.data.commands import add_data_commands
from models.data.crops import random_crops
from models.data.importers import hash_split, import_dataset
from models.data.manifest import (
    SPLITS,
    Dialogue,
    Entry,
    dialogue_pairs,
    intent_pairs,
    read_manifest,
    write_manifest,
)
from models.data.slots import SLOT_INTENTS, VALUES, value_splits, values_for
from models.data.stats import manifest_stats, nearest_intent_accuracy, slot_coverage, trigrams
from models.data.synth import (
    PERSONAS,
    PROSODY,
    SMALL_CORPUS,
    TARGET_DB,
    clauses,
    espeak,
    render_answer,
    speech_level_db,
    synthesize_corpus,
)
from models.data.wording import content_words, wording_splits
from models.speech.audio import write_audio

TELUGU = re.compile(r"[\u0C00-\u0C7F]")
RATE = 16_000


def cli(*argv: str) -> int:
    """Run `data ...` through a parser built the way models/cli.py builds its commands."""
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    add_data_commands(commands.add_parser("data").add_subparsers(dest="action", required=True))
    args = parser.parse_args(["data", *argv])
    assert args.log_level == "warning"
    return args.run(args)


def tone(path: Path, seconds: float, rate: int = 22_050) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    write_audio(path, 0.1 * np.sin(2 * np.pi * 220 * t), rate)


def median_f0(pcm: np.ndarray) -> float:
    """Median autocorrelation pitch (Hz) of the voiced 40 ms frames."""
    pitches = []
    for start in range(0, len(pcm) - 640, 160):
        frame = pcm[start : start + 640] - pcm[start : start + 640].mean()
        if np.sqrt((frame**2).mean()) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[639:]
        lag = RATE // 400 + int(np.argmax(ac[RATE // 400 : RATE // 60]))
        if ac[lag] > 0.5 * ac[0]:
            pitches.append(RATE / lag)
    return float(np.median(pitches))


def longest_inner_pause_ms(pcm: np.ndarray) -> int:
    """Longest run of 10 ms frames 25 dB below the loud frames, between first and last speech."""
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    quiet = rms < np.percentile(rms, 95) * 10 ** (-25 / 20)
    loud = np.flatnonzero(~quiet)
    best = run = 0
    for q in quiet[loud[0] : loud[-1] + 1]:
        run = run + 1 if q else 0
        best = max(best, run)
    return best * 10


# --- importers -----------------------------------------------------------------------------


def test_indictts_import(tmp_path):
    src = tmp_path / "Telugu_female"
    lines = {"train_telugufem_00001": "తెలుగు వాక్యం", "train_telugufem_00002": "నమస్కారం"}
    for i, utterance in enumerate(lines):
        tone(src / "wav" / f"{utterance}.wav", 0.5 + 0.25 * i)
    (src / "txt.done.data").write_text(
        "".join(f'( {u} "{t}" )\n' for u, t in lines.items()), encoding="utf-8"
    )
    out = tmp_path / "out" / "indictts.jsonl"
    assert import_dataset("indictts", src, out) == 2
    entries = read_manifest(out)
    assert [e.text for e in entries] == list(lines.values())
    assert [e.duration for e in entries] == pytest.approx([0.5, 0.75], abs=1e-3)
    assert {e.speaker for e in entries} == {"Telugu_female"}
    assert all(e.emotion == "NEUTRAL" and e.split in SPLITS for e in entries)
    assert all(e.path(out.parent).is_file() for e in entries)

    assert import_dataset("indictts", src, out, speaker="female_1") == 2
    assert {e.speaker for e in read_manifest(out)} == {"female_1"}


def test_openslr_import(tmp_path):
    ids = ["tem_0001_00000001", "tem_0001_00000002", "tef_0042_00000003"]
    for utterance in ids:
        tone(tmp_path / f"{utterance}.wav", 0.4)
    (tmp_path / "line_index.tsv").write_text(
        "".join(f"{u}\tవాక్యం {i}\n" for i, u in enumerate(ids)), encoding="utf-8"
    )
    out = tmp_path / "manifest.jsonl"
    assert import_dataset("openslr", tmp_path, out) == 3
    entries = read_manifest(out)
    assert [e.speaker for e in entries] == ["tem_0001", "tem_0001", "tef_0042"]
    assert [e.text for e in entries] == ["వాక్యం 0", "వాక్యం 1", "వాక్యం 2"]
    assert [e.audio for e in entries] == [f"{u}.wav" for u in ids]  # relative to the manifest
    assert all(e.duration == pytest.approx(0.4, abs=1e-3) for e in entries)


def test_csv_import_through_the_cli(tmp_path):
    tone(tmp_path / "clips" / "a.wav", 0.3)
    tone(tmp_path / "clips" / "b.wav", 0.6)
    table = tmp_path / "data.csv"
    table.write_text(
        "audio,text,speaker,emotion,split\n"
        "clips/a.wav,హహ్హ బాగుంది,asha,LAUGH,test\n"
        "clips/b.wav,సరే,ravi,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "csv.jsonl"
    assert cli("import", "--format", "csv", str(table), str(out)) == 0
    a, b = read_manifest(out)
    assert (a.speaker, a.emotion, a.split, a.text) == ("asha", "LAUGH", "test", "హహ్హ బాగుంది")
    assert (b.speaker, b.emotion, b.split) == ("ravi", "NEUTRAL", hash_split("ravi", "clips/b.wav"))
    assert b.duration == pytest.approx(0.6, abs=1e-3)

    table.write_text("audio,text,speaker,emotion\nclips/a.wav,సరే,asha,ANGRY\n", encoding="utf-8")
    with pytest.raises(ValueError, match=":2:.*ANGRY"):
        import_dataset("csv", table, out)


def test_hash_split_is_stable_and_proportional():
    splits = [hash_split("tem_0001", f"utt_{i}") for i in range(4000)]
    assert splits == [hash_split("tem_0001", f"utt_{i}") for i in range(4000)]
    shares = {s: splits.count(s) / len(splits) for s in SPLITS}
    assert shares["train"] == pytest.approx(0.9, abs=0.02)
    assert shares["test"] == pytest.approx(0.05, abs=0.015)
    assert {hash_split("x", f"{i}", (0, 0, 1)) for i in range(50)} == {"test"}


# --- the text bank ---------------------------------------------------------------------------


def test_bank_has_intents_paraphrases_and_answers_for_every_emotion():
    assert len(INTENTS) >= 40
    assert len({i.name for i in INTENTS}) == len(INTENTS)
    paraphrases = [p for i in INTENTS for p in i.paraphrases]
    assert len(set(paraphrases)) == len(paraphrases)  # else a split could leak a text
    assert all(len(i.paraphrases) >= 4 for i in INTENTS)
    assert all(TELUGU.search(p) for p in paraphrases)
    assert sum(bool(re.search("[A-Za-z]", p)) for p in paraphrases) >= len(paraphrases) // 5
    assert set(OPENERS) == set(EMOTIONS)
    for intent in INTENTS:
        for emotion in EMOTIONS:
            answer = intent.answer_for(emotion)
            assert TELUGU.search(answer) and answer.endswith(intent.answer)


def test_hold_out_puts_every_intent_in_every_split():
    for name, texts in [(i.name, i.paraphrases) for i in INTENTS] + [
        (i.name, i.templates) for i in SLOT_INTENTS
    ]:
        splits = wording_splits(name, texts)
        assert set(splits.values()) == set(SPLITS), name


def test_held_out_wordings_share_content_words_with_train():
    sharing = total = 0
    for name, texts in [(i.name, i.paraphrases) for i in INTENTS] + [
        (i.name, i.templates) for i in SLOT_INTENTS
    ]:
        splits = wording_splits(name, texts)
        train = set().union(*(content_words(t) for t in texts if splits[t] == "train"))
        for text in (t for t in texts if splits[t] == "test"):
            total += 1
            sharing += bool(content_words(text) & train)
    assert sharing / total > 0.7
    greeting = wording_splits(INTENTS[0].name, INTENTS[0].paraphrases)
    assert greeting["నమస్కారం!"] != "test"  # it shares no word with the other greetings


# --- slot intents ----------------------------------------------------------------------------


def test_slot_value_splits_are_disjoint_stable_and_seventy_fifteen_fifteen():
    for intent in SLOT_INTENTS:
        splits = value_splits(intent.slot)
        values = [v for split in SPLITS for v in splits[split]]
        assert sorted(values) == sorted(VALUES[intent.slot])
        assert len(set(values)) == len(values)  # disjoint, no value twice
        assert len(splits["train"]) / len(values) == pytest.approx(0.7, abs=0.06)
        assert len(splits["test"]) >= 3 and len(splits["validation"]) >= 3
        value_splits.cache_clear()
        assert value_splits(intent.slot) == splits  # the same split again
        some = values_for(intent.slot, 4)
        assert [len(some[s]) for s in SPLITS] == [3, 1, 1]
        assert all(set(some[s]) <= set(splits[s]) for s in SPLITS)
    for intent in SLOT_INTENTS:
        for template in range(len(intent.templates)):
            assert intent.say(template, "రాము").count("రాము") == 1
        assert "రాము" in intent.answer_with("రాము")


def test_slot_turns_say_their_value_and_their_answers_say_it_back(corpus):
    entries = read_manifest(corpus)
    slots = [e for e in entries if "slot" in e.extra]
    assert {e.extra["intent"] for e in slots} == {
        i.name for i in SLOT_INTENTS[: SMALL_CORPUS["slot_intents"]]
    }
    assert {e.dialogue.role for e in slots} == {"user", "agent"}
    for entry in slots:
        assert entry.extra["value"] in entry.text
        assert entry.extra["value"] in VALUES[entry.extra["slot"]]
    for user, answer in intent_pairs(entries):
        if "slot" in user.extra:
            assert answer.extra["value"] == user.extra["value"] and answer.split == user.split
    coverage = slot_coverage(entries)
    assert coverage["in_train"] == {"validation": 0, "test": 0}
    assert all(coverage["values"][split] for split in SPLITS)


# --- the synthetic corpus --------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    assert cli("synth", str(out), "--small", "--seed", "0") == 0
    return out / "manifest.jsonl"


def test_same_seed_same_bytes_other_seed_other_audio(corpus, tmp_path):
    again = synthesize_corpus(tmp_path / "again", seed=0, workers=1, **SMALL_CORPUS)
    assert again.read_bytes() == corpus.read_bytes()
    entries = read_manifest(corpus)
    for entry in entries:
        assert entry.path(again.parent).read_bytes() == entry.path(corpus.parent).read_bytes()

    other = synthesize_corpus(tmp_path / "other", seed=1, **SMALL_CORPUS)
    changed = [
        e
        for e in entries
        if e.path(other.parent).read_bytes() != e.path(corpus.parent).read_bytes()
    ]
    assert len(changed) > len(entries) // 2


def test_splits_hold_out_user_paraphrases(corpus):
    users = [e for e in read_manifest(corpus) if e.dialogue.role == "user"]
    by_intent = {i.name: i.paraphrases for i in INTENTS}
    by_intent.update({i.name: i.templates for i in SLOT_INTENTS})
    said = {s: set() for s in SPLITS}
    for e in users:
        wording = by_intent[e.extra["intent"]][e.extra["paraphrase"]]
        paraphrase = wording.format(value=e.extra.get("value"))
        assert paraphrase in e.text
        said[e.split].add(paraphrase)
    train_texts = [e.text for e in users if e.split == "train"]
    for split in ("validation", "test"):
        assert said[split]
        assert not any(p in t for p in said[split] for t in train_texts)
    assert not said["validation"] & said["test"]
    for split in SPLITS:
        assert {e.extra["intent"] for e in users if e.split == split} == {
            i.name
            for i in INTENTS[: SMALL_CORPUS["intents"]]
            + SLOT_INTENTS[: SMALL_CORPUS["slot_intents"]]
        }
    assert {e.speaker for e in users} == set(SPEAKERS)


def test_dialogue_pairs_resolve_within_each_split(corpus):
    for split in SPLITS:
        entries = read_manifest(corpus, split)
        users = [e for e in entries if e.dialogue.role == "user"]
        pairs = dialogue_pairs(entries)
        assert users and len(pairs) == len(users)
        for user, agent in pairs:
            assert agent.dialogue.role == "agent"
            assert agent.extra["intent"] == user.extra["intent"]
            answers = {i.name: i.answer for i in INTENTS}
            answers.update(
                {i.name: i.answer_with(str(user.extra.get("value"))) for i in SLOT_INTENTS}
            )
            assert all(clause in agent.text for clause in clauses(answers[user.extra["intent"]]))


def test_intent_pairs_give_each_turn_every_answer_of_its_intent_and_split(corpus):
    entries = read_manifest(corpus)
    pairs = intent_pairs(entries)
    linked = set((u.key, a.key) for u, a in dialogue_pairs(entries))
    assert linked <= {(u.key, a.key) for u, a in pairs}  # the dialogue links are among them
    for user, answer in pairs:
        assert (user.dialogue.role, answer.dialogue.role) == ("user", "agent")
        assert answer.extra["intent"] == user.extra["intent"] and answer.split == user.split
    for user in (e for e in entries if e.dialogue.role == "user"):
        expected = {
            a.key
            for a in entries
            if a.dialogue.role == "agent"
            and a.split == user.split
            and a.extra["intent"] == user.extra["intent"]
            and a.extra.get("value") == user.extra.get("value")
        }
        assert {a.key for u, a in pairs if u.key == user.key} == expected


def test_audio_is_16k_mono_and_loudness_normalised(corpus):
    entries = read_manifest(corpus)
    assert {e.emotion for e in entries} == {"NEUTRAL", *SMALL_CORPUS["emotions"]}
    for entry in entries:
        info = soundfile.info(str(entry.path(corpus.parent)))
        assert (info.samplerate, info.channels) == (16_000, 1)
        assert info.frames / info.samplerate == pytest.approx(entry.duration, abs=1e-3)
        pcm, _ = soundfile.read(str(entry.path(corpus.parent)), dtype="float32")
        target = TARGET_DB + PROSODY[entry.emotion].gain_db
        assert speech_level_db(pcm) == pytest.approx(target, abs=0.5), entry.audio
        assert -35 < 10 * np.log10((pcm.astype(np.float64) ** 2).mean()) < -15


def test_user_turns_have_an_internal_pause(corpus):
    for entry in read_manifest(corpus):
        if entry.dialogue.role == "user":
            pcm, _ = soundfile.read(str(entry.path(corpus.parent)), dtype="float32")
            assert longest_inner_pause_ms(pcm) >= 150, entry.audio


def test_personas_are_distinct_voices():
    assert set(PERSONAS) == set(SPEAKERS)
    assert len({p.voice for p in PERSONAS.values()}) == len(PERSONAS)
    sentence = "ఈ రోజు వాతావరణం చాలా బాగుంది, మీరు ఎలా ఉన్నారు?"
    pitch = {
        name: median_f0(espeak(sentence, p.voice, p.speed, p.pitch)) for name, p in PERSONAS.items()
    }
    assert pitch["female_1"] > 1.8 * pitch["male_2"]
    assert pitch["male_1"] > pitch["male_2"] and pitch["female_1"] > pitch["female_2"]


def test_emotions_change_pitch_and_laughter_adds_audio():
    intent, persona = INTENTS[0], PERSONAS["female_1"]
    rendered = {
        e: render_answer(intent.answer, persona, e, np.random.default_rng(0))[1]
        for e in ("NEUTRAL", "EXCITED", "EMPATHY", "LAUGH")
    }
    f0 = {e: median_f0(pcm) for e, pcm in rendered.items()}
    assert f0["EXCITED"] > 1.05 * f0["NEUTRAL"] > 1.05**2 * f0["EMPATHY"]
    assert len(rendered["LAUGH"]) > len(rendered["NEUTRAL"]) + RATE // 4


def test_random_crops(corpus):
    entries = read_manifest(corpus, "train")
    crops = list(random_crops(entries, corpus.parent, 0.5, 6, np.random.default_rng(3)))
    assert len(crops) == 6
    assert all(c.dtype == np.float32 and c.shape == (8000,) for c in crops)
    assert sum(np.abs(c).max() > 0.01 for c in crops) >= 4  # a crop may fall in a pause
    again = list(random_crops(entries, corpus.parent, 0.5, 6, np.random.default_rng(3)))
    assert all(np.array_equal(a, b) for a, b in zip(crops, again, strict=True))
    assert not np.array_equal(crops[0], crops[1])


def test_stats_count_hours_and_measure_how_new_held_out_wording_is(tmp_path, capsys):
    def turn(key: str, text: str, intent: str, split: str, role: str = "user") -> Entry:
        dialogue = Dialogue(id=key, role=role, pair=None)
        extra = {"intent": intent}
        return Entry(f"{key}.wav", 1.8, text, "male_1", "NEUTRAL", split, dialogue, key, extra)

    entries = [
        turn("t1", "ఈ రోజు వాతావరణం ఎలా ఉంది?", "weather", "train"),
        turn("t2", "నమస్కారం అండీ!", "greeting", "train"),
        turn("a1", "ఎండగా ఉంది.", "weather", "train", role="agent"),
        turn("v1", "అంటే... వాతావరణం ఎలా ఉంది", "weather", "validation"),  # shared wording
        turn("s1", "హలో, ఎలా ఉంది?", "greeting", "test"),  # new wording, nearer to weather
        turn("s2", "వాతావరణం చెప్పండి", "weather", "test"),
    ]
    stats = manifest_stats(entries)
    assert stats["files"] == 6 and stats["hours"] == pytest.approx(6 * 1.8 / 3600)
    assert stats["split"]["train"] == {"files": 3, "hours": pytest.approx(3 * 1.8 / 3600)}
    assert stats["role"]["agent"]["files"] == 1 and stats["intents"] == 2
    accuracy = stats["nearest_intent_accuracy"]
    assert accuracy["validation"] == 1.0
    assert accuracy["test"] == 0.5
    assert trigrams("అంటే... వాతావరణం!") == trigrams("అంటే వాతావరణం")
    assert nearest_intent_accuracy([turn("x", "హలో", "", "train", role="agent")]) == {}

    path = tmp_path / "manifest.jsonl"
    write_manifest(path, entries)
    assert cli("stats", str(path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["nearest_intent_accuracy"] == accuracy
    assert cli("stats", str(path)) == 0
    text = capsys.readouterr().out
    assert "6 files, 0.00 h" in text and "validation user turns" in text and "100.0 %" in text
