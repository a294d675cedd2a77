"""The planned step: buffers for one batch shape, and the step's backend calls."""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable

from ..backend import Array, Backend
from ..backend.draw_window import DrawWindow
from ..backend.graph_step import StateRows
from ..backend.planned_step import TargetClasses
from ..layers import Layer
from ..losses import Loss, SoftmaxCrossEntropy
from ..optimizers import GradientDescent, Momentum, Optimizer
from .stages import DenseStage, dense_stages

OPTIMIZERS = (GradientDescent, Momentum)


@dataclass(frozen=True)
class FlatBuffers:
    """A model's parameter buffer and gradient buffer, as an optimizer's step
    takes a layer (``update_pairs`` reads ``flat()``): the plan's update,
    without walking the model's layers each step."""
    pair: tuple[Array, Array]

    def flat(self) -> tuple[Array, Array]:
        return self.pair


class StepPlan:
    """One training step of ``model`` for batches of ``batch`` rows: forward,
    softmax cross-entropy, backward and update, every intermediate written into
    a buffer allocated here. A step is ``dense_passes`` (per hidden stage its
    product fused with its bias, dropout and activation; the last stage's
    product fused with the loss, its bias and bias gradient; per hidden stage,
    last first, the product giving its gy fused with its backward and bias
    gradient), per stage the weight gradient's product, and one update: for
    the deep model 9 operations (``record_calls``), one kernel each where a
    device fuses them, the stages past the first one kernel where they are narrow."""

    def __init__(self, model: Layer, stages: list[DenseStage], loss: Loss, optimizer: Optimizer,
                 backend: Backend, batch: int, whole: int | None = None) -> None:
        # the model only weakly: _PLANS keeps this plan for as long as the model lives
        self.model = weakref.ref(model)
        self.stages, self.optimizer, self.backend = stages, optimizer, backend
        self.batch = batch
        self.dtype = stages[0].linear.w.dtype
        self.scale = loss.batch_scale(batch if whole is None else whole)

        def buffer(stage: DenseStage) -> Array:
            return backend.xp.empty((batch, stage.linear.output_dim), self.dtype)

        self.outputs = [buffer(s) for s in stages]  # each stage's z, then its y in place
        self.masks = [buffer(s) if s.dropout else None for s in stages]
        self.fused_grads = [buffer(s) if s.dropout or s.activation else None for s in stages]
        self.output_grads = [buffer(s) for s in stages]  # dL/d(stage output)
        # The dropout counters a step draws, and where each stage's start after the step's first.
        sizes = [batch * s.linear.output_dim if s.dropout else 0 for s in stages]
        self.counters = sum(sizes)
        self.skips = [sum(sizes[:i]) for i in range(len(stages))]
        # Each call's arguments, built once: per hidden stage its forward's (w, z, b,
        # activation, mask, skip) and, last first, its backward's (the weights of the stage
        # above, y (None: not read), gy, dz, db, activation, mask); per stage, last first,
        # its weight gradient's (dz, input (None: run's x), w_grad, aside).
        self.forwards = [(s.linear.w, z, s.linear.b, s.activation, mask, skip)
                         for s, z, mask, skip in zip(stages[:-1], self.outputs, self.masks,
                                                     self.skips)]
        self.backwards = [(above.linear.w, z if s.activation else None, gy, dz, s.linear.b_grad,
                           s.activation, mask)
                          for s, above, z, gy, dz, mask in zip(
                              stages[:-1], stages[1:], self.outputs, self.output_grads,
                              self.fused_grads, self.masks)][::-1]
        dzs = [gy if dz is None else dz for dz, gy in zip(self.fused_grads, self.output_grads)]
        self.weight_grads = [(dz, h, s.linear.w_grad, h is not None)
                             for s, dz, h in zip(stages, dzs, [None, *self.outputs[:-1]])][::-1]
        self.flat = FlatBuffers(model.flat())

    def baked(self) -> tuple[tuple, list[Array]]:
        """What a captured step takes from the host as the capture finds it:
        (each stage's dropout (p, scale), compared by value; the optimizer's
        state arrays, compared by identity)."""
        return tuple([stage.dropout_args for stage in self.stages]), self.optimizer.state()

    def rates(self) -> tuple[float, ...]:
        """The optimizer's rates as ``update_and_advance`` reads them: (lr,), or
        (lr, momentum, 1 - momentum) rounded once on the host, as NumPy does."""
        optimizer = self.optimizer
        if type(optimizer) is Momentum:
            return optimizer.lr, optimizer.mo, 1 - optimizer.mo
        return (optimizer.lr,)

    def run(self, x: Array | StateRows, targets: Array, losses: Array, hits: Array,
            state: Array | None = None,
            reduce: Callable[[Layer], None] | None = None,
            window: DrawWindow | None = None,
            dropouts: tuple | None = None,
            classes: TargetClasses | None = None) -> None:
        """Train on the batch ``x``, ``targets`` (``batch`` rows, in the plan's
        dtype); each sample's loss goes into ``losses`` and its hit into ``hits``,
        then update. With a graph step's ``state``, ``x`` is a StateRows of it
        and ``targets``, ``losses`` and ``hits`` are the epoch's, the batch at the
        state's rows, the dropout draws are read from it (``dense_forward``), the
        backend's counters are left alone, and the caller updates
        (``update_and_advance``). ``dropouts``: each stage's dropout (p, scale)
        as ``baked()`` read them, if the caller did; ``classes``: the targets'
        (``Backend.target_classes``), if the caller found them.
        ``reduce(model)``, if given, runs between the gradients and the update,
        and ``window`` says which rows of the whole batch's dropout draws these
        are (data-parallel training: ``Communicator.allreduce_gradients``,
        ``Dropout.forward``)."""
        b, last = self.backend, self.stages[-1].linear
        dropouts = dropouts or [stage.dropout_args for stage in self.stages]
        b.dense_passes(x, [(*forward, dropout) for forward, dropout in zip(self.forwards,
                                                                           dropouts)],
                       (last.w, self.outputs[-1], last.b, targets, self.scale,
                        self.output_grads[-1], losses, hits, last.b_grad),
                       self.backwards, state, classes, window)
        for dz, h, w_grad, aside in self.weight_grads:
            b.gemm(dz, x if h is None else h, out=w_grad, trans_a=True, aside=aside)
        if reduce is not None:
            reduce(self.model())
        if state is None:
            self.optimizer.step(self.flat)


