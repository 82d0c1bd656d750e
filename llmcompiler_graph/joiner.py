"""The joiner: reads every observation and either answers or asks for a new plan.

Its reply is ``Thought: ...`` then ``Action: Finish(<answer>)`` or
``Action: Replan(<reason>)``. The argument runs to the *last* ``)`` so answers
such as ``Finish(Star Wars (film))`` survive; a reply that does not parse is
taken as the answer itself. Replanning is bounded: after ``max_replans`` replans
the joiner is told it must finish, and a Replan it still sends becomes the
answer (its reason, else its thought) with no further model call.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel, LanguageModelLike
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from llmcompiler_graph._clock import now
from llmcompiler_graph._sync import in_sync_run, run_sync
from llmcompiler_graph.executor import run_in_thread
from llmcompiler_graph.journal import Journal
from llmcompiler_graph.planner import conversation, render_round, truncate
from llmcompiler_graph.state import LLMCompilerState, usage_of

JOINER_SYSTEM_PROMPT = """\
You are the final step of a tool-using assistant. A planner split the user's \
question into tool calls, and they have run; you see each call and its \
observation (errors included). Decide whether they are enough to answer.

Reply in exactly this form:
Thought: <your reasoning about the observations, one short paragraph>
Action: Finish(<the answer to the user's question>)
or
Action: Replan(<what is missing or went wrong, so the planner can fix it>)

Answer with Finish whenever the observations suffice; give the answer itself, \
directly and concisely. Use Replan only if new tool calls would help."""

# Results quoted in the answer given when the time limit cuts the joiner short.
MAX_RESULTS_IN_TIMEOUT = 5

MUST_FINISH = (
    "No more replanning is possible: reply with Action: Finish(...) and the best "
    "answer the observations allow."
)

_ACTION = re.compile(r"Action\s*:\s*(Finish|Replan)\s*\(", re.IGNORECASE)
_ACTION_NO_PAREN = re.compile(r"Action\s*:\s*(Finish|Replan)\b\s*:?\s*(.*)", re.IGNORECASE | re.S)
_THOUGHT = re.compile(r"Thought\s*:\s*(.*?)(?=\n\s*Action\s*:|\Z)", re.IGNORECASE | re.S)


@dataclass(frozen=True, slots=True)
class JoinerDecision:
    """A parsed joiner reply."""

    action: Literal["finish", "replan"]
    content: str
    thought: str


def parse_joiner_reply(text: str) -> JoinerDecision:
    """Parse a joiner reply; never raises.

    Example:
        >>> parse_joiner_reply("Thought: ok\\nAction: Finish(Star Wars (film))").content
        'Star Wars (film)'
    """
    thought_match = _THOUGHT.search(text)
    thought = thought_match.group(1).strip() if thought_match else ""
    actions = list(_ACTION.finditer(text))
    if actions:
        last = actions[-1]
        rest = text[last.end() :]
        close = rest.rfind(")")
        content = (rest[:close] if close >= 0 else rest).strip()
        kind = "finish" if last.group(1).lower() == "finish" else "replan"
        return JoinerDecision(kind, content, thought)
    loose = list(_ACTION_NO_PAREN.finditer(text))
    if loose:
        last = loose[-1]
        kind = "finish" if last.group(1).lower() == "finish" else "replan"
        return JoinerDecision(kind, last.group(2).strip(), thought)
    # No action at all: the reply is the answer (minus a leading Thought label).
    answer = text.strip()
    if thought_match and thought_match.start() == text.find("Thought"):
        answer = thought or answer
    return JoinerDecision("finish", answer, thought)


class Joiner:
    """The joiner node.

    Args:
        model: Chat model that judges the observations.
        max_replans: Replans allowed per question.
        system_prompt: Overrides :data:`JOINER_SYSTEM_PROMPT`.
        max_observation_chars: Observations longer than this are cut.
        grammar: ``"llama.cpp"`` / ``"vllm"`` to constrain the reply's form.
        steps_per_round: Graph steps a replan takes (for the recursion limit).
        run_timeout: Seconds the whole question may take (for the message
            given when that limit cuts the joiner short).
    """

    def __init__(
        self,
        model: LanguageModelLike,
        *,
        max_replans: int = 2,
        system_prompt: str | None = None,
        max_observation_chars: int | None = 4000,
        grammar: str | None = None,
        steps_per_round: int = 2,
        run_timeout: float | None = None,
    ) -> None:
        self.model = model
        self.steps_per_round = steps_per_round
        self.run_timeout = run_timeout
        self.max_replans = max_replans
        self.system_prompt = system_prompt or JOINER_SYSTEM_PROMPT
        self.max_observation_chars = max_observation_chars
        self.grammar = grammar

    def messages(self, state: LLMCompilerState, *, must_finish: bool) -> list[BaseMessage]:
        results = {r["idx"]: r for r in state.get("results") or []}
        tasks = state.get("tasks") or []
        parts = []
        for rnd in state.get("rounds") or []:
            round_tasks = [t for t in tasks if t["round"] == rnd["round"]]
            body = render_round(
                round_tasks, results, rnd.get("notes", ()), max_chars=self.max_observation_chars
            )
            parts.append(f"Plan {rnd['round'] + 1} and its observations:\n{body}")
            if rnd.get("action") == "replan":
                parts.append(f"You asked for a new plan because: {rnd.get('reason', '')}")
        if must_finish:
            parts.append(MUST_FINISH)
        return [
            SystemMessage(self.system_prompt),
            *conversation(state["messages"]),
            HumanMessage("\n\n".join(parts)),
        ]

    def _bound_model(self) -> LanguageModelLike:
        if not self.grammar or not isinstance(self.model, BaseChatModel):
            return self.model
        from llmcompiler_graph.grammar import grammar_request_kwargs, joiner_grammar

        return self.model.bind(**grammar_request_kwargs(joiner_grammar(), self.grammar))

    async def anode(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        replans = state.get("replans") or 0
        deadline = state.get("deadline")
        remaining_steps = state.get("remaining_steps")
        must_finish = (
            replans >= self.max_replans
            or (deadline is not None and now() >= deadline)
            # A replan must fit in the recursion limit, ours or a parent graph's:
            # finishing with the best answer beats dying with GraphRecursionError.
            or (remaining_steps is not None and remaining_steps <= self.steps_per_round)
        )
        joiner_start = now()
        reply = await self._reply(state, config, must_finish=must_finish, deadline=deadline)
        # The round's checkpoint has been written by now: its journal is not needed.
        await Journal.delete_for_run(config)
        text = reply.text if isinstance(reply, BaseMessage) else str(reply)
        decision = parse_joiner_reply(text)
        rounds = list(state.get("rounds") or [])
        record: dict[str, Any] = {
            "joiner_start": joiner_start,
            "joiner_end": now(),
            "joiner_usage": usage_of(reply),
            "joiner_reply": text,
            "thought": decision.thought,
            "action": decision.action,
        }
        if decision.action == "replan" and not must_finish:
            record["reason"] = decision.content
            rounds[-1] = {**rounds[-1], **record} if rounds else record  # type: ignore[assignment]
            return {"rounds": rounds, "replans": replans + 1, "phase": "replan"}
        forced = decision.action == "replan"
        answer = decision.content or decision.thought or text.strip()
        if forced:
            record.update(reason=decision.content, forced_finish=True)
        record["answer"] = answer
        if rounds:
            rounds[-1] = {**rounds[-1], **record}  # type: ignore[typeddict-item]
        return {
            "messages": [AIMessage(answer)],
            "rounds": rounds,
            "phase": "done",
        }

    async def _reply(
        self,
        state: LLMCompilerState,
        config: RunnableConfig,
        *,
        must_finish: bool,
        deadline: float | None,
    ) -> Any:
        """The model's reply, or a message saying the time limit cut it short."""
        model, messages = self._bound_model(), self.messages(state, must_finish=must_finish)
        remaining = None if deadline is None else deadline - now()
        if remaining is None or remaining > 0:
            limit = asyncio.timeout(remaining)
            try:
                async with limit:
                    if in_sync_run():  # sync runs use sync model APIs (see _sync)
                        return await run_in_thread(lambda: model.invoke(messages, config))
                    return await model.ainvoke(messages, config)
            except TimeoutError:
                if not limit.expired():
                    raise
        return AIMessage(f"Action: Finish({self._out_of_time(state)})")

    def _out_of_time(self, state: LLMCompilerState) -> str:
        limit = f" of {self.run_timeout:g} s" if self.run_timeout else ""
        done = [r for r in state.get("results") or [] if r["ok"]]
        found = "; ".join(
            f"{r['tool']}: {truncate(r['content'], 200)}" for r in done[-MAX_RESULTS_IN_TIMEOUT:]
        )
        return (
            f"No answer: the run's time limit{limit} was reached before the results "
            "could be read." + (f" Results so far: {found}" if found else "")
        )

    def node(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self.anode(state, config))
