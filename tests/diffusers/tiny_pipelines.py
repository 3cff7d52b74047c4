"""Tiny, randomly initialised diffusers text-to-video pipelines, built from configs offline.

Like diffusers' own tests' ``get_dummy_components``, but nothing comes from the Hub: their
dummy components load a tokenizer (and a tiny T5) from hf-internal-testing, so here the
tokenizers are built from a vocabulary written on the spot and the text encoders from configs.
The weights are random; the videos are noise, which is all a test of the plumbing needs.

    python tests/diffusers/tiny_pipelines.py wan OUT_DIR      # save_pretrained to OUT_DIR
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path
from typing import Any


def tiny_wan() -> Any:
    """A WanPipeline (callback_on_step_end, flow-matching scheduler) of a few thousand weights.

    It takes num_frames = 4k+1 and sides that are multiples of 16.
    """
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel

    # A unigram vocabulary: the special tokens, "▁" + each letter, and single characters.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + c, -2.5) for c in string.ascii_lowercase]
    pieces += [(c, -3.0) for c in string.ascii_lowercase + string.digits + ".,;:!?'-"]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=64)
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return WanPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


def _byte_level_vocabulary(folder: Path) -> tuple[Path, Path]:
    """vocab.json and merges.txt of a byte-level BPE with no merges (one token per byte)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    chars = [chr(b) if b in printable else chr(next(extra)) for b in range(256)]
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def tiny_text_to_video_sd(workdir: Path) -> Any:
    """A TextToVideoSDPipeline (the older ``callback`` API, DDIM), diffusers' dummy sizes."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        TextToVideoSDPipeline,
        UNet3DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = _byte_level_vocabulary(workdir / "vocabulary")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        block_out_channels=(8, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=4,
        attention_head_dim=4,
        norm_num_groups=2,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(8,),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=32,
        norm_num_groups=2,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            hidden_size=4,
            intermediate_size=16,
            layer_norm_eps=1e-05,
            num_attention_heads=2,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=len(tokenizer),
            hidden_act="gelu",
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    return TextToVideoSDPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler
    )


def save(kind: str, out: Path) -> Path:
    pipe = tiny_wan() if kind == "wan" else tiny_text_to_video_sd(out.parent)
    pipe.save_pretrained(out)
    return out


if __name__ == "__main__":
    kind, folder = sys.argv[1], Path(sys.argv[2])
    print(save(kind, folder))
