"""The planned step: buffers for one batch shape, and the step's backend calls."""
from __future__ import annotations

import weakref
from typing import Callable

from ..backend import Array, Backend
from ..backend.draw_window import DrawWindow
from ..layers import Layer
from ..losses import Loss, SoftmaxCrossEntropy
from ..optimizers import GradientDescent, Momentum, Optimizer
from .stages import DenseStage, dense_stages

OPTIMIZERS = (GradientDescent, Momentum)


class StepPlan:
    """One training step of ``model`` for batches of ``batch`` rows: forward,
    softmax cross-entropy, backward and update, every intermediate written into
    a buffer allocated here. A deep-model step is 15 backend calls: per stage a
    product and a fused bias/dropout/activation forward; the loss with the last
    bias; per stage a fused gradient and bias gradient, the weight gradient's
    product and (but for the first) the input gradient's; one update."""

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

    def baked(self) -> tuple[tuple, list[Array]]:
        """What a captured step takes from the host as the capture finds it:
        (the backend's random key, the learning rate, the momentum (None for
        plain descent) and each stage's dropout (p, scale), compared by value;
        the optimizer's state arrays, compared by identity)."""
        optimizer = self.optimizer
        values = (self.backend.key, optimizer.lr, getattr(optimizer, "mo", None),
                  *(stage.dropout_args for stage in self.stages))
        return values, optimizer.state()

    def run(self, x: Array, targets: Array, losses: Array, hits: Array,
            state: Array | None = None,
            reduce: Callable[[Layer], None] | None = None,
            window: DrawWindow | None = None) -> None:
        """Train on the batch ``x``, ``targets`` (``batch`` rows, in the plan's
        dtype); each sample's loss goes into ``losses`` and its hit into ``hits``.
        With a graph step's ``state`` the dropout counters are read from it
        (``dense_forward``), and the backend's are left alone. ``reduce(model)``,
        if given, runs between the gradients and the update, and ``window`` says
        which rows of the whole batch's dropout draws these are (data-parallel
        training: ``Communicator.allreduce_gradients``, ``Dropout.forward``)."""
        b, stages, outputs = self.backend, self.stages, self.outputs
        inputs = [x, *outputs[:-1]]
        for stage, z, h, mask, skip in zip(stages[:-1], outputs, inputs, self.masks, self.skips):
            b.gemm(h, stage.linear.w, out=z, trans_b=True)
            b.dense_forward(z, stage.linear.b, z, activation=stage.activation,
                            dropout=stage.dropout_args, mask=mask, window=window,
                            state=None if state is None or not stage.dropout else (state, skip))
        last = stages[-1].linear
        b.gemm(inputs[-1], last.w, out=outputs[-1], trans_b=True)
        b.dense_softmax_cross_entropy(outputs[-1], last.b, targets, self.scale,
                                      self.output_grads[-1], losses, hits)
        for i in reversed(range(len(stages))):
            stage = stages[i]
            dz = b.dense_backward(outputs[i] if stage.activation else None, self.output_grads[i],
                                  self.fused_grads[i], stage.linear.b_grad,
                                  activation=stage.activation, mask=self.masks[i])
            b.gemm(dz, inputs[i], out=stage.linear.w_grad, trans_a=True)
            if i:
                b.gemm(dz, stage.linear.w, out=self.output_grads[i - 1])
        model = self.model()
        if reduce is not None:
            reduce(model)
        self.optimizer.step(model)


def plan_step(model: Layer, loss: Loss, optimizer: Optimizer, backend: Backend,
              batch: int, whole: int | None = None) -> StepPlan | None:
    """The StepPlan for ``model`` when it is dense stages on ``backend`` with one
    flat parameter buffer, ``loss`` softmax cross-entropy and ``optimizer`` one of
    gpunet's, made once and kept with the model while they stay the same; None
    otherwise (the step then runs eagerly). A step takes ``batch`` rows, a
    rank's share of ``whole`` rows when several ranks train (the loss's mean is
    then over ``whole``)."""
    stages = dense_stages(model)
    if (stages is None or model.flat() is None or type(loss) is not SoftmaxCrossEntropy
            or type(optimizer) not in OPTIMIZERS):
        return None
    plan = _PLANS.get(model)
    key = (stages, optimizer, loss.batch_scale(batch if whole is None else whole), batch)
    if plan is None or (plan.stages, plan.optimizer, plan.scale, plan.batch) != key:
        plan = _PLANS[model] = StepPlan(model, stages, loss, optimizer, backend, batch, whole)
    return plan


_PLANS: weakref.WeakKeyDictionary[Layer, StepPlan] = weakref.WeakKeyDictionary()
