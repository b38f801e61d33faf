"""The networks of the broad audience (method §6) and the batched evaluation of several replicas.

    conv1d(1→c1, k3, s2, p1) → LeakyReLU(0.2) → conv1d(c1→c2, k3, s2, p1) → LeakyReLU(0.2)
    → flatten → linear(c2·L2 → 256) → LeakyReLU(0.2) → linear(256 → N_E)

with (c1, c2) = (16, 32) for arcS, (32, 64) for arcM, (64, 128) for arcL.  The input is the
standardised correlator of length n_t (method §5); L2 is its length after the two stride-2
convolutions (8 for the reference n_t = 32).  Weights are drawn from N(0, weight_std²) with
weight_std = 0.05, biases are zero.

Replicas (networks of one ensemble that differ only in their seed) are evaluated together as one
batched model: their parameters are stacked along a leading replica axis
(``torch.func.stack_module_state``) and ``StackedReplicas.forward_each`` runs the same network on
all of them with batched matrix products: each convolution is an unfold of its input windows
followed by the same batched linear map as the dense layers (``_BatchedLinear``, whose backward
writes the weight gradient directly in the weight's layout).  This is SpectralNet.forward written
for stacked parameters; tests/test_models.py checks outputs and gradients against separate
networks.  (``torch.func.vmap`` of ``functional_call`` gives the same numbers but was measured
1.5-3x slower on CPU: grouped-convolution backward and transposed weight-gradient copies.)
``StackedReplicas`` is used both by the trainer (each replica sees its own batch) and by prediction
(all replicas see the same inputs, ``predict_replicas``).

    python pytorch_models_t32.py [--n-t 32] [--n-out 47]    prints the parameter counts
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import stack_module_state

# method §6: the channels (c1, c2) of each network architecture an ensemble may name
ARCHITECTURES = {"arcS": (16, 32), "arcM": (32, 64), "arcL": (64, 128)}
HIDDEN = 256
PREDICT_CHUNK_BYTES = 64 << 20     # one chunk's activations in predict_replicas


def conv_output_length(n_in: int) -> int:
    """Length after one conv1d(k=3, s=2, p=1): floor((n + 2·1 − 3)/2) + 1."""
    return (n_in - 1) // 2 + 1


class SpectralNet(nn.Module):
    """One network of method §6: standardised correlator [B, n_t] -> smeared density [B, n_out]."""

    def __init__(self, arch: str, n_t: int, n_out: int, leaky_slope: float = 0.2):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {list(ARCHITECTURES)}")
        c1, c2 = ARCHITECTURES[arch]
        self.arch, self.n_t, self.n_out = arch, int(n_t), int(n_out)
        n_flat = c2 * conv_output_length(conv_output_length(self.n_t))
        self.conv1 = nn.Conv1d(1, c1, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(c1, c2, kernel_size=3, stride=2, padding=1)
        self.fc1 = nn.Linear(n_flat, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, self.n_out)
        self.act = nn.LeakyReLU(leaky_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv1(x.unsqueeze(-2)))          # [B, 1, n_t] -> [B, c1, L1]
        h = self.act(self.conv2(h))                         # -> [B, c2, L2]
        h = self.act(self.fc1(h.flatten(-2)))               # -> [B, 256]
        return self.fc2(h)                                  # -> [B, n_out]


def initialise(model: nn.Module, weight_std: float, generator: torch.Generator | None = None) -> nn.Module:
    """Weights ~ N(0, weight_std²), biases 0 (method §6); ``generator`` makes it reproducible."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, weight_std, generator=generator)
    return model


