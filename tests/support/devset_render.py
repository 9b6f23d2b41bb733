#!/usr/bin/env python3
"""Render the recognition dev set (tests/devset/) once into a cache directory, and write the
manifest (JSON lines) that tests/support/recognition_devset.rs reads.

Run with the speech venv's Python (tests/support/speech_venv.sh prints the venv; it has piper-tts
and numpy). Offline: flite through libflite1 (ctypes), espeak-ng through its CLI, Piper voices from
their PyPI packages. Every clip is keyed by its content (voice spec + text + RENDER_VERSION), so a
second run renders nothing, and a changed text or voice renders only that clip.

What is rendered (the plan is deterministic, written down in tests/devset/README.md):
- each reply text of tests/devset/<set>.json is said by FIVE voices of its own half
  (tests/devset/voices.json): one flite voice, one Piper voice and three espeak-ng voices,
  taken in turn within each family so every voice says about as many replies;
- per set and half, 8 kinds of noise-only lines (no speech) x 2 seeds;
- each spoken item gets a line condition (clean, noise at 20 or 10 dB SNR, quiet, loud) from a
  hash of its id; the Rust side applies it (with the G.711 chain) when it reads the clip.

Usage: devset_render.py [--cache DIR] [--quiet]   prints the manifest path on stdout.
Cache: --cache, else $SIP_ASSISTANT_DEVSET_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/sip-assistant-devset.
"""

import argparse
import concurrent.futures
import ctypes
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

RENDER_VERSION = 1
HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "devset"
SETS = ["yesno", "departments", "weekdays", "names"]
# Voices each text is said by, per family.
PER_TEXT = {"flite": 1, "piper": 1, "espeak": 3}
NOISE_KINDS = ["silence", "hiss_low", "hiss_high", "hum50", "hum60", "clicks", "crackle", "hum_hiss"]
NOISE_SEEDS = 2
NOISE_SECONDS = 2.5


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def unit(key: str) -> float:
    """A number in [0, 1) from `key`, the same on every machine."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(1 << 48)


def condition(item_id: str) -> dict:
    """The line condition of a spoken item: 55 % clean, 15 % noise at 20 dB SNR, 10 % at 10 dB,
    10 % quiet (-15 dB), 10 % loud (+8 dB, clipping at the peaks)."""
    u = unit("condition:" + item_id)
    if u < 0.55:
        return {"name": "clean", "gain_db": 0.0, "snr_db": None}
    if u < 0.70:
        return {"name": "snr20", "gain_db": 0.0, "snr_db": 20.0}
    if u < 0.80:
        return {"name": "snr10", "gain_db": 0.0, "snr_db": 10.0}
    if u < 0.90:
        return {"name": "quiet", "gain_db": -15.0, "snr_db": None}
    return {"name": "loud", "gain_db": 8.0, "snr_db": None}


def write_wav(path: Path, rate: int, samples: bytes) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    os.replace(tmp, path)


class Flite:
    """libflite1 through ctypes: one process-wide library, voices registered on first use."""

    class Wave(ctypes.Structure):
        _fields_ = [
            ("type", ctypes.c_char_p),
            ("sample_rate", ctypes.c_int),
            ("num_samples", ctypes.c_int),
            ("num_channels", ctypes.c_int),
            ("samples", ctypes.POINTER(ctypes.c_short)),
        ]

    LIBS = {
        "slt": ("libflite_cmu_us_slt.so.1", "register_cmu_us_slt"),
        "kal": ("libflite_cmu_us_kal16.so.1", "register_cmu_us_kal16"),
        "awb": ("libflite_cmu_us_awb.so.1", "register_cmu_us_awb"),
        "rms": ("libflite_cmu_us_rms.so.1", "register_cmu_us_rms"),
    }

    def __init__(self):
        g = ctypes.RTLD_GLOBAL
        self.lib = ctypes.CDLL("libflite.so.1", mode=g)
        for dep in ["libflite_usenglish.so.1", "libflite_cmulex.so.1"]:
            ctypes.CDLL(dep, mode=g)
        self.lib.flite_init()
        self.lib.flite_text_to_wave.restype = ctypes.POINTER(Flite.Wave)
        self.lib.flite_text_to_wave.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        self.lib.delete_wave.argtypes = [ctypes.POINTER(Flite.Wave)]
        self.voices = {}

    def say(self, voice: str, text: str):
        if voice not in self.voices:
            lib, register = Flite.LIBS[voice]
            fn = getattr(ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL), register)
            fn.restype = ctypes.c_void_p
            fn.argtypes = [ctypes.c_void_p]
            self.voices[voice] = fn(None)
        w = self.lib.flite_text_to_wave(text.encode(), self.voices[voice])
        if not w:
            raise RuntimeError(f"flite {voice} cannot say {text!r}")
        wv = w.contents
        data = ctypes.string_at(wv.samples, wv.num_samples * 2)
        rate = wv.sample_rate
        self.lib.delete_wave(w)
        return rate, data


def espeak(spec: dict, text: str, path: Path) -> None:
    """espeak-ng's CLI writes the WAV itself (22.05 kHz)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp.wav")
    subprocess.run(
        ["espeak-ng", "-v", spec["voice"], "-s", str(spec["speed"]), "-p", str(spec["pitch"]),
         "-w", str(tmp), "--", text],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.replace(tmp, path)


class Piper:
    def __init__(self):
        from piper import PiperVoice, SynthesisConfig  # noqa: F401 (checked here, used below)

        self.voices = {}

    def say(self, spec: dict, text: str, path: Path) -> None:
        from piper import PiperVoice, SynthesisConfig

        key = (spec["package"], spec["model"])
        if key not in self.voices:
            pkg = importlib.import_module(spec["package"])
            model = Path(pkg.__file__).parent / "data" / spec["model"]
            self.voices[key] = PiperVoice.load(str(model))
        cfg = SynthesisConfig(
            length_scale=spec["length_scale"],
            noise_scale=spec["noise_scale"],
            noise_w_scale=spec["noise_w_scale"],
        )
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with wave.open(str(tmp), "wb") as w:
            self.voices[key].synthesize_wav(text, w, syn_config=cfg)
        os.replace(tmp, path)


def noise_clip(kind: str, seed: int):
    """A line with no speech on it, 16 kHz: silence, hiss, mains hum, clicks, crackle."""
    import numpy as np

    rate = 16000
    n = int(NOISE_SECONDS * rate)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = np.zeros(n)
    if kind == "silence":
        x = rng.normal(0, 3, n)
    elif kind == "hiss_low":
        x = rng.normal(0, 150, n)
    elif kind == "hiss_high":
        x = rng.normal(0, 1200, n)
    elif kind in ("hum50", "hum60", "hum_hiss"):
        f = 60.0 if kind == "hum60" else 50.0
        for h, a in [(1, 2500), (2, 900), (3, 700), (5, 300)]:
            x += a * np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6.28))
        if kind == "hum_hiss":
            x += rng.normal(0, 400, n)
    elif kind == "clicks":
        x = rng.normal(0, 40, n)
        for at in rng.integers(0, n - 80, 12):
            x[at : at + 40] += rng.choice([-1, 1]) * 12000 * np.exp(-np.arange(40) / 6)
    elif kind == "crackle":
        x = rng.normal(0, 60, n)
        bursts = rng.integers(0, n - 800, 25)
        for at in bursts:
            x[at : at + 800] += rng.normal(0, 2500, 800) * (rng.random(800) < 0.08)
    else:
        raise ValueError(kind)
    return rate, np.clip(x, -32768, 32767).astype("<i2").tobytes()


