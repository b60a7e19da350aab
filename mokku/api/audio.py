"""Spoken answers on chat (``modalities: ["text", "audio"]``): the echo as the transcript, and
silence as long as saying it would take, in the format asked for.

The audio is real, decodable audio of its format (24 kHz mono, as the real API's): PCM (``pcm16``),
a WAV file, MPEG-2 Layer III frames, AAC in ADTS frames, FLAC, Opus in Ogg. A client can play,
save or measure it; it only says nothing. How long it lasts is bounded (``MAX_SECONDS``), so a long
echo cannot make a stream of gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

from mokku import errors
from mokku.api import validate

FORMATS = ("wav", "aac", "mp3", "flac", "opus", "pcm16")
RATE = 24_000  # samples a second, mono, as the real API speaks
SECONDS_PER_TOKEN = 0.3  # about how long a token takes to say
MAX_SECONDS = 120.0  # an answer's, all its choices' together; under 2,048 FLAC frames (two-byte numbers)
TOKENS_PER_SECOND = 10  # the audio tokens an answer's usage counts for each second
EXPIRES_S = 3600  # how long the real API keeps an answer's audio for a later turn
STREAM_FORMAT = "pcm16"  # the only format a stream speaks
CHUNK_SECONDS = 0.5  # a stream's audio, in events of this much


def asked_format(body: Mapping[str, Any], streaming: bool) -> Optional[str]:
    """The format a spoken answer is asked in (None: text only), once ``audio`` is checked by
    type: refused, in the real API's words, without ``audio`` or in a format a stream cannot carry."""
    modalities = body.get("modalities")
    if not isinstance(modalities, list) or "audio" not in modalities:
        return None
    audio = body.get("audio")
    if audio is None:
        raise validate.missing("audio")
    format_ = str(audio["format"])
    if streaming and format_ != STREAM_FORMAT:
        raise errors.invalid_request(
            f"Unsupported value: 'audio.format' does not support '{format_}' when stream=true. "
            f"Supported values are: '{STREAM_FORMAT}'.",
            "audio.format",
            "unsupported_value",
        )
    return format_


def seconds(text_tokens: int, choices: int = 1) -> float:
    """How long each of an answer's ``choices`` speaks: ``MAX_SECONDS`` at most among them all."""
    return min(text_tokens * SECONDS_PER_TOKEN, MAX_SECONDS / choices)


def audio_tokens(text_tokens: int, choices: int = 1) -> int:
    return round(seconds(text_tokens, choices) * TOKENS_PER_SECOND)


def spoken(
    audio_id: str, transcript: str, text_tokens: int, format_: str, created: int, choices: int = 1
) -> Dict[str, Any]:
    """A whole answer's ``message.audio``, one of ``choices``."""
    data = _ENCODERS[format_](_samples(seconds(text_tokens, choices)))
    return {
        "id": audio_id,
        "data": base64.b64encode(data).decode("ascii"),
        "expires_at": created + EXPIRES_S,
        "transcript": transcript,
    }


def pcm_chunks(text_tokens: int, choices: int = 1) -> Iterator[str]:
    """A stream's audio (one of ``choices``): base64 PCM in events of ``CHUNK_SECONDS`` at most."""
    left = _samples(seconds(text_tokens, choices))
    step = int(RATE * CHUNK_SECONDS)
    while left > 0:
        count = min(step, left)
        yield base64.b64encode(bytes(2 * count)).decode("ascii")
        left -= count


def _samples(duration: float) -> int:
    return max(1, int(duration * RATE))


def _pcm16(samples: int) -> bytes:
    return bytes(2 * samples)


def _wav(samples: int) -> bytes:
    size = 2 * samples
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, 2 * RATE, 2, 16)
    return header + b"data" + struct.pack("<I", size) + bytes(size)