def build_model(arch: str, n_t: int, n_out: int, weight_std: float = 0.05, leaky_slope: float = 0.2,
                generator: torch.Generator | None = None) -> SpectralNet:
    """The registry: a freshly initialised network ``arch`` ∈ {arcS, arcM, arcL}."""
    return initialise(SpectralNet(arch, n_t, n_out, leaky_slope), weight_std, generator)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _BatchedLinear(torch.autograd.Function):
    """y[r] = x[r] w[r]ᵀ + b[r] for every replica r: x [R, M, I], w [R, O, I], b [R, O]."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad_x = torch.bmm(grad, w) if ctx.needs_input_grad[0] else None
        return grad_x, torch.bmm(grad.transpose(1, 2), x), grad.sum(1)


def _batched_conv(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """conv1d(k=3, s=2, p=1) per replica on h [R, B, L, c_in] (positions, then channels)
    with w [R, c_out, c_in, 3] -> [R, B, L', c_out]."""
    windows = F.pad(h, (0, 0, 1, 1)).unfold(2, 3, 2)                 # [R, B, L', c_in, 3]
    n_r, n_b, n_l = windows.shape[:3]
    out = _BatchedLinear.apply(windows.reshape(n_r, n_b * n_l, -1), w.flatten(2), b)
    return out.reshape(n_r, n_b, n_l, -1)


class StackedReplicas:
    """N_r networks of one architecture evaluated as one batched model.

    ``params`` / ``buffers`` are dicts of tensors with a leading replica axis, named as in
    SpectralNet (``stack_module_state``); they are leaves that require grad.
    """

    def __init__(self, models: list[nn.Module]):
        if not models:
            raise ValueError("StackedReplicas needs at least one model")
        kinds = {(m.arch, m.n_t, m.n_out, m.act.negative_slope) for m in models}
        if len(kinds) != 1:
            raise ValueError("replicas of different architectures/geometries cannot be stacked: "
                             f"{sorted(kinds)}")
        self.params, self.buffers = stack_module_state(models)
        self.arch, self.n_t, self.n_out = models[0].arch, models[0].n_t, models[0].n_out
        self.leaky_slope = models[0].act.negative_slope
        self.n_replicas = len(models)

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        """Each replica on its own inputs: x [N_r, B, n_t] -> [N_r, B, n_out] (SpectralNet.forward)."""
        p, n_r, n_b = self.params, x.shape[0], x.shape[1]
        h = F.leaky_relu(_batched_conv(x.unsqueeze(-1), p["conv1.weight"], p["conv1.bias"]), self.leaky_slope)
        h = F.leaky_relu(_batched_conv(h, p["conv2.weight"], p["conv2.bias"]), self.leaky_slope)
        h = h.transpose(2, 3).reshape(n_r, n_b, -1)                  # flatten channel-major, as torch
        h = F.leaky_relu(_BatchedLinear.apply(h, p["fc1.weight"], p["fc1.bias"]), self.leaky_slope)
        return _BatchedLinear.apply(h, p["fc2.weight"], p["fc2.bias"])

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every replica on the same inputs: x [B, n_t] -> [N_r, B, n_out]."""
        return self.forward_each(x.unsqueeze(0).expand(self.n_replicas, *x.shape))

    def activation_floats(self) -> int:
        """The float32 values one input sample occupies in one replica's forward pass, estimated as
        the sum of its layers' windows and outputs."""
        c1, c2 = self.params["conv1.weight"].shape[1], self.params["conv2.weight"].shape[1]
        l1 = conv_output_length(self.n_t)
        l2 = conv_output_length(l1)
        return 3 * l1 + l1 * c1 + 3 * l2 * c1 + l2 * c2 + HIDDEN + self.n_out

    def unstack(self) -> list[SpectralNet]:
        """The replicas as separate modules (copies of the current parameters)."""
        out = []
        for r in range(self.n_replicas):
            model = SpectralNet(self.arch, self.n_t, self.n_out, self.leaky_slope)
            state = {k: v[r].detach().clone() for k, v in {**self.params, **self.buffers}.items()}
            model.load_state_dict(state)
            out.append(model.to(next(iter(self.params.values())).device))
        return out


@torch.no_grad()
def predict_replicas(models: list[nn.Module] | StackedReplicas, x_standardised,
                     chunk: int | None = None) -> torch.Tensor:
    """All replicas on the same standardised inputs in one pass: [N, n_t] -> [N, N_r, N_E].

    ``x_standardised`` = (C − μ)/γ with the μ, γ of the checkpoints (method §5); it is moved to the
    replicas' device and cast to float32.  Inputs are processed in chunks of ``chunk`` samples
    (default: as many as keep one chunk's activations within PREDICT_CHUNK_BYTES), written into the
    preallocated result: the memory is the inputs, the result and one chunk, whatever N.
    """
    stack = models if isinstance(models, StackedReplicas) else StackedReplicas(list(models))
    device = next(iter(stack.params.values())).device
    x = torch.as_tensor(x_standardised, dtype=torch.float32, device=device)
    if x.ndim != 2 or x.shape[1] != stack.n_t:
        raise ValueError(f"inputs of shape {list(x.shape)}; expected [N, n_t={stack.n_t}]")
    chunk = chunk or max(1, PREDICT_CHUNK_BYTES // (4 * stack.n_replicas * stack.activation_floats()))
    out = torch.empty((len(x), stack.n_replicas, stack.n_out), dtype=torch.float32, device=device)
    for i in range(0, len(x), chunk):
        out[i:i + chunk] = stack.forward_shared(x[i:i + chunk]).transpose(0, 1)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Parameter counts of the method §6 architectures")
    parser.add_argument("--n-t", type=int, default=32, help="input length (default 32)")
    parser.add_argument("--n-out", type=int, default=47, help="outputs N_E (default 47)")
    args = parser.parse_args(argv)
    for arch, (c1, c2) in ARCHITECTURES.items():
        model = build_model(arch, args.n_t, args.n_out)
        print(f"{arch}: (c1, c2) = ({c1}, {c2}), {parameter_count(model):,} parameters")


if __name__ == "__main__":
    main()
