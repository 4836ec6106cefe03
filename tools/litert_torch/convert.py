"""Models written by litert-torch 0.10 with random weights, for docs/writers.md (local only, never CI).

Run in a separate environment with torch 2.13 (CPU), litert-torch 0.10 and tensorflow-cpu 2.21
(litert-torch's generative layers import TensorFlow's flatbuffer schema):

    /work/venvs/torch/bin/python tools/litert_torch/convert.py OUT_DIR [QUANTIZE ...]

Writes a tiny TinyLlama-style decoder (2 layers, 2 heads of 8, one KV group, vocab 64, KV cache 32,
prefill 8, RMS norm and SDPA composites) as float, dynamic int8 and weight-only int8 files, each with
torch's greedy decoding of a fixed prompt; a small CNN and a small ViT with torch's output on a
seeded input. With QUANTIZE names (litert-torch's ``quantize`` options, e.g. ``fp16``
``dynamic_int4_block32``), only the decoder, in those forms (32 wide for the blockwise ones).
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import litert_torch
from litert_torch.generative.examples.tiny_llama import tiny_llama
from litert_torch.generative.layers import kv_cache as kv_utils
from litert_torch.generative.layers import model_config as cfg
from litert_torch.generative.utilities import converter, export_config

PROMPT, STEPS, PREFILL, CACHE = [5, 17, 3, 40, 22], 10, 8, 32


def decoder_config(width: int = 16) -> cfg.ModelConfig:
    """``width`` 32 for the blockwise int4 options, whose blocks of 32 must divide the weights' rows."""
    attention = cfg.AttentionConfig(num_heads=2, head_dim=width // 2, num_query_groups=1, rotary_base=10000,
                                    rotary_percentage=1.0)
    feed_forward = cfg.FeedForwardConfig(type=cfg.FeedForwardType.GATED,
                                         activation=cfg.ActivationConfig(cfg.ActivationType.SILU), intermediate_size=64)
    norm = cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM)
    block = cfg.TransformerBlockConfig(attn_config=attention, ff_config=feed_forward, pre_attention_norm_config=norm,
                                       post_attention_norm_config=norm)
    return cfg.ModelConfig(vocab_size=64, num_layers=2, max_seq_len=64, embedding_dim=width, block_configs=block,
                           final_norm_config=norm, lm_head_share_weight_with_embedding=False)


def torch_greedy(model) -> list[int]:
    with torch.no_grad():
        cache = kv_utils.KVCache.from_model_config(CACHE, model.config)
        tokens = torch.zeros((1, PREFILL), dtype=torch.int32)
        tokens[0, :len(PROMPT)] = torch.tensor(PROMPT)
        out = model(tokens, torch.arange(PREFILL, dtype=torch.int32), cache)
        chosen, position = [int(out["logits"][0, len(PROMPT) - 1].argmax())], len(PROMPT)
        for _ in range(STEPS):
            out = model(torch.tensor([[chosen[-1]]], dtype=torch.int32), torch.tensor([position], dtype=torch.int32),
                        out["kv_cache"])
            chosen.append(int(out["logits"][0, -1].argmax()))
            position += 1
    return chosen


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return torch.softmax(self.head(torch.flatten(self.features(x), 1)), -1)


class TinyViT(nn.Module):
    def __init__(self, dim=32, depth=2, heads=2, patch=4, image=16, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.encoder(x))[:, 0])


def main(out: Path, quantizations: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for quantize in quantizations or ("none", "dynamic_int8", "weight_only_int8"):
        clock = time.time()
        torch.manual_seed(0)
        width = 32 if "block" in quantize else 16
        model = tiny_llama.TinyLlama(decoder_config(width), mask_cache_size=CACHE).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0, 0.3)
        path = converter.convert_to_tflite(model, str(out), f"tiny_llama_w{width}", prefill_seq_len=PREFILL,
                                           kv_cache_max_len=CACHE, quantize=quantize,
                                           export_config=export_config.ExportConfig(output_logits_on_prefill=True))
        np.save(Path(path).with_suffix(".torch_tokens.npy"), np.array(torch_greedy(model)))
        print(f"{path}: {time.time() - clock:.1f} s", flush=True)
    if quantizations:
        return
    for name, model, shape in (("cnn", SmallCNN(), (1, 3, 32, 32)), ("vit", TinyViT(), (1, 3, 16, 16))):
        clock = time.time()
        torch.manual_seed(1)
        model, x = model.eval(), torch.rand(shape) * 2 - 1
        litert_torch.convert(model, (x,)).export(str(out / f"{name}.tflite"))
        with torch.no_grad():
            np.savez(out / f"{name}.torch.npz", x=x.numpy(), y=model(x).numpy())
        print(f"{out / name}.tflite: {time.time() - clock:.1f} s", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