def plan_step(model: Layer, loss: Loss, optimizer: Optimizer, backend: Backend,
              batch: int, whole: int | None = None) -> StepPlan | None:
    """The StepPlan for ``model`` when it is dense stages on ``backend`` with one
    flat parameter buffer, ``loss`` softmax cross-entropy and ``optimizer`` one of
    gpunet's, made once and kept with the model while they stay the same (a
    plan for each of the last PLANS_KEPT batch sizes: an epoch's full batches
    and its tail); None otherwise (the step then runs eagerly). A step takes
    ``batch`` rows, a rank's share of ``whole`` rows when several ranks train
    (the loss's mean is then over ``whole``)."""
    stages = dense_stages(model)
    if (stages is None or model.flat() is None or type(loss) is not SoftmaxCrossEntropy
            or type(optimizer) not in OPTIMIZERS):
        return None
    plans = _PLANS.setdefault(model, {})
    plan = plans.pop(batch, None)  # put back last: the most recent
    if plan is None or (plan.stages, plan.optimizer, plan.scale) != (
            stages, optimizer, loss.batch_scale(batch if whole is None else whole)):
        plan = StepPlan(model, stages, loss, optimizer, backend, batch, whole)
    plans[batch] = plan
    while len(plans) > PLANS_KEPT:
        del plans[next(iter(plans))]
    return plan


PLANS_KEPT = 2
_PLANS: weakref.WeakKeyDictionary[Layer, dict[int, StepPlan]] = weakref.WeakKeyDictionary()
