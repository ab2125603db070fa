"""Real-size config.json values of one model per supported family (source: each model's config.json on the
Hugging Face Hub), as kwargs of transformers' config classes; the catalog entry ftlaunch/conf/model/<key>.yaml states
the same facts. Tiny variants keep each family's quirks at a size that trains on CPU in a second."""

from __future__ import annotations

# catalog key -> (model_type, config kwargs)
REAL = {
    "llama-3.2-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
        max_position_embeddings=131072, tie_word_embeddings=True)),
    "mistral-7b": ("mistral", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
        sliding_window=None, tie_word_embeddings=False)),
    "qwen2.5-7b": ("qwen2", dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, max_position_embeddings=131072,
        tie_word_embeddings=False)),
    "qwen3-8b": ("qwen3", dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
        max_position_embeddings=40960, tie_word_embeddings=False)),
    "gemma-2-9b": ("gemma2", dict(hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
        num_attention_heads=16, num_key_value_heads=8, head_dim=256, vocab_size=256000,
        max_position_embeddings=8192, sliding_window=4096)),
    # multimodal checkpoint: the language model's facts sit under text_config (the vision tower is not trained)
    "gemma-3-12b": ("gemma3", dict(text_config=dict(hidden_size=3840, intermediate_size=15360,
        num_hidden_layers=48, num_attention_heads=16, num_key_value_heads=8, head_dim=256, vocab_size=262208,
        max_position_embeddings=131072, sliding_window=1024, sliding_window_pattern=6))),
    "phi-3-mini": ("phi3", dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096,
        sliding_window=2047, tie_word_embeddings=False)),
    "mixtral-8x7b": ("mixtral", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
        num_local_experts=8, num_experts_per_tok=2, tie_word_embeddings=False)),
    "qwen1.5-moe-a2.7b": ("qwen2_moe", dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
        num_attention_heads=16, num_key_value_heads=16, vocab_size=151936, max_position_embeddings=8192,
        num_experts=60, num_experts_per_tok=4, moe_intermediate_size=1408,
        shared_expert_intermediate_size=5632, decoder_sparse_step=1, tie_word_embeddings=False)),
    "qwen3-30b-a3b": ("qwen3_moe", dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=48,
        num_attention_heads=32, num_key_value_heads=4, head_dim=128, vocab_size=151936,
        max_position_embeddings=40960, num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768,
        decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=False)),
    "olmoe-1b-7b": ("olmoe", dict(hidden_size=2048, intermediate_size=1024, num_hidden_layers=16,
        num_attention_heads=16, num_key_value_heads=16, vocab_size=50304, max_position_embeddings=4096,
        num_experts=64, num_experts_per_tok=8, tie_word_embeddings=False)),
}  # fmt: skip

_TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=512, max_position_embeddings=512)  # fmt: skip
# model_type -> tiny config kwargs (vocab 512: ftlaunch/recipes/assets.py's tokenizer). MoE tinies mix in a dense layer
# where the family allows it, so dense_layers is exercised too.
TINY = {
    "llama": dict(_TINY, tie_word_embeddings=True),
    "mistral": dict(_TINY, tie_word_embeddings=False),
    "qwen2": dict(_TINY, tie_word_embeddings=False),
    "qwen3": dict(_TINY, head_dim=32, tie_word_embeddings=False),
    "gemma2": dict(_TINY, head_dim=32),
    "gemma3_text": dict(_TINY, head_dim=32),
    "phi3": dict(_TINY, num_key_value_heads=4, tie_word_embeddings=False, pad_token_id=0),
    "mixtral": dict(_TINY, num_local_experts=4, num_experts_per_tok=2, tie_word_embeddings=False),
    "qwen2_moe": dict(_TINY, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
        shared_expert_intermediate_size=64, mlp_only_layers=[0], tie_word_embeddings=False),
    "qwen3_moe": dict(_TINY, head_dim=32, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
        mlp_only_layers=[1], tie_word_embeddings=False),
    "olmoe": dict(_TINY, num_experts=4, num_experts_per_tok=2, tie_word_embeddings=False),
}  # fmt: skip
