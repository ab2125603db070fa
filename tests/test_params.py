"""Exact parameter counts against the totals published for each checkpoint (model cards / safetensors)."""

import pytest

from ftlaunch.config.build import model_spec
from ftlaunch.forecast.params import count_params
from tests.conftest import load

PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3.1-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-70b": 70_553_706_496,
    "mistral-7b": 7_241_732_096,
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-7b": 7_615_616_512,
    "qwen2.5-72b": 72_706_203_648,
    "gemma-2-9b": 9_241_705_984,
    "phi-3-mini": 3_821_079_552,
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.2-3b": 3_212_749_824,
    "llama-3.3-70b": 70_553_706_496,
    "qwen3-8b": 8_190_735_360,
    "mixtral-8x7b": 46_702_792_704,
    "qwen3-30b-a3b": 30_532_122_624,
    "qwen1.5-moe-a2.7b": 14_315_784_192,
    "olmoe-1b-7b": 6_919_161_856,
    # text model of the multimodal checkpoint: keras-hub's gemma3_12b_text preset (11,765,788,416 with its
    # 262,144-entry vocabulary) + 64 more rows of 3840 for HF's 262,208-entry one.
    "gemma-3-12b": 11_766_034_176,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_total_matches_published(name):
    assert count_params(model_spec(load("model", name))).total == PUBLISHED[name]


def test_tiny_by_hand():
    # h=128, I=384, L=2, 4 heads of 32, 2 kv heads, V=512, untied
    h, i, kv, v = 128, 384, 64, 512
    layer = h * h + 2 * h * kv + h * h + 3 * h * i + 2 * h
    p = count_params(model_spec(load("model", "tiny")), lora_r=8)
    assert p.total == 2 * v * h + 2 * layer + h
    # LoRA r=8 on all 7 projections: r*(in+out) each
    lora_layer = 8 * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h))
    assert p.lora == 2 * lora_layer


def test_lora_target_subset_and_unknown():
    m = model_spec(load("model", "llama-2-7b"))
    qv = count_params(m, 16, "q_proj,v_proj").lora
    assert qv == 32 * 16 * (2 * 4096 + 2 * 4096)
    from ftlaunch.contract.errors import ConfigError

    with pytest.raises(ConfigError, match="c_attn"):
        count_params(m, 16, "c_attn")
