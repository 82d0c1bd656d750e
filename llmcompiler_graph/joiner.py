"""The joiner: reads every observation and either answers or asks for a new plan.

Its reply is ``Thought: ...`` then ``Action: Finish(<answer>)`` or
``Action: Replan(<reason>)``. The argument runs to the *last* ``)`` so answers
such as ``Finish(Star Wars (film))`` survive; a reply that does not parse is
taken as the answer itself. Replanning is bounded: after ``max_replans`` replans
the joiner is told it must finish, and a Replan it still sends becomes the
answer (its reason, else its thought) with no further model call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel, LanguageModelLike
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from llmcompiler_graph._clock import now
from llmcompiler_graph._sync import in_sync_run, run_sync
from llmcompiler_graph.executor import run_in_thread
from llmcompiler_graph.planner import conversation, format_number, render_round
from llmcompiler_graph.state import LLMCompilerState, usage_of

JOINER_SYSTEM_PROMPT = """\
You answer the user's question from the results of tool calls. A planner chose the \
calls and they have run; you see each call and its observation (errors included).

Reply in exactly this form:
Thought: <the values that decide the answer, compared>
Action: Finish(<the answer>)

Only if a needed result is missing or failed, reply instead:
Thought: <what went wrong>
Action: Replan(<what the new plan must do>)

Example. Question: Which is taller, Tower A or Tower B, and by how much?
Observations: Tower A is 300 metres. Tower B is 450 metres. The math result is 150.
Thought: Tower B (450) is larger than Tower A (300), and the math result is 150.
Action: Finish(Tower B is taller than Tower A, by 150 metres)

The answer in Finish:
- repeats the conclusion of your Thought in a few words (Yes/No first for a yes/no \
question).
- takes the number the question asks for from the last math observation, as it is: \
never write a calculation such as 120 - 108 or (3 + 5) / 2 in the answer.
- copies names and numbers as the observations write them, with their unit."""

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
    """

    def __init__(
        self,
        model: LanguageModelLike,
        *,
        max_replans: int = 2,
        system_prompt: str | None = None,
        max_observation_chars: int | None = 4000,
        grammar: str | None = None,
    ) -> None:
        self.model = model
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
        question = _last_question(state["messages"])
        if question:
            parts.append(f"Question: {question}")
        ranking = rank_records(state.get("results") or [])
        if ranking:
            parts.append(ranking)
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
        must_finish = (
            replans >= self.max_replans
            or (deadline is not None and now() >= deadline)
            or not _room_for_another_round(config)
        )
        joiner_start = now()
        model, messages = self._bound_model(), self.messages(state, must_finish=must_finish)
        if in_sync_run():  # sync runs use sync model APIs (see _sync)
            reply = await run_in_thread(lambda: model.invoke(messages, config))
        else:
            reply = await model.ainvoke(messages, config)
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

    def node(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self.anode(state, config))


def rank_records(results: Any) -> str:
    """Numeric facts of the same attribute, in order, so a small model need not compare.

    A result that is a record with ``entity``, ``attribute`` and a numeric ``value``
    (an offline ``lookup``) is ranked against the others of its attribute, its ends
    labelled: years earliest first, other values largest first.

    Example:
        >>> rows = [{"ok": True, "value": {"entity": e, "attribute": "height", "value": v,
        ...          "unit": "metres"}} for e, v in (("A", 300), ("B", 450))]
        >>> rank_records(rows)
        'Ranked by height: B 450 metres (largest); A 300 metres (smallest).'
    """
    groups: dict[str, dict[str, Mapping[str, Any]]] = {}
    for result in results:
        value = result.get("value") if result.get("ok", True) else None
        if not isinstance(value, Mapping):
            continue
        number, entity, attribute = value.get("value"), value.get("entity"), value.get("attribute")
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            continue
        if isinstance(entity, str) and isinstance(attribute, str):
            groups.setdefault(attribute, {})[entity] = value
    lines = []
    for attribute, records in groups.items():
        if len(records) < 2:
            continue
        years = all(r.get("unit") == "year" for r in records.values())
        ordered = sorted(records.values(), key=lambda r: r["value"], reverse=not years)
        shown = [
            f"{r['entity']} {r['value'] if years else format_number(r['value'])}"
            + ("" if years or not r.get("unit") else f" {r['unit']}")
            for r in ordered
        ]
        first, last = ("earliest", "latest") if years else ("largest", "smallest")
        shown[0] += f" ({first})"
        shown[-1] += f" ({last})"
        lines.append(f"Ranked by {attribute}: {'; '.join(shown)}.")
    return "\n".join(lines)


def _last_question(messages: Any) -> str:
    """The user's latest message, repeated after the observations for a small model."""
    for message in reversed(list(messages or ())):
        if isinstance(message, HumanMessage):
            return " ".join(message.text.split())
    return ""


def _room_for_another_round(config: RunnableConfig) -> bool:
    """Whether a replan (planner, scheduler, joiner) fits in the recursion limit.

    A parent graph may impose a lower limit than ours; finishing with the best
    answer beats dying with GraphRecursionError.
    """
    step = (config.get("metadata") or {}).get("langgraph_step")
    limit = config.get("recursion_limit")
    if not isinstance(step, int) or not isinstance(limit, int):
        return True
    return step + STEPS_PER_ROUND < limit


STEPS_PER_ROUND = 3


def route_after_joiner(state: Mapping[str, Any]) -> Literal["planner", "__end__"]:
    """Back to the planner after a Replan, else to the end."""
    return "planner" if state.get("phase") == "replan" else "__end__"
