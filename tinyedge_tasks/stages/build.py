"""build: the toolchain that codegen's project index names compiles the project; record flash and RAM use."""
from __future__ import annotations

import xxhash

from ..artifacts import BuildInfo, ProjectIndex
from ..toolchains import adapter


def run(ctx) -> None:
    index = ctx.read(ProjectIndex)
    folder = ctx.inputs[ProjectIndex.ARTIFACT].parent / index.folder
    info = BuildInfo(**adapter(index.toolchain).build(folder, ctx.state, ctx.out / "firmware.bin"),
                     project=xxhash.xxh3_128_hexdigest(ctx.inputs[ProjectIndex.ARTIFACT].read_bytes()))
    ctx.write(info)
    ctx.log(f"firmware: flash {info.flash_used_bytes} of {info.flash_available_bytes} B, "
            f"static RAM {info.ram_used_bytes} of {info.ram_available_bytes} B")
