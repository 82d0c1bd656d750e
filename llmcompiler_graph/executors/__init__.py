"""Executors that run tool calls somewhere other than this process.

An executor implements :class:`~llmcompiler_graph.executor.ToolExecutor`: it
claims some tools and runs their calls; the scheduler keeps dataflow, timeouts
and error handling, so a plan reads the same wherever its tools run.

* :class:`~llmcompiler_graph.executors.ray.RayExecutor` — tools as Ray tasks,
  on a local Ray instance or a cluster (``pip install ray``).

Example:
    ```python
    from llmcompiler_graph.executors import RayExecutor, mark_remote

    executor = RayExecutor(num_cpus=4)
    graph = create_llm_compiler(model, [mark_remote(crunch), search], executor=executor)
    ```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcompiler_graph.executors.ray import RayExecutor, RemoteToolError, mark_remote

__all__ = ["RayExecutor", "RemoteToolError", "mark_remote"]


def __getattr__(name: str) -> Any:
    # Ray is an optional dependency: import it only when its executor is asked for.
    if name in __all__:
        from llmcompiler_graph.executors import ray as ray_executor

        return getattr(ray_executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
