"""A plan per GPU, on paper: what :mod:`vlcore.framework.plan` measured on
the CPU (parameters, FLOPs per sample, the activations autograd keeps),
carried to an 80 GB GPU under stated assumptions. No GPU build of Paddle
runs on these machines, so nothing here is measured on a GPU; every
assumption is a named constant below, and docs/gpu_plan.md prints them
beside the figures.

Memory per GPU (bf16 mixed precision, Paddle AMP level O2):

- the training state, per parameter: bf16 weights (2 bytes), fp32 master
  weights (4), bf16 gradients (2) and AdamW's two fp32 moments (8): 16
  bytes. ``paddle.distributed.sharding.group_sharded_parallel`` splits it
  over the data-parallel GPUs: level ``"os"`` (stage 1) the master weights
  and moments (12 bytes), ``"os_g"`` (stage 2) the gradients too;
- the activations: the CPU fp32 account of the model (saved tensors,
  ``plan.account``) with the attention maps taken out, since a fused
  attention kernel (``flash_attention`` / ``flashmask_attention``) keeps
  only a row statistic instead of the ``L x L`` maps, and halved for bf16;
  with ``Arch.recompute`` the recompute account (the layer inputs) plus
  the activations of the one layer being recomputed in the backward, taken
  as the whole model's (without maps) over the layers of its shortest
  stack (an upper bound for the largest layer), halved;
- a reserve for the CUDA context, cuBLAS/cuDNN workspaces and the
  allocator's fragmentation.

Speed: ``samples/s = MFU * peak bf16 FLOP/s / FLOPs per sample of a step``,
the FLOPs counted by :mod:`vlcore.framework.flops` (a step is 3 forwards; 4
with recomputation, which runs the forward again in the backward).
"""
from dataclasses import dataclass
from typing import Dict

GB = 1024 ** 3


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float
    bf16_tflops: float   # dense (no 2:4 sparsity)
    source: str


GPUS = {
    "a100-80gb": GPU("A100 80GB SXM", 80.0, 312.0,
                     "NVIDIA A100 Tensor Core GPU datasheet: BF16 Tensor Core 312 TFLOPS (624 with sparsity)"),
    "h100-80gb": GPU("H100 80GB SXM", 80.0, 989.4,
                     "NVIDIA H100 Tensor Core GPU datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity, half "
                     "of it dense"),
}

STATE_BYTES_PER_PARAM = {"none": 16.0, "os": 4.0, "os_g": 2.0}   # + the sharded part / GPUs
SHARDED_BYTES_PER_PARAM = {"none": 0.0, "os": 12.0, "os_g": 14.0}
BF16_ACTIVATIONS = 0.5     # activations kept in bf16 instead of fp32
RESERVE_GB = 4.0           # CUDA context, library workspaces, fragmentation
MFU = 0.40                 # model FLOPs utilisation assumed for a bf16 step with fused attention

# OpenCLIP ViT-B/16 on LAION-400M (mlfoundations/open_clip, docs/PRETRAINED.md: "ViT-B/16 was trained with
# 176 A100 (40 GB) GPUS for ~61 hours, 10700 GPU-hours. Batch size per GPU was 192"; the released weights are
# tagged laion400m_e32: 32 epochs of about 400M pairs).
OPENCLIP_B16 = {"gpu_hours": 10700.0, "samples": 32 * 400e6, "batch_per_gpu": 192, "gpu": "a100-80gb"}
# Its FLOPs per sample, by the usual transformer count (per layer forward 24*L*d^2 + 4*L^2*d; a step is 3
# forwards): the ViT-B/16 image tower (12 layers, d 768, 197 tokens) and the text tower (12 layers, d 512,
# 77 tokens); embeddings and the projections are under 1 % and left out.


def transformer_forward_flops(layers, width, tokens):
    return layers * (24 * tokens * width ** 2 + 4 * tokens ** 2 * width)


def openclip_b16():
    """OpenCLIP B/16's published throughput and the utilisation it implies."""
    step = 3 * (transformer_forward_flops(12, 768, 197) + transformer_forward_flops(12, 512, 77))
    per_gpu = OPENCLIP_B16["samples"] / (OPENCLIP_B16["gpu_hours"] * 3600)
    peak = GPUS[OPENCLIP_B16["gpu"]].bf16_tflops * 1e12
    return {"samples_per_s_per_gpu": round(per_gpu, 1), "step_gflop_per_sample": round(step / 1e9, 1),
            "mfu": round(per_gpu * step / peak, 4), "batch_per_gpu": OPENCLIP_B16["batch_per_gpu"],
            "gpu_hours": OPENCLIP_B16["gpu_hours"], "gpu_hours_per_million": round(1e6 / per_gpu / 3600, 2)}


