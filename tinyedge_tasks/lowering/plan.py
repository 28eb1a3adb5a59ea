"""Static memory plan: every non-constant tensor gets an offset in one arena, from the tensors' lifetimes."""
from __future__ import annotations

from dataclasses import dataclass, field

ALIGNMENT = 4   # int8 kernels need none; 4 keeps every buffer word-aligned for faster copies

METHOD = ("greedy by size, like TFLM's GreedyMemoryPlanner: largest first, each at the lowest "
          f"{ALIGNMENT}-byte aligned offset free over its lifetime; a RESHAPE output and the output of an in-place "
          "kernel whose input dies there share the input's bytes, at the input's offset or a fixed distance before "
          "it that the kernel's order makes safe")


@dataclass
class Buffer:
    tensor: int
    size: int
    first: int    # step that writes it (-1: the model input)
    last: int     # last step that reads it (number of steps: the model output)


@dataclass
class Plan:
    arena_size: int
    offsets: dict[int, int]   # tensor index -> byte offset in the arena
    method: str = METHOD
    buffers: list[Buffer] = field(default_factory=list)   # every arena tensor with its lifetime
    aliases: dict[int, int] = field(default_factory=dict)  # tensor -> tensor whose bytes it shares
    deltas: dict[int, int] = field(default_factory=dict)   # tensor -> its offset minus that tensor's (0 if absent)


def _align(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_memory(sizes: dict[int, int], steps: list[tuple[list[int], list[int]]], inputs: list[int],
                outputs: list[int], aliases: dict[int, int], deltas: dict[int, int] | None = None) -> Plan:
    """sizes: bytes of each arena tensor; steps: (read, written) tensor indices per operator, in order;
    aliases: output tensor -> input tensor whose bytes it may share (the caller vouches that is safe), at
    deltas[output] bytes from the input's offset (a multiple of ALIGNMENT; 0 when absent)."""
    deltas = deltas or {}
    buffers = {t: Buffer(t, size, len(steps), -1) for t, size in sizes.items()}
    for step, (read, written) in enumerate(steps):
        for t in read + written:
            if t in buffers:
                buffers[t].first, buffers[t].last = min(buffers[t].first, step), max(buffers[t].last, step)
    for t in inputs:
        buffers[t].first = -1
    for t in outputs:
        buffers[t].last = len(steps)

    def root(t: int) -> tuple[int, int]:
        """(the tensor t shares bytes with, transitively; t's offset from it)."""
        shift = 0
        while t in aliases:
            shift += deltas.get(t, 0)
            t = aliases[t]
        return t, shift

    groups: dict[int, list[tuple[Buffer, int]]] = {}
    for t, buffer in buffers.items():
        top, shift = root(t)
        groups.setdefault(top, []).append((buffer, shift))
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[int, int] = {}
    for group in sorted(groups.values(), key=lambda g: (-max(b.size for b, _ in g), min(b.first for b, _ in g))):
        low = min(shift for _, shift in group)
        group = [(b, shift - low) for b, shift in group]
        base = _lowest(group, placed)
        for b, shift in group:
            placed.append((b, base + shift))
            offsets[b.tensor] = base + shift
    arena = max((at + b.size for b, at in placed), default=0)
    return Plan(_align(arena), offsets, buffers=list(buffers.values()), aliases=dict(aliases),
                deltas={t: d for t, d in deltas.items() if t in aliases})


def _lowest(group: list[tuple[Buffer, int]], placed: list[tuple[Buffer, int]]) -> int:
    """The lowest offset for a group of buffers at fixed distances (shift >= 0) that clashes with no placed buffer
    alive at the same time."""
    clashes = [(b, shift, other, at) for b, shift in group for other, at in placed
               if b.first <= other.last and other.first <= b.last]
    ends = [_align(at + other.size) for _, _, other, at in clashes]
    candidates = {0, max(ends, default=0)} | {end - shift for end, (_, shift, _, _) in zip(ends, clashes)}
    return next(base for base in sorted(c for c in candidates if c >= 0)
                if all(base + shift + b.size <= at or at + other.size <= base + shift
                       for b, shift, other, at in clashes))   # the last candidate, past every clash, always fits
