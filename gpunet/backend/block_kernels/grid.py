"""A recorded step's elementwise kernels as grid-stride loops, generated from
their rows in kernels.py: launched as the block kernels are, so a step's every
launch can be bound once (bound_launch.py)."""
from __future__ import annotations

from ..kernels import ACTIVATIONS, DENSE_VARIANTS, KernelSpec, dense_kernel
from .template import C_NAMES, BlockKernel

GRID_THREADS, GRID_BLOCKS = 256, 4096  # a grid kernel's block, and at most this many blocks

# The elementwise kernels of a recorded step, by their rows in KERNELS: each
# with (the in-parameters that are arrays, the rest but raw ones scalars; of
# those the ones of a row, element i % k of a (k,) array; the outputs the
# operation reads, as it updates them).
GRID_ROWS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    **{dense_kernel("forward", *variant): (("z", "bias"), ("bias",), ())
       for variant in DENSE_VARIANTS},
    **{dense_kernel("forward", activation, True, from_state=True): (("z", "bias"), ("bias",), ())
       for activation in (None, *ACTIVATIONS)},
    "state_rows": ((), (), ()),
    "sgd_update_and_advance": (("g",), (), ("param",)),
    "momentum_update_and_advance": (("g",), (), ("param", "velocity")),
}


def grid_kernel(spec: KernelSpec, arrays: tuple[str, ...], columns: tuple[str, ...],
          updated: tuple[str, ...]) -> BlockKernel:
    """``spec``'s operation once per element i < n of a grid-stride loop, as
    CuPy's ElementwiseKernel runs it over C-contiguous arrays: an array
    parameter ``x`` is element x_[i] (x_[i % k] for ``columns``), a raw one the
    whole array, a scalar its value. No __restrict__: an output may be an input."""
    params, loads, stores = [], [], []
    for output, text in ((False, spec.in_params), (True, spec.out_params)):
        for param in text.split(", "):
            *raw, type_, name = param.split()
            const, c_type = "" if output else "const ", C_NAMES[type_]
            if raw:
                params.append(f"{const}{c_type}* {name}")
            elif output or name in arrays:
                params.append(f"{const}{c_type}* {name}_")
                at = "i % k" if name in columns else "i"
                loads.append(f"{const}{c_type} {name}"
                             + (f" = {name}_[{at}];" if name in arrays + updated else ";"))
                stores += [f"{name}_[i] = {name};"] if output else []
            else:
                params.append(f"{c_type} {name}")
    params.append("long long n" + (", long long k" if columns else ""))
    return BlockKernel(spec.name.replace("gpunet_", "gpunet_grid_", 1), ", ".join(params),
                       "\n".join([
                           "  for (long long i = (long long)blockIdx.x * blockDim.x"
                           " + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {",
                           f"    {' '.join(loads)}", f"    {spec.operation};",
                           f"    {' '.join(stores)}", "  }"]))