def kind_on_gpu(plan, kind, gpu: GPU, sharding="none", gpus=8, mfu=MFU, layers=12) -> Dict:
    """Batch per GPU without and with recomputation, samples/s and GPU-hours
    per million samples, for one input kind of a :class:`plan.Plan`;
    ``layers``: the layers of the model's shortest recomputed stack."""
    k = plan.kinds[kind]
    kept = k.act_per_sample - k.act_attention_per_sample
    state = plan.n_params * (STATE_BYTES_PER_PARAM[sharding] + SHARDED_BYTES_PER_PARAM[sharding] / gpus)
    free = gpu.memory_gb * GB - RESERVE_GB * GB - state
    out = {"state_gb": round(state / GB, 2)}
    for name, fixed, per, passes in (
            ("plain", k.act_fixed, kept, 3),
            ("recompute", k.act_fixed_recompute, k.act_per_sample_recompute + kept / layers, 4)):
        fixed, per = BF16_ACTIVATIONS * max(fixed, 0.0), BF16_ACTIVATIONS * per
        batch = int((free - fixed) // per) if per > 0 and free > fixed else 0
        flops = passes / 3 * k.step_gflop_per_sample * 1e9
        rate = mfu * gpu.bf16_tflops * 1e12 / flops
        out[name] = {"batch": batch, "act_gb_per_sample": round(per / GB, 4), "samples_per_s": round(rate, 1),
                     "gpu_hours_per_million": round(1e6 / rate / 3600, 2)}
    return out


def gpu_plan(plan, gpu_names, sharding="none", gpus=8, mfu=MFU, layers=12) -> Dict:
    """Every kind of ``plan`` on each GPU of ``gpu_names`` (keys of GPUS)."""
    unknown = [g for g in gpu_names if g not in GPUS]
    if unknown:
        raise ValueError(f"unknown GPU {unknown[0]!r}; known: {', '.join(GPUS)}")
    if sharding not in STATE_BYTES_PER_PARAM:
        raise ValueError(f"sharding {sharding!r}: none, os (stage 1) or os_g (stage 2)")
    return {g: {kind: kind_on_gpu(plan, kind, GPUS[g], sharding, gpus, mfu, layers) for kind in plan.kinds}
            for g in gpu_names}


def assumptions(sharding="none", gpus=8, mfu=MFU) -> Dict:
    return {"mfu": mfu, "bf16_activations": BF16_ACTIVATIONS, "reserve_gb": RESERVE_GB, "sharding": sharding,
            "data_parallel_gpus": gpus, "state_bytes_per_param": STATE_BYTES_PER_PARAM[sharding]
            + SHARDED_BYTES_PER_PARAM[sharding] / gpus,
            "gpus": {k: {"name": g.name, "memory_gb": g.memory_gb, "bf16_tflops": g.bf16_tflops,
                         "source": g.source} for k, g in GPUS.items()},
            "openclip_b16": openclip_b16()}


# The papers' schedules that state their length in samples. UNIMO-2 (Section 3.1 and Table 6): "we first only
# train on image-text pairs for 20 epoches", the pairs being COCO 567K + VG 5.41M + CC 3.01M + SBU 867K
# captions; the second phase (all three corpora) has no stated length. UNIMO (Section 4.2): "at least 50W
# [500k] steps", batch size not stated. Unicoder-VL: 10 epochs on 4 V100s, time not stated.
SCHEDULES = {
    "unimo2": {"what": "UNIMO-2 phase 1: 20 epochs of the 9.85M pairs (COCO, VG, CC, SBU)", "kind": "pairs",
               "samples": 20 * (0.567e6 + 5.41e6 + 3.01e6 + 0.867e6)},
}


def schedule_hours(family, per_gpu: Dict) -> Dict:
    """GPU-hours of the family's paper schedule (per GPU type, without and
    with recomputation), or {} when the paper gives no length in samples."""
    s = SCHEDULES.get(family)
    if s is None:
        return {}
    return {"what": s["what"], "samples": s["samples"],
            "gpu_hours": {g: {mode: round(kinds[s["kind"]][mode]["gpu_hours_per_million"] * s["samples"] / 1e6)
                              for mode in ("plain", "recompute")} for g, kinds in per_gpu.items()}}
