"""Mixed precision for every training phase: the autocast dtype from a phase's `amp` setting, autocast
contexts, the loss scalers fp16 needs, and the name a run's summary records."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch


def autocast_dtype(device: torch.device, amp: str) -> Optional[torch.dtype]:
    """Mixed precision on CUDA only (bf16 or fp16); CPU trains in float32."""
    if device.type != "cuda" or amp == "none":
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocaster(device: torch.device, dtype: Optional[torch.dtype]) -> Callable[[], Any]:
    """A factory of autocast contexts (a no-op one when `dtype` is None)."""
    return lambda: torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def grad_scaler(dtype: Optional[torch.dtype]) -> torch.amp.GradScaler:
    """A loss scaler for one optimiser: active under fp16 only (bf16 and float32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


def amp_name(dtype: Optional[torch.dtype]) -> str:
    """What a run's summary records as its precision: "bfloat16", "float16" or "none"."""
    return str(dtype).replace("torch.", "") if dtype else "none"