def plan(voices: list) -> list:
    """Every item of the dev set, without audio: replies x sampled voices, then noise lines."""
    by_half_family = {}
    for v in voices:
        by_half_family.setdefault((v["half"], v["family"]), []).append(v)
    turn = {}
    items = []
    for set_name in SETS:
        data = json.loads((DATA / f"{set_name}.json").read_text())
        for half, kind, expect, text in data["replies"]:
            for family, k in PER_TEXT.items():
                pool = by_half_family.get((half, family), [])
                if not pool:
                    continue
                start = turn.get((half, family), 0)
                turn[(half, family)] = start + k
                for j in range(min(k, len(pool))):
                    v = pool[(start + j) % len(pool)]
                    item_id = f"{set_name}|{kind}|{text}|{v['id']}"
                    items.append({
                        "id": item_id, "set": set_name, "kind": kind, "text": text,
                        "expect": expect, "half": half, "voice": v["id"], "family": family,
                        "condition": condition(item_id),
                        "render": {"family": family, "spec": v["spec"], "text": text},
                    })
        for half in ["tune", "held"]:
            for kind in NOISE_KINDS:
                for s in range(NOISE_SEEDS):
                    seed = int(unit(f"noise:{set_name}:{half}:{kind}:{s}") * 1e9)
                    item_id = f"{set_name}|noise|{kind}#{s}|{half}"
                    items.append({
                        "id": item_id, "set": set_name, "kind": "noise", "text": f"<{kind}>",
                        "expect": None, "half": half, "voice": f"noise/{kind}", "family": "noise",
                        "condition": {"name": "clean", "gain_db": 0.0, "snr_db": None},
                        "render": {"family": "noise", "spec": {"kind": kind, "seed": seed}},
                    })
    return items


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    cache = Path(
        args.cache
        or os.environ.get("SIP_ASSISTANT_DEVSET_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sip-assistant-devset"
    )
    audio = cache / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    voices = json.loads((DATA / "voices.json").read_text())["voices"]
    items = plan(voices)
    todo = []
    for it in items:
        key = digest({"v": RENDER_VERSION, **it["render"]})
        it["audio"] = str(audio / f"{key}.wav")
        if not Path(it["audio"]).exists():
            todo.append(it)
    # One clip may serve several items (the same text and voice in two sets).
    unique = {it["audio"]: it for it in todo}
    began = time.monotonic()
    if unique and not args.quiet:
        print(f"devset: rendering {len(unique)} clips into {audio}", file=sys.stderr)
    flite = piper = None
    espeak_jobs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for path, it in unique.items():
            r = it["render"]
            fam, spec = r["family"], r["spec"]
            if fam == "espeak":
                espeak_jobs.append(pool.submit(espeak, spec, r["text"], Path(path)))
            elif fam == "flite":
                flite = flite or Flite()
                write_wav(Path(path), *flite.say(spec["voice"], r["text"]))
            elif fam == "piper":
                piper = piper or Piper()
                piper.say(spec, r["text"], Path(path))
            elif fam == "noise":
                write_wav(Path(path), *noise_clip(spec["kind"], spec["seed"]))
        for job in espeak_jobs:
            job.result()
    if unique and not args.quiet:
        print(f"devset: rendered {len(unique)} clips in {time.monotonic() - began:.1f} s", file=sys.stderr)
    # The manifest is named after what it lists, so a changed dev set never reads a stale one.
    lines = []
    for it in items:
        row = {k: v for k, v in it.items() if k != "render"}
        lines.append(json.dumps(row, sort_keys=True))
    body = "\n".join(lines) + "\n"
    manifest = cache / f"manifest-{hashlib.sha256(body.encode()).hexdigest()[:16]}.jsonl"
    if not manifest.exists():
        fd, tmp = tempfile.mkstemp(dir=cache)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(tmp, manifest)
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