class _Bits:
    """Bits written most significant first, as the audio formats' headers lay them out."""

    def __init__(self) -> None:
        self.value, self.count = 0, 0

    def put(self, value: int, width: int) -> _Bits:
        self.value = (self.value << width) | (value & ((1 << width) - 1))
        self.count += width
        return self

    def bytes(self) -> bytes:
        pad = -self.count % 8
        return (self.value << pad).to_bytes((self.count + pad) // 8, "big")


# MPEG-2 Layer III at 24 kHz, 32 kbit/s, mono, no CRC: 576 samples in 96 bytes. Its side
# information and main data all zero: no scale factors, no spectrum, silence.
_MP3_FRAME = bytes((0xFF, 0xF3, 0x44, 0xC4)) + bytes(92)


def _mp3(samples: int) -> bytes:
    return _MP3_FRAME * math.ceil(samples / 576)


def _adts_frame() -> bytes:
    """AAC-LC, 24 kHz mono, one raw data block: a channel element with no bands (all silence)."""
    payload = (
        _Bits()
        .put(0, 3)  # ID_SCE
        .put(0, 4)  # its instance tag
        .put(100, 8)  # global gain
        .put(0, 1 + 2 + 1)  # ics_info: reserved, a long window, its shape
        .put(0, 6)  # max_sfb: no bands
        .put(0, 1 + 1 + 1 + 1)  # no prediction, pulses, TNS, gain control
        .put(7, 3)  # ID_END
        .bytes()
    )
    length = 7 + len(payload)
    header = (
        _Bits()
        .put(0xFFF, 12)
        .put(0, 1 + 2)  # MPEG-4, layer 0
        .put(1, 1)  # no CRC
        .put(1, 2)  # AAC LC
        .put(6, 4)  # 24 kHz
        .put(0, 1)
        .put(1, 3)  # mono
        .put(0, 4)
        .put(length, 13)
        .put(0x7FF, 11)  # a variable bit rate
        .put(0, 2)  # one raw data block
        .bytes()
    )
    return header + payload


_AAC_FRAME = _adts_frame()


def _aac(samples: int) -> bytes:
    return _AAC_FRAME * math.ceil(samples / 1024)


def _crc(data: bytes, width: int, poly: int) -> int:
    """A CRC of ``width`` bits, most significant bit first, no reflection, zero start."""
    top, mask, crc = 1 << (width - 1), (1 << width) - 1, 0
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


_FLAC_BLOCK = 4096


def _flac(samples: int) -> bytes:
    """STREAMINFO, then frames of a constant subframe of zeros, each checked as FLAC checks it."""
    info = (
        _Bits()
        .put(_FLAC_BLOCK, 16)
        .put(_FLAC_BLOCK, 16)
        .put(0, 24)  # frame sizes unknown
        .put(0, 24)
        .put(RATE, 20)
        .put(0, 3)  # one channel
        .put(15, 5)  # 16 bits a sample
        .put(samples, 36)
        .bytes()
    ) + bytes(16)  # no MD5
    out = [b"fLaC", bytes((0x80,)) + len(info).to_bytes(3, "big"), info]
    for number, start in enumerate(range(0, samples, _FLAC_BLOCK)):
        size = min(_FLAC_BLOCK, samples - start)
        # Fixed blocks; the block size at the header's end (7); 24 kHz (7); mono; 16 bits (4).
        head = _Bits().put(0xFFF8, 16).put(7, 4).put(7, 4).put(0, 4).put(4, 3).put(0, 1)
        if number < 0x80:  # the frame number, coded as UTF-8 codes a character
            head.put(number, 8)
        else:
            head.put(0b110, 3).put(number >> 6, 5).put(0b10, 2).put(number & 0x3F, 6)
        header = head.put(size - 1, 16).bytes()
        frame = header + bytes((_crc(header, 8, 0x07), 0, 0, 0))  # a constant subframe of 0
        out.append(frame + _crc(frame, 16, 0x8005).to_bytes(2, "big"))
    return b"".join(out)


def _ogg_page(serial: int, sequence: int, granule: int, packets: List[bytes], flags: int) -> bytes:
    lacing = bytearray()
    for packet in packets:
        lacing += bytes((255,)) * (len(packet) // 255) + bytes((len(packet) % 255,))
    page = bytearray(
        b"OggS"
        + struct.pack("<BBqIII", 0, flags, granule, serial, sequence, 0)
        + bytes((len(lacing),))
        + lacing
        + b"".join(packets)
    )
    page[22:26] = struct.pack("<I", _crc(bytes(page), 32, 0x04C11DB7))
    return bytes(page)


_OPUS_FRAME = 960  # 20 ms at 48 kHz, the rate Opus counts in
_OPUS_SILENCE = bytes((0xF8, 0xFF, 0xFE))  # 20 ms of CELT silence, as libopus codes it
_PRE_SKIP = 312


def _opus(samples: int) -> bytes:
    serial = binascii.crc32(b"mokku")
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, _PRE_SKIP, RATE, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 5) + b"mokku" + struct.pack("<I", 0)
    pages = [_ogg_page(serial, 0, 0, [head], 2), _ogg_page(serial, 1, 0, [tags], 0)]
    # Opus counts at 48 kHz; the frames cover the decoder's pre-skip too, and the last page's
    # position says where the audio ends.
    end = _PRE_SKIP + samples * 2
    frames = math.ceil(end / _OPUS_FRAME)
    sequence, done = 2, 0
    while done < frames:
        batch = min(255, frames - done)
        done += batch
        last = 4 if done == frames else 0
        granule = min(done * _OPUS_FRAME, end)
        pages.append(_ogg_page(serial, sequence, granule, [_OPUS_SILENCE] * batch, last))
        sequence += 1
    return b"".join(pages)


_ENCODERS: Dict[str, Callable[[int], bytes]] = {
    "pcm16": _pcm16,
    "wav": _wav,
    "mp3": _mp3,
    "aac": _aac,
    "flac": _flac,
    "opus": _opus,
}
