"""Hugging Face transformers models for the test suite (gen.py's "hf" family).

What users export most: BERT (with attention_mask and token_type_ids),
DistilBERT, RoBERTa, GPT-2 (no past key values), ViT, T5's encoder,
Whisper's encoder, CLIP's vision tower and text model, Wav2Vec2, a LLaMA-style
decoder, DETR, YOLOS and XLNet, each from a small random config
(hidden 64, 2 layers, 4 heads), never from downloaded weights. Each model is
wrapped so that it takes its inputs positionally and returns a tuple, as
torch.onnx.export and gen.py's float64 reference want.

Only imported when transformers is importable (`make venv-hf` installs the
pinned version into .venv; CMake runs gen.py with .venv's python when it
exists). Written for transformers 4.36 on torch 1.13: newer versions
dispatch attention to scaled_dot_product_attention, which torch 1.13's
exporter lacks.
"""
import torch
import transformers as T
from torch import nn

VERSION = T.__version__


class Wrap(nn.Module):
    """model(**dict(zip(names, args))) -> the named outputs, as a tuple."""

    def __init__(self, model, names, outputs):
        super().__init__()
        self.model, self.names, self.outputs = model, names, outputs

    def forward(self, *args):
        r = self.model(**dict(zip(self.names, args)), return_dict=True)
        return tuple(r[o] for o in self.outputs)


SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def bert():
    cfg = T.BertConfig(vocab_size=1000, max_position_embeddings=64, **SMALL)
    return Wrap(T.BertModel(cfg), ["input_ids", "attention_mask", "token_type_ids"],
                ["last_hidden_state", "pooler_output"])


def distilbert():
    cfg = T.DistilBertConfig(vocab_size=1000, max_position_embeddings=64, dim=64, n_layers=2,
                             n_heads=4, hidden_dim=128)
    return Wrap(T.DistilBertModel(cfg), ["input_ids", "attention_mask"], ["last_hidden_state"])


def roberta():
    # padding_idx 1: ids start at 3 (see gen.py), so positions are 2..T+1
    cfg = T.RobertaConfig(vocab_size=1000, max_position_embeddings=66, pad_token_id=1, **SMALL)
    return Wrap(T.RobertaModel(cfg), ["input_ids", "attention_mask"],
                ["last_hidden_state", "pooler_output"])


def gpt2_config():
    return T.GPT2Config(vocab_size=512, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                        use_cache=False)


def gpt2():
    return Wrap(T.GPT2Model(gpt2_config()), ["input_ids", "attention_mask"],
                ["last_hidden_state"])


def gpt2_lm():
    return Wrap(T.GPT2LMHeadModel(gpt2_config()), ["input_ids"], ["logits"])


def vit():
    cfg = T.ViTConfig(image_size=32, patch_size=8, **SMALL)
    return Wrap(T.ViTModel(cfg), ["pixel_values"], ["last_hidden_state", "pooler_output"])


