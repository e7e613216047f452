"""K copies of one architecture as one batched model: stacked parameters, one vmapped forward.

`torch.func.stack_module_state` turns K modules of the same architecture into one set of leaf
tensors with a leading member dimension; `torch.vmap` over `torch.func.functional_call` then runs
all K in one pass. Under vmap a convolution whose input and weight both carry the member dimension
becomes one grouped convolution (groups = K), so the per-op overhead that bounds small networks on a
CPU is paid once for all members, not K times. Every member's arithmetic stays its own: gradients of
a sum of per-member losses separate exactly, and an element-wise optimiser (Adam) over the stacked
tensors is the same as one optimiser per member.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

__all__ = ["StackedModules"]


class StackedModules:
    """K modules of one architecture, held as stacked tensors (member dimension first)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        if not members:
            raise ValueError("need at least one member")
        self.members = list(members)  # kept to hand each member back as an ordinary module
        params, buffers = stack_module_state(self.members)
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers
        # A weightless skeleton that functional_call fills with one member's slices.
        self.skeleton = copy.deepcopy(self.members[0]).to("meta")

    @property
    def k(self) -> int:
        return len(self.members)

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def train(self, mode: bool = True) -> None:
        self.skeleton.train(mode)

    def vmap(self, fn: Callable[..., Tensor] | None = None) -> Callable[..., Tensor]:
        """A function of member-batched inputs (K, ...) -> member-batched outputs. `fn(module, *args)`
        says what one member computes (default: its forward); it may call any of the module's methods."""
        wrapper = _Apply(self.skeleton, fn)
        names = {n: f"inner.{n}" for n in (*self.params, *self.buffers)}

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], *args: Tensor) -> Tensor:
            tensors = {names[n]: t for n, t in (*params.items(), *buffers.items())}
            return functional_call(wrapper, tensors, args, strict=True)

        def batched(*args: Tensor) -> Tensor:
            return torch.vmap(one, in_dims=(0, 0, *([0] * len(args))))(self.params, self.buffers, *args)

        return batched

    @torch.no_grad()
    def write_back(self) -> list[nn.Module]:
        """The members as ordinary modules holding their current weights (copied out of the stack)."""
        for k, member in enumerate(self.members):
            for name, param in member.named_parameters():
                param.copy_(self.params[name][k])
            for name, buffer in member.named_buffers():
                buffer.copy_(self.buffers[name][k])
        return self.members

    def state(self) -> dict[str, Tensor]:
        return {**{f"p.{n}": t.detach() for n, t in self.params.items()},
                **{f"b.{n}": t for n, t in self.buffers.items()}}

    @torch.no_grad()
    def load_state(self, state: dict[str, Tensor]) -> None:
        for name, tensor in self.params.items():
            tensor.copy_(state[f"p.{name}"])
        for name, tensor in self.buffers.items():
            tensor.copy_(state[f"b.{name}"])


class _Apply(nn.Module):
    """`fn(inner, *args)` as a module's forward, so functional_call can run any method of `inner`."""

    def __init__(self, inner: nn.Module, fn: Callable[..., Tensor] | None) -> None:
        super().__init__()
        self.inner = inner
        self.fn = fn

    def forward(self, *args: Tensor) -> Tensor:
        return self.inner(*args) if self.fn is None else self.fn(self.inner, *args)
