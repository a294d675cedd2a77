"""One training step, three ways: through the layers, planned, or replayed as a graph.

Each ``Step`` trains on the batch at a slice of the epoch's order and records
its samples' losses and hits in the epoch's metrics. ``choose_steps`` picks,
once per epoch, the step for full batches and the one for the tail batch.
"""
from __future__ import annotations

from typing import Callable, Protocol

from ..backend import Array, Backend
from ..backend.draw_window import DrawWindow
from ..distributed.comm import Communicator
from ..distributed.shares import share
from ..layers import Layer
from ..layers.sequential import forward_share
from ..losses import Loss
from ..optimizers import Optimizer
from ..planning.graph import StepGraph, graph_gemms, step_graph
from ..planning.step import StepPlan, plan_step
from .metrics import EpochMetrics

Rows = Callable[[slice], tuple[Array, Array]]  # the inputs and targets at a slice of the order


class Step(Protocol):
    path: str  # how it ran: "eager", "planned", "graph (...)"

    def run(self, rows: slice, metrics: EpochMetrics) -> slice:
        """Train on the batch ``rows`` of the epoch's order; returns the rows this
        rank took (its ``share``), whose losses and hits are now in ``metrics``."""


class EagerStep:
    """Through the layers: forward, loss, backward, the gradients summed over the
    ranks, update. A rank's share of a batch draws its rows of the whole batch's
    dropout draws, and its loss is scaled by the whole batch's size."""

    path = "eager"

    def __init__(self, model: Layer, loss: Loss, optimizer: Optimizer, batch: Rows,
                 comm: Communicator) -> None:
        self.model, self.loss, self.optimizer, self.batch, self.comm = (
            model, loss, optimizer, batch, comm)

    def run(self, rows: slice, metrics: EpochMetrics) -> slice:
        mine, window = rank_rows(rows, self.comm)
        x, y = self.batch(mine)
        predicted = forward_share(self.model, x, window)
        scale = self.loss.batch_scale(rows.stop - rows.start)
        losses, gradient = self.loss.sample_losses_and_gradient(predicted, y, scale)
        self.model.backward_to_params(gradient)
        if self.comm.size > 1:
            self.comm.allreduce_gradients(self.model)
        self.optimizer.step(self.model)
        metrics.record(mine, predicted, y, losses)
        return mine


class PlannedStep:
    """``StepPlan.run``: the eager step's numbers in a few fused operations."""

    path = "planned"

    def __init__(self, plan: StepPlan, batch: Rows, comm: Communicator) -> None:
        self.plan, self.batch, self.comm = plan, batch, comm

    def run(self, rows: slice, metrics: EpochMetrics) -> slice:
        mine, window = rank_rows(rows, self.comm)
        x, y = self.batch(mine)
        reduce = self.comm.allreduce_gradients if self.comm.size > 1 else None
        self.plan.run(x, y, metrics.losses[mine], metrics.hits[mine], reduce=reduce,
                      window=window)
        return mine


class GraphStep:
    """The planned step of one process, its batch, metrics and rates on the
    device, replayed as a graph or run as it is (``StepGraph``)."""

    def __init__(self, graph: StepGraph) -> None:
        self.graph = graph

    @property
    def path(self) -> str:
        return self.graph.path

    def run(self, rows: slice, metrics: EpochMetrics) -> slice:
        """As ``Step.run``; the metrics hold the graph's arrays of losses and
        hits from the epoch's first step, and copies after its last full batch,
        which the next epoch's steps leave alone."""
        graph = self.graph
        if rows.start == 0:
            metrics.losses, metrics.hits = graph.losses, graph.hits
        graph.step(rows)
        if 2 * rows.stop - rows.start > len(metrics.losses):  # the last full batch
            metrics.losses, metrics.hits = metrics.losses.copy(), metrics.hits.copy()
        return rows


def rank_rows(rows: slice, comm: Communicator) -> tuple[slice, DrawWindow | None]:
    """This rank's share of ``rows``, and its window of their draws (None alone)."""
    mine = share(rows, comm.rank, comm.size)
    if comm.size == 1:
        return mine, None
    return mine, DrawWindow(rows.stop - rows.start, mine.start - rows.start)


def choose_steps(model: Layer, loss: Loss, optimizer: Optimizer, backend: Backend, x: Array,
                 y: Array, batch_size: int, order: Array | None, graph: str,
                 comm: Communicator) -> tuple[Step, Step]:
    """(the step for full batches, the step for the tail) of an epoch over
    ``x``, ``y`` in ``order`` (None: as they are): where the model plans
    (``plan_step``), a GraphStep for one process (replayed as a graph as
    ``graph`` says) with a PlannedStep for the tail, and PlannedStep for ranks
    with the tail eager; else an EagerStep."""
    mine = share(slice(0, batch_size), comm.rank, comm.size)
    plan = (plan_step(model, loss, optimizer, backend, mine.stop - mine.start, batch_size)
            if len(x) >= batch_size else None)
    if plan is not None:  # as the layers take them, converted once
        x, y = backend.asarray(x, plan.dtype), backend.asarray(y, plan.dtype)
    if plan is not None and comm.size == 1:
        device_step = step_graph(plan, graph_gemms(graph, backend))
        device_step.start_epoch(x, y, order)  # it takes the data in the order
        tail = len(x) % batch_size
        tail_plan = plan_step(model, loss, optimizer, backend, tail) if tail else None
        return GraphStep(device_step), (
            EagerStep(model, loss, optimizer, device_step.rows, comm) if tail_plan is None
            else PlannedStep(tail_plan, device_step.rows, comm))
    if order is not None:
        x, y = x[order], y[order]

    def batch(rows: slice) -> tuple[Array, Array]:
        return x[rows], y[rows]

    eager = EagerStep(model, loss, optimizer, batch, comm)
    return (eager if plan is None else PlannedStep(plan, batch, comm)), eager
