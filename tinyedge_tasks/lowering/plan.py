"""Static memory plan: every non-constant tensor gets an offset in one arena, from the tensors' lifetimes."""
from __future__ import annotations

from dataclasses import dataclass, field

ALIGNMENT = 4   # int8 kernels need none; 4 keeps every buffer word-aligned for faster copies

METHOD = ("greedy by size, like TFLM's GreedyMemoryPlanner: largest first, each at the lowest "
          f"{ALIGNMENT}-byte aligned offset free over its lifetime; a RESHAPE output and the output of an in-place "
          "kernel whose input dies there share the input's offset")


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


def _align(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_memory(sizes: dict[int, int], steps: list[tuple[list[int], list[int]]], inputs: list[int],
                outputs: list[int], aliases: dict[int, int]) -> Plan:
    """sizes: bytes of each arena tensor; steps: (read, written) tensor indices per operator, in order;
    aliases: output tensor -> input tensor whose offset it must share (the caller vouches that is safe)."""
    buffers = {t: Buffer(t, size, len(steps), -1) for t, size in sizes.items()}
    for step, (read, written) in enumerate(steps):
        for t in read + written:
            if t in buffers:
                buffers[t].first, buffers[t].last = min(buffers[t].first, step), max(buffers[t].last, step)
    for t in inputs:
        buffers[t].first = -1
    for t in outputs:
        buffers[t].last = len(steps)

    def root(t: int) -> int:
        while t in aliases:
            t = aliases[t]
        return t

    groups: dict[int, list[Buffer]] = {}
    for t, buffer in buffers.items():
        groups.setdefault(root(t), []).append(buffer)

    placed: list[tuple[Buffer, int]] = []
    offsets: dict[int, int] = {}
    for group in sorted(groups.values(), key=lambda g: (-max(b.size for b in g), min(b.first for b in g))):
        clashes = [(other, at) for other, at in placed
                   if any(b.first <= other.last and other.first <= b.last for b in group)]
        for offset in sorted({0} | {_align(at + other.size) for other, at in clashes}):
            if all(offset + b.size <= at or at + other.size <= offset
                   for b in group for other, at in clashes if b.first <= other.last and other.first <= b.last):
                break
        for b in group:
            placed.append((b, offset))
            offsets[b.tensor] = offset
    arena = max((at + b.size for b, at in placed), default=0)
    return Plan(_align(arena), offsets, buffers=list(buffers.values()), aliases=dict(aliases))