def t5_encoder():
    cfg = T.T5Config(vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
    return Wrap(T.T5EncoderModel(cfg), ["input_ids", "attention_mask"], ["last_hidden_state"])


def whisper_encoder():
    cfg = T.WhisperConfig(vocab_size=100, num_mel_bins=16, max_source_positions=32, d_model=64,
                          encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                          decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128,
                          pad_token_id=1, bos_token_id=0, eos_token_id=2,
                          decoder_start_token_id=0, suppress_tokens=None,
                          begin_suppress_tokens=None)
    return Wrap(T.WhisperModel(cfg).get_encoder(), ["input_features"], ["last_hidden_state"])


def clip_vision():
    cfg = T.CLIPVisionConfig(image_size=32, patch_size=8, **SMALL)
    return Wrap(T.CLIPVisionModel(cfg), ["pixel_values"], ["last_hidden_state", "pooler_output"])


class DefaultDtype(Wrap):
    """Wrap, run with the parameters' dtype as torch's default: transformers
    4.36 builds CLIP's causal mask as torch.full((T, T), finfo(dtype).min)
    in the default dtype, and float64's min overflows float32 in the
    float64 reference."""

    def forward(self, *args):
        old = torch.get_default_dtype()
        torch.set_default_dtype(next(self.parameters()).dtype)
        try:
            return super().forward(*args)
        finally:
            torch.set_default_dtype(old)


def clip_text():
    # eos_token_id 2: the pooling Stable Diffusion's text encoders
    # (openai/clip-vit-large-patch14's config) take, h[arange(N),
    # ids.argmax(-1)]: a Range over the batch and a Gather along it
    cfg = T.CLIPTextConfig(vocab_size=1000, max_position_embeddings=64, eos_token_id=2, **SMALL)
    return DefaultDtype(T.CLIPTextModel(cfg), ["input_ids", "attention_mask"],
                        ["last_hidden_state", "pooler_output"])


def wav2vec2():
    # feat_extract_norm "group": the first feature convolution's GroupNorm
    # has a group per channel and exports as InstanceNormalization; a fixed
    # 400 samples of raw audio (25 ms at 16 kHz) give 19 frames
    cfg = T.Wav2Vec2Config(vocab_size=32, hidden_size=64, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32, 32),
                           conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
                           num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                           feat_extract_norm="group", apply_spec_augment=False)
    model = T.Wav2Vec2Model(cfg)
    # the positional convolution's weight norm as the plain weight it
    # computes: its weight is a non-leaf after a forward, which deepcopy
    # (gen.py's float64 copy) refuses
    nn.utils.remove_weight_norm(model.encoder.pos_conv_embed.conv, name="weight")
    return Wrap(model, ["input_values"], ["last_hidden_state", "extract_features"])


def llama():
    # what LLaMA-style decoders export: RMSNorm (Pow, ReduceMean, Sqrt),
    # rotary position embeddings (Sin/Cos of positions, Slice/Neg/Concat),
    # grouped-query attention (2 key/value heads for 4 query heads, Expand),
    # a SiLU-gated MLP; the causal mask built in the default dtype
    cfg = T.LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=64, use_cache=False)
    return DefaultDtype(T.LlamaModel(cfg), ["input_ids", "attention_mask"], ["last_hidden_state"])


def detr():
    # DETR with transformers' own ResNet backbone (no timm): frozen
    # BatchNorm, a sine position embedding of the all-ones pixel mask, and
    # queries.unsqueeze(0).repeat(batch_size, 1, 1), a Tile whose repeats
    # are N; 10 queries, one encoder and one decoder layer
    backbone = T.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                              out_features=["stage2"])
    cfg = T.DetrConfig(use_timm_backbone=False, backbone_config=backbone,
                       use_pretrained_backbone=False, d_model=32, encoder_layers=1,
                       decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                       encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=10, num_labels=5)
    return DefaultDtype(T.DetrForObjectDetection(cfg), ["pixel_values"], ["logits", "encoder_last_hidden_state"])


def yolos():
    # YOLOS interpolates its position embeddings to the image's patch grid
    # with bicubic Resize: a constant input and sizes from the input's shape
    # (through an Identity of a constant), so it folds at load
    cfg = T.YolosConfig(image_size=[32, 32], patch_size=8, num_detection_tokens=5, num_labels=5,
                        **SMALL)
    return Wrap(T.YolosForObjectDetection(cfg), ["pixel_values"], ["logits", "last_hidden_state"])


def xlnet():
    # XLNet's relative attention: -torch.eye(T) (EyeLike of a
    # ConstantOfShape, folded at load) and Einsum in its [T, N, ...]
    # sequence-first layout: 'ibh,hnd->ibnd' (two free labels of a
    # constant), 'ibnd,hnd->ibh' (two contracted), 'ibnd,jbnd->bnij', the
    # transpose 'ijbn->bnij', the outer product 'i,d->id'
    cfg = T.XLNetConfig(vocab_size=1000, d_model=64, n_layer=2, n_head=4, d_inner=128,
                        use_mems_eval=False)
    return Wrap(T.XLNetModel(cfg), ["input_ids", "attention_mask"], ["last_hidden_state"])
