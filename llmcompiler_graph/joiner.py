"""The joiner: reads every observation and either answers or asks for a new plan.

Its reply is ``Thought: ...`` then ``Action: Finish(<answer>)`` or
``Action: Replan(<reason>)``. The argument runs to the ``)`` that balances the
action's own ``(`` (to the last ``)`` when the parentheses do not balance), so
answers such as ``Finish(Star Wars (film))`` survive and text a small model runs
on with after its answer is dropped (the joiner stops reading there); a reply
that does not parse is taken as the answer itself. Replanning is bounded: after
``max_replans`` replans the joiner is told it must finish, and a Replan it still
sends becomes the answer (its reason, else its thought) with no further model
call.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelLike
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
)
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.constants import TAG_NOSTREAM

from llmcompiler_graph._clock import now
from llmcompiler_graph._sync import in_sync_run, run_sync, stream_writer
from llmcompiler_graph.executor import iterate_in_thread
from llmcompiler_graph.journal import Journal
from llmcompiler_graph.planner import (
    MAX_CHUNKS_AFTER_PLAN,
    Prompt,
    check_prompt,
    conversation,
    format_number,
    observation_text,
    render_round,
    system_message,
    truncate,
)
from llmcompiler_graph.state import (
    LLMCompilerState,
    TokenEvent,
    add_usage,
    last_question,
    usage_of,
)
from llmcompiler_graph.tools.math import resolve_context_number

JOINER_SYSTEM_PROMPT = """\
You answer the user's question from the results of tool calls. A planner chose the \
calls and they have run; you see each call and its observation (errors included).

Reply in exactly this form:
Thought: <the values from the observations that decide the answer>
Action: Finish(<the answer>)

Only if a needed result is missing or failed, reply instead:
Thought: <what went wrong>
Action: Replan(<what the new plan must do>)

The answer in Finish:
- answers a yes/no question with Yes or No first.
- answers "which" or "who" with the name first, then any number asked for.
- gives a number the question asks for as the result of the last step says it: \
never write a calculation such as 120 - 108 or (3 + 5) / 2.
- copies names and numbers as the observations write them, with their unit."""

JoinerExample = tuple[str, Sequence[tuple[str, str, float | str, str]], str | None, str, str]
"""A worked joiner turn: ``(question, facts, math, thought, answer)``. Each fact is
``(entity, attribute, value, unit)`` as a ``lookup`` returns it; ``math`` is the plan's
last step (an expression over the facts, ``c1`` first) or ``None``."""

# Shown to the joiner as earlier turns of the chat, rendered exactly as its real input
# is. A 0.5B model copied a single worked example inside the system prompt into
# unrelated answers; as separate turns, of different kinds, it learns the form of the
# reply instead. The entities are made up so that no answer can be copied from them.
JOINER_EXAMPLES: tuple[JoinerExample, ...] = (
    (
        "Was Honda founded before Ford?",
        [("Ford", "founded", 1903, "year"), ("Honda", "founded", 1948, "year")],
        None,
        "Honda (1948) was founded after Ford (1903), not before.",
        "No",
    ),
    (
        "What is the capital of the smaller of Peru and Chile?",
        [
            ("Peru", "area", 1_285_000, "km2"),
            ("Chile", "area", 756_000, "km2"),
            ("Peru", "capital", "Lima", ""),
            ("Chile", "capital", "Santiago", ""),
        ],
        None,
        "Chile (756,000) is smaller than Peru (1,285,000); the capital of Chile is Santiago.",
        "Santiago",
    ),
    (
        "What is the combined depth of Lake Baikal and Lake Tanganyika?",
        [("Lake Baikal", "depth", 1642, "metres"), ("Lake Tanganyika", "depth", 1470, "metres")],
        "c1 + c2",
        "The last step adds 1,642 and 1,470 and gives 3,112.",
        "3,112 metres",
    ),
    (
        "Which is higher, Mont Blanc or K2, and by how much?",
        [("Mont Blanc", "height", 4806, "metres"), ("K2", "height", 8611, "metres")],
        "c1 - c2",
        "K2 (8,611) is higher than Mont Blanc (4,806); they differ by 3,805.",
        "K2, by 3,805 metres",
    ),
    (
        "Which city has more residents, Cairo or Lagos, and by how many?",
        [
            ("Lagos", "population", 15_400_000, "people"),
            ("Cairo", "population", 10_100_000, "people"),
        ],
        "abs(c1 - c2)",
        "Lagos (15,400,000) has more than Cairo (10,100,000); the last step gives 5,300,000.",
        "Lagos, by 5,300,000 people",
    ),
)


# Tags on the model calls, for those who want the raw plan and reply tokens
# (``astream_events``, tracing); the answer's own stream carries ANSWER_TAG.
JOINER_TAG = "llmcompiler:joiner"
ANSWER_TAG = "llmcompiler:answer"

# Results quoted in the answer given when the time limit cuts the joiner short.
MAX_RESULTS_IN_TIMEOUT = 5
# Why a joiner model that sent nothing at all gave no answer.
NO_REPLY = "the joiner model wrote nothing"
# Characters and chunks read from one joiner reply at most while no answer has
# closed. Without a grammar or ``max_tokens`` a small model can write its Thought
# (or an answer) forever. Generous: a model that thinks aloud inline may write a
# long, finished reply (see :meth:`Joiner._cut` for what a cut reply decides).
MAX_REPLY_CHARS = 100_000
MAX_REPLY_CHUNKS = 100_000
# Characters kept of a replan reason the bound cut off.
MAX_CUT_REASON_CHARS = 300

MUST_FINISH = (
    "No more replanning is possible: reply with Action: Finish(...) and the best "
    "answer the observations allow."
)

_ACTION = re.compile(r"Action\s*:\s*(Finish|Replan)\s*\(", re.IGNORECASE)
_ACTION_NO_PAREN = re.compile(r"Action\s*:\s*(Finish|Replan)\b\s*:?\s*(.*)", re.IGNORECASE | re.S)
# An action that starts a line is the reply's decision; one inside a line (a Thought
# that mentions "Action: Finish(...)") counts only when no line starts with one. A
# line may open with markdown or list marks: "**Action: Finish(x)**", "- Action: ...".
_LINE_START = r"(?:^|\n)[ \t>*_#-]*Action\s*:\s*"
_LINE_ACTION = re.compile(_LINE_START + r"(Finish|Replan)\s*\(", re.IGNORECASE)
_LINE_FINISH = re.compile(_LINE_START + r"(Finish)\s*\(", re.IGNORECASE)
_ANY_ACTION = re.compile(r"Action\s*:", re.IGNORECASE)
# A last line that is only the beginning of a line-start action ("\n**Act").
_PARTIAL_ACTION = re.compile(r"\n[ \t>*_#-]*(?:A|Ac|Act|Acti|Actio|Action)\s*\Z", re.IGNORECASE)
_THOUGHT = re.compile(r"Thought\s*:\s*(.*?)(?=\n\s*Action\s*:|\Z)", re.IGNORECASE | re.S)


@dataclass(frozen=True, slots=True)
class JoinerDecision:
    """A parsed joiner reply."""

    action: Literal["finish", "replan"]
    content: str
    thought: str


@dataclass(frozen=True, slots=True)
class _Action:
    """An ``Action: Finish(``/``Replan(`` in a reply, and where its text ends: at the
    next action of its kind of search, or at the reply's end."""

    match: re.Match[str]
    end: int
    line_start: bool
    # Where the ")" that balances its "(" is, from the match's end; None: still open.
    close: int | None

    @property
    def kind(self) -> Literal["finish", "replan"]:
        return _kind(self.match)

    @property
    def text(self) -> str:
        return self.match.string[self.match.end() : self.end]


def _kind(match: re.Match[str]) -> Literal["finish", "replan"]:
    return "finish" if match.group(1).lower() == "finish" else "replan"


def _actions(text: str, pattern: re.Pattern[str]) -> list[_Action]:
    """Every action ``pattern`` finds, each ending where the next one starts."""
    found = list(pattern.finditer(text))
    ends = [m.start() for m in found[1:]] + [len(text)] if found else []
    return [
        _Action(m, end, pattern is _LINE_ACTION, closing_paren(text[m.end() : end]))
        for m, end in zip(found, ends, strict=True)
    ]


def _decisive_action(text: str) -> _Action | None:
    """The action that decides (see :func:`parse_joiner_reply`)."""
    spans = _actions(text, _LINE_ACTION)
    finishes = [a for a in spans if a.kind == "finish"]
    closed = [a for a in finishes if a.close is not None]
    replans = [a for a in spans if a.kind == "replan"]
    chosen = next(iter(closed or replans or finishes), None)
    if chosen is None and (anywhere := list(_ACTION.finditer(text))):
        last = anywhere[-1]
        chosen = _Action(last, len(text), False, closing_paren(text[last.end() :]))
    return chosen


def _last_closed_action(text: str) -> JoinerDecision | None:
    """The last ``Action: Finish(…)``/``Replan(…)`` anywhere in ``text`` whose
    parenthesis closes before the next action, with its content; ``None`` if none."""
    for action in reversed(_actions(text, _ACTION)):
        content = action.text[: action.close].strip() if action.close is not None else ""
        if content:
            return JoinerDecision(action.kind, content, "")
    return None


def _new_answer_id() -> str:
    return f"llmcompiler-answer-{uuid.uuid4()}"


def _kept_answer(decision: JoinerDecision, reply: str, *, must_finish: bool) -> str | None:
    """The answer a round keeps (``None`` when it replans): a replan the joiner may
    no longer make ends the question with its reason."""
    if decision.action == "replan" and not must_finish:
        return None
    return decision.content or decision.thought or reply.strip()


def _finish(answer: str) -> JoinerDecision:
    return JoinerDecision("finish", answer, "")


def closing_paren(text: str) -> int | None:
    """Index of the ``)`` that closes an already open ``(``, or ``None``.

    Example:
        >>> closing_paren("Star Wars (film)). More")
        16
    """
    depth = 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return i
    return None


def parse_joiner_reply(text: str) -> JoinerDecision:
    """Parse a joiner reply; never raises.

    The decision is the first ``Finish`` that starts a line and closes before the
    next such action (a model may correct an earlier ``Replan``; the streamed joiner
    stops reading at that answer's closing parenthesis, so reading the whole reply
    must agree); else the first ``Replan`` that starts a line; else a ``Finish`` that
    starts a line and never closes, its answer ending before the next action; a reply
    with no action at a line start ("Thought: done. Action: Finish(x)") takes its
    last action.

    Example:
        >>> parse_joiner_reply("Thought: ok\\nAction: Finish(Star Wars (film))").content
        'Star Wars (film)'
    """
    return _decide(text, _decisive_action(text))


def _decide(text: str, chosen: _Action | None) -> JoinerDecision:
    """:func:`parse_joiner_reply` once its deciding action is known."""
    thought_match = _THOUGHT.search(text)
    thought = thought_match.group(1).strip() if thought_match else ""
    if chosen is not None:
        rest = chosen.text
        # The answer ends at the ")" that balances "Action: Finish(" (so Star Wars
        # (film) survives, and text a model runs on with after it is not the answer);
        # with unbalanced parentheses, at the last ")".
        close = chosen.close if chosen.close is not None else rest.rfind(")")
        content = (rest[:close] if close >= 0 else rest).strip()
        return JoinerDecision(chosen.kind, content, thought)
    loose = list(_ACTION_NO_PAREN.finditer(text))
    if loose:
        last = loose[-1]
        return JoinerDecision(_kind(last), last.group(2).strip(), thought)
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
        system_prompt: Overrides :data:`JOINER_SYSTEM_PROMPT`, as a template with no
            fields (``{{``/``}}`` for braces) or a callable (see ``planner.Prompt``).
        max_observation_chars: Observations longer than this are cut.
        grammar: ``"llama.cpp"`` / ``"vllm"`` to constrain the reply's form.
        token_events: Send raw tokens as custom stream events too.
        steps_per_round: Graph steps a replan takes (for the recursion limit).
        run_timeout: Seconds the whole question may take (for the message
            given when that limit cuts the joiner short).
        examples: Worked turns shown before the question (default
            :data:`JOINER_EXAMPLES`; ``()`` for none).
    """

    def __init__(
        self,
        model: LanguageModelLike,
        *,
        max_replans: int = 2,
        system_prompt: Prompt | None = None,
        max_observation_chars: int | None = 4000,
        grammar: str | None = None,
        token_events: bool = False,
        steps_per_round: int = 2,
        run_timeout: float | None = None,
        examples: Sequence[JoinerExample] | None = None,
    ) -> None:
        self.model = model
        self.steps_per_round = steps_per_round
        self.run_timeout = run_timeout
        self.max_replans = max_replans
        self.system_prompt = JOINER_SYSTEM_PROMPT if system_prompt is None else system_prompt
        check_prompt(self.system_prompt, (), "joiner_prompt")
        self.max_observation_chars = max_observation_chars
        self.grammar = grammar
        self.token_events = token_events
        self.example_turns: list[BaseMessage] = [
            m
            for ex in (JOINER_EXAMPLES if examples is None else examples)
            for m in example_turn(ex, max_chars=max_observation_chars)
        ]

    def messages(self, state: LLMCompilerState, *, must_finish: bool) -> list[BaseMessage]:
        results = {r["idx"]: r for r in state.get("results") or []}
        text = joiner_input(
            state.get("tasks") or [],
            results,
            state.get("rounds") or [],
            last_question(state["messages"]),
            max_chars=self.max_observation_chars,
        )
        if must_finish:
            text += "\n\n" + MUST_FINISH
        return [
            system_message(self.system_prompt, state, {}, "joiner_prompt"),
            *self.example_turns,
            *conversation(state["messages"]),
            HumanMessage(text),
        ]

    def _bound_model(self, state: LLMCompilerState, joiner_text: str) -> LanguageModelLike:
        if not self.grammar or not isinstance(self.model, BaseChatModel):
            return self.model
        from llmcompiler_graph.grammar import grammar_request_kwargs, joiner_grammar

        question = last_question(state["messages"])
        lead: list[str] = []
        # Led by the last step only when the joiner read it.
        if any(line.startswith(_FINAL_LABELS) for line in joiner_text.splitlines()):
            results = {r["idx"]: r for r in state.get("results") or []}
            lead = observed_numbers("\n".join(_final_texts(state.get("tasks"), results)))
        grammar = joiner_grammar(
            answer_form=answer_form(question),
            numbers=observed_numbers(joiner_text),
            lead_numbers=lead,
            named_numbers=observed_numbers(question),
        )
        return self.model.bind(**grammar_request_kwargs(grammar, self.grammar))

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
        # One answer message per question: each round hands its id on to the next,
        # unless text was streamed under it (a chat UI keeps what it was sent).
        answer_id = next(
            (r["answer_id"] for r in reversed(state.get("rounds") or ()) if r.get("answer_id")),
            _new_answer_id(),
        )
        unmet = "" if must_finish else unmet_comparison(state)
        if unmet:
            # Decided here, not by the model: a small joiner named an answer from the
            # half it had (capitals, but no populations to pick one by).
            text, usage = f"Thought: {unmet}\nAction: Replan({unmet})", dict[str, int]()
            called = False
            decision = JoinerDecision("replan", unmet, unmet)
            streamed = ""
        else:
            text, usage, called, decision, streamed = await self._reply(
                state, config, must_finish=must_finish, deadline=deadline, answer_id=answer_id
            )
        # The round's checkpoint has been written by now: its journal is not needed.
        await Journal.delete_for_run(config)
        kept = _kept_answer(decision, text, must_finish=must_finish)
        if streamed and kept != streamed:
            # What streamed is not the answer kept (a later action decided, or the
            # round replans): the kept answer goes out as a message of its own.
            answer_id = _new_answer_id()
        rounds: list[dict[str, Any]] = [dict(r) for r in state.get("rounds") or []]
        record: dict[str, Any] = {
            "joiner_start": joiner_start,
            "joiner_end": now(),
            "joiner_usage": usage,
            "joiner_called": called,
            "joiner_reply": text,
            "thought": decision.thought,
            "action": decision.action,
            "answer_id": answer_id,
        }
        if decision.action == "replan" and not must_finish:
            # A reason decided in code is kept verbatim: unmet_comparison finds it there
            # (parsing would cut it at a stray ")" from the question).
            record["reason"] = unmet or decision.content
            if rounds:
                rounds[-1] = {**rounds[-1], **record}
            return {"rounds": rounds, "replans": replans + 1, "phase": "replan"}
        forced = decision.action == "replan"
        answer = kept or ""
        if forced:
            record.update(reason=decision.content, forced_finish=True)
        record["answer"] = answer
        if rounds:
            rounds[-1] = {**rounds[-1], **record}
        return {
            # The id the streamed answer carried, so a chat UI's message becomes this one.
            "messages": [AIMessage(answer, id=answer_id)],
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
        answer_id: str,
    ) -> tuple[str, dict[str, int], bool, JoinerDecision, str]:
        """The model's reply, its token usage, whether the model was called, the
        decision, and the answer text streamed to chat UIs (see :class:`_AnswerRelay`).

        A decision made in code (the time limit or the bound cut the reply short, the
        model sent nothing) is not parsed back from the text, so results quoted in it
        stay whole."""
        messages = self.messages(state, must_finish=must_finish)
        model = self._bound_model(state, messages[-1].text)
        # The raw reply (thought and action) stays out of the ``messages`` stream:
        # a chat UI shows the answer alone. Filter for the tag to see it all.
        raw_config = merge_configs(config, {"tags": [JOINER_TAG, TAG_NOSTREAM]})
        round_no = len(state.get("rounds") or []) - 1
        write = stream_writer() if self.token_events else None
        relay = _AnswerRelay.start(config, answer_id)
        text: list[str] = []
        usage: dict[str, int] = {}
        remaining = None if deadline is None else deadline - now()
        called = False
        decided: JoinerDecision | None = None
        shown: str | None = None  # the reply as recorded, when code decided
        try:
            if remaining is not None and remaining <= 0:
                raise _OutOfTime
            called = True
            limit = asyncio.timeout(remaining)
            try:
                async with limit:
                    stream = (
                        iterate_in_thread(lambda: model.stream(messages, raw_config))
                        if in_sync_run()  # sync runs use sync model APIs (see _sync)
                        else model.astream(messages, raw_config)
                    )
                    async with aclosing(stream):  # type: ignore[type-var]
                        after = received = chars = 0
                        async for chunk in stream:
                            piece = chunk.text if isinstance(chunk, BaseMessage) else str(chunk)
                            add_usage(usage, usage_of(chunk))
                            if relay.complete:
                                # Past the answer's closing parenthesis a small model runs
                                # on: read a few chunks for the usage that comes last, then
                                # stop generating.
                                after += 1
                                if after > MAX_CHUNKS_AFTER_PLAN:
                                    break
                                continue
                            text.append(piece)
                            if piece and write is not None:
                                write(TokenEvent(event="joiner_token", text=piece, round=round_no))
                            relay.feed(piece)
                            received += 1
                            chars += len(piece)
                            if not relay.complete and (
                                chars > MAX_REPLY_CHARS or received > MAX_REPLY_CHUNKS
                            ):
                                # Stop reading (closing the stream stops the server
                                # generating); what arrived is all kept.
                                bound = (
                                    f"{MAX_REPLY_CHARS:,} characters"
                                    if chars > MAX_REPLY_CHARS
                                    else f"{MAX_REPLY_CHUNKS:,} chunks"
                                )
                                decided = self._cut(state, "".join(text), bound)
                                break
            except TimeoutError:
                if not limit.expired():
                    raise
                raise _OutOfTime from None
            except ValueError as exc:
                # LangChain's stream raises this when the model sent nothing at all:
                # the run still ends with an answer and the results it has.
                if text or "No generation chunks" not in str(exc):
                    raise
                answer = self._no_answer(state, NO_REPLY)
                decided, shown = _finish(answer), f"Action: Finish({answer})"
        except _OutOfTime:
            # An action the model finished (an answer that had closed, with only the
            # drain cut short) stands; else what the time limit left.
            chosen = _decisive_action(reply := "".join(text))
            if chosen is not None and chosen.close is not None:
                decided = _decide(reply, chosen)
            else:
                answer = self._out_of_time(state, relay.written)
                decided, shown = _finish(answer), f"Action: Finish({answer})"
        except BaseException:
            await relay.close()
            raise
        reply = "".join(text) if shown is None else shown
        if decided is None:
            decided = parse_joiner_reply(reply)
        streamed = await relay.close(_kept_answer(decided, reply, must_finish=must_finish))
        return reply, usage, called, decided, streamed

    def _cut(self, state: LLMCompilerState, reply: str, bound: str) -> JoinerDecision:
        """The decision of a reply cut off at ``bound`` (:data:`MAX_REPLY_CHARS`).

        An action the model finished writing stands (the deciding one; where no
        action starts a line, the last closed one: a reply repeating ``Action:
        Finish(42)`` on one line). Else a ``Finish`` answer that starts a line and was still open is
        the answer so far, all of it, marked as cut; an open line-start ``Replan``
        asks for a new plan with the start of its reason. Anything else (a Thought
        that only mentions an action, an empty answer) gives no answer.
        """
        marker = f" … [cut: the joiner's reply passed {bound}]"
        chosen = _decisive_action(reply)
        if chosen is not None and chosen.close is not None:
            return _decide(reply, chosen)
        if chosen is None or not chosen.line_start:
            closed = _last_closed_action(reply)
            if closed is not None:
                return closed
        elif content := chosen.text.strip():
            thought_match = _THOUGHT.search(reply, 0, chosen.match.start())
            thought = thought_match.group(1).strip() if thought_match else ""
            if chosen.kind == "finish":
                return JoinerDecision("finish", content + marker, thought)
            return JoinerDecision("replan", content[:MAX_CUT_REASON_CHARS] + marker, thought)
        return _finish(
            self._no_answer(
                state, f"the joiner model wrote {bound} without an Action, so reading stopped"
            )
        )

    def _out_of_time(self, state: LLMCompilerState, streamed: str = "") -> str:
        limit = f" of {self.run_timeout:g} s" if self.run_timeout else ""
        if streamed.strip():
            # An answer already streaming stays the answer's beginning: a chat UI
            # keeps what it was sent, so the final message must start with it.
            return f"{streamed} … [cut: the run's time limit{limit} was reached]"
        return self._no_answer(
            state, f"the run's time limit{limit} was reached before the results could be read"
        )

    @staticmethod
    def _no_answer(state: LLMCompilerState, why: str) -> str:
        done = [r for r in state.get("results") or [] if r["ok"]]
        found = "; ".join(
            f"{r['tool']}: {truncate(r['content'], 200)}" for r in done[-MAX_RESULTS_IN_TIMEOUT:]
        )
        return f"No answer: {why}." + (f" Results so far: {found}" if found else "")

    def node(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self.anode(state, config))


def joiner_input(
    tasks: Sequence[Mapping[str, Any]],
    results: Mapping[int, Any],
    rounds: Sequence[Mapping[str, Any]],
    question: str,
    *,
    max_chars: int | None,
) -> str:
    """The joiner's user message: each round's calls and observations, the last
    step's result, the question, and the facts compared (measured on the 0.5B model:
    with the comparison right before its answer, it named the right one more often).
    The comparison is left out when the last step's result answers a question that
    picks nothing: it asks neither for a name nor for Yes or No, nor about the one a
    comparison picks ("the capital of the less populous of A and B"). The last step's
    result is left out when the question asks for a name or Yes/No and for no number,
    and that step only combined all the facts compared."""
    parts = []
    for rnd in rounds:
        round_tasks = [t for t in tasks if t["round"] == rnd["round"]]
        body = render_round(round_tasks, results, rnd.get("notes", ()), max_chars=max_chars)
        parts.append(f"Plan {rnd['round'] + 1} and its observations:\n{body}")
        if rnd.get("action") == "replan":
            parts.append(f"You asked for a new plan because: {rnd.get('reason', '')}")
    final = final_results(tasks, results)
    form = answer_form(question)
    if (
        form in ("name", "yes_no")
        and not _ASKS_FOR_NUMBER.search(question)
        and _only_combines_compared(tasks, results)
    ):
        # The question asks for a name or Yes/No and no number, and the last step only
        # combined the facts that are compared below: beside the point. Shown, the 0.5B
        # model answered "Which has more people, Canada or Australia?" with "Canada,
        # by 67,000,000 people" (a sum). A step over some of them ("Is A + B larger
        # than C?") or a new quantity (a density) stays.
        final = ""
    if final:
        parts.append(final)
    if question:
        parts.append(f"Question: {question}")
    # The comparison helps choose a name or Yes/No. When the answer is a number that the
    # last step computed (a sum, an average), its "by GAP" competed with that result:
    # the 0.5B model answered the gap for 3 sums and averages of 34 offline-qa questions.
    # "The capital of the less populous of A and B" picks, as a which-question does.
    picks = form in ("name", "yes_no") or bool(
        resolve_pick(question, _records(results.values()))[0]
    )
    if not final or picks:
        ranking = rank_records(results.values(), question)
        if ranking:
            parts.append(ranking)
    return "\n\n".join(parts)


def example_turn(example: JoinerExample, *, max_chars: int | None = None) -> list[BaseMessage]:
    """A worked example as a user turn (rendered by :func:`joiner_input`, as real input
    is) and the reply to it.

    Example:
        >>> user, reply = example_turn(JOINER_EXAMPLES[0])
        >>> user.text.splitlines()[-1]
        '"before" picks Ford (1903) over Honda (1948), so the answer is No.'
        >>> reply.text.splitlines()[-1]
        'Action: Finish(No)'
    """
    from llmcompiler_graph.tools.math import context_refs, safe_eval

    question, facts, expression, thought, answer = example
    tasks: list[dict[str, Any]] = []
    results: dict[int, dict[str, Any]] = {}
    for idx, (entity, attribute, value, unit) in enumerate(facts, 1):
        record = {"entity": entity, "attribute": attribute, "value": value, "unit": unit}
        record["text"] = _fact_text(entity, attribute, value, unit)
        tasks.append(
            {
                "idx": idx,
                "tool": "lookup",
                "deps": [],
                "round": 0,
                "args": f'entity="{entity}", attribute="{attribute}"',
            }
        )
        results[idx] = {"idx": idx, "ok": True, "value": record, "content": record["text"]}
    if expression is not None:
        idx = len(facts) + 1
        refs = sorted(i for i in context_refs(expression) if 1 <= i < idx)
        names = {f"c{i}": facts[i - 1][2] for i in refs}
        value = safe_eval(expression, names)  # type: ignore[arg-type]
        context = ", ".join(f"${i}" for i in refs)
        tasks.append(
            {
                "idx": idx,
                "tool": "math",
                "deps": refs,
                "round": 0,
                "args": f'problem="{expression}", context=[{context}]',
            }
        )
        results[idx] = {"idx": idx, "ok": True, "value": value, "content": str(value)}
    text = joiner_input(tasks, results, [{"round": 0}], question, max_chars=max_chars)
    return [HumanMessage(text), AIMessage(f"Thought: {thought}\nAction: Finish({answer})")]


def _fact_text(entity: str, attribute: str, value: Any, unit: str) -> str:
    shown = f"{value:,}" if isinstance(value, int) and unit != "year" else str(value)
    if attribute == "capital":
        return f"The capital of {entity} is {shown}."
    if unit == "year":
        return f"{entity} was {attribute} in {shown}."
    return f"The {attribute} of {entity} is {shown} {unit}.".replace(" .", ".")


def rank_records(results: Any, question: str = "") -> str:
    """Numeric facts of the same attribute, in order, so a small model need not compare.

    A result that is a record with ``entity``, ``attribute`` and a numeric ``value``
    (an offline ``lookup``) is compared with the others of its attribute: two are
    compared both ways, more are ranked with their ends labelled (years earliest
    first, other values largest first). For a yes/no ``question``, the two ways start
    with the entity the question names first, as its answer does ("Is A taller than
    B?": "A ... is smaller than B ...; B ... is larger than A ..."). When the question
    has a comparative word ("taller", "less populous", "before"), a last line says
    which record that word picks (see :func:`_picked`).

    Example:
        >>> rows = [{"ok": True, "value": {"entity": e, "attribute": "height", "value": v,
        ...          "unit": "metres"}} for e, v in (("A", 3), ("B", 4))]
        >>> for part in rank_records(rows).split("; "):
        ...     print(part)
        By height: B 4 metres is larger than A 3 metres, by 1 metres
        A 3 metres is smaller than B 4 metres.
    """
    every = _records(results)
    facts: dict[str, list[Mapping[str, Any]]] = {}  # every record, by entity
    for record in every:
        facts.setdefault(record["entity"], []).append(record)
    lines = []
    for attribute, records in _compared(every).items():
        ordered, years = _ordered(records.values())
        shown = [f"{r['entity']} {_value_text(r, years)}" for r in ordered]
        if len(shown) == 2:
            # Both directions spelled out: a small model matches the question's own
            # wording ("before", "less") more reliably than it compares numbers.
            more, less = ("later", "earlier") if years else ("larger", "smaller")
            hi, lo = (1, 0) if years else (0, 1)  # the later (larger) one, the other
            a, b = shown[hi], shown[lo]
            # The gap too, always positive and with its unit: "by how much" is the
            # usual next question, and a plan's c1 - c2 may have come out negative.
            unit = ordered[0].get("unit") or ""
            gap = abs(ordered[0]["value"] - ordered[1]["value"])
            by = f"{gap if years else format_number(gap)}{' ' + unit + 's' if years else ''}"
            if not years and unit:
                by += f" {unit}"
            ways = [f"{a} is {more} than {b}", f"{b} is {less} than {a}"]
            if _names_first(question, ordered[lo]["entity"], ordered[hi]["entity"]):
                ways.reverse()
            lines.append(f"By {attribute}: {ways[0]}, by {by}; {ways[1]}.")
        else:
            first, last = ("earliest", "latest") if years else ("largest", "smallest")
            ends = [f"{shown[0]} ({first})", *shown[1:-1], f"{shown[-1]} ({last})"]
            lines.append(f"Ranked by {attribute}: {'; '.join(ends)}.")
        pick = _picked(question, ordered, years, facts)
        if pick:
            lines.append(pick)
    return "\n".join(lines)


def _compared(facts: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """What :func:`rank_records` compares: numeric records by attribute, then by
    entity, for each attribute that two or more entities have."""
    groups: dict[str, dict[str, Mapping[str, Any]]] = {}
    for fact in facts:
        if _is_number(fact.get("value")):
            groups.setdefault(fact["attribute"], {})[fact["entity"]] = fact
    return {a: records for a, records in groups.items() if len(records) >= 2}


def resolve_pick(
    question: str, facts: Sequence[Mapping[str, Any]]
) -> tuple[str, str, Mapping[str, Any]]:
    """The question with its pick resolved by the compared ``facts`` (records), the
    comparative phrase, and the record picked; ``("", "", {})`` when nothing resolves
    (see :func:`resolved_question`)."""
    for records in _compared(facts).values():
        ordered, years = _ordered(records.values())
        pick = _pick(question, ordered, years)
        if pick is None:
            continue
        phrase, at, chosen = pick
        resolved = resolved_question(question, phrase, at, chosen["entity"], list(records))
        if resolved:
            return resolved, phrase, chosen
    return "", "", {}


def _ordered(records: Any) -> tuple[list[Mapping[str, Any]], bool]:
    """Compared records in order (years earliest first, other values largest first),
    and whether they are years."""
    records = list(records)
    years = all(r.get("unit") == "year" for r in records)
    return sorted(records, key=lambda r: r["value"], reverse=not years), years


def _record_of(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A successful result's record (a ``value`` with ``entity`` and ``attribute``
    names, as an offline ``lookup`` returns), or ``None``."""
    value = result.get("value") if result.get("ok", True) else None
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("entity"), str) and isinstance(value.get("attribute"), str):
        return value
    return None


def _records(results: Any) -> list[Mapping[str, Any]]:
    """The records among ``results`` (see :func:`_record_of`)."""
    return [r for r in map(_record_of, results) if r is not None]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ways(larger: str, smaller: str) -> dict[str, int]:
    return dict.fromkeys(larger.split(), 1) | dict.fromkeys(smaller.split(), -1)


# The comparative words of a question and the end of a ranking each one picks: 1 the
# larger value, -1 the smaller. Words about time apply only to years, where "older"
# is the earlier year (of an age, it is the larger number).
_PICK_ANY = _ways(
    "more most larger largest bigger biggest greater greatest higher highest taller "
    "tallest longer longest heavier heaviest deeper deepest wider widest",
    "less least fewer fewest smaller smallest lower lowest shorter shortest lighter "
    "lightest shallower shallowest narrower narrowest",
)
_PICK_YEARS = _ways(
    "after later latest newer newest recent younger youngest",
    "before earlier earliest first older oldest",
)
_PICK_AGES = _ways("older oldest", "younger youngest")
_TIME_WORDS = frozenset(_PICK_YEARS) - frozenset(_PICK_AGES)
_WORD = re.compile(r"[A-Za-z]+")
# "more populous" is quoted whole; "more than" is not a word pair.
_NOT_A_QUALITY = re.compile(r"(than|of|the|an?|and|or|in|on|at|to|by|from|as)\Z")


def _comparative(question: str, years: bool) -> tuple[str, int, int] | None:
    """The question's first comparative word (with the quality it grades, as in "less
    populous"), the end of the ranking it picks, and where it stands in the question."""
    words = list(_WORD.finditer(question))
    table = _PICK_YEARS if years else _PICK_AGES
    for at, match in enumerate(words):
        word = match.group().lower()
        way = table.get(word, _PICK_ANY.get(word))
        if way is None:
            continue
        phrase = word
        following = words[at + 1] if at + 1 < len(words) else None
        if (
            word in ("more", "most", "less", "least")
            and following is not None
            and following.group().islower()
            and not _NOT_A_QUALITY.match(following.group())
            and question[match.end() : following.start()] == " "
        ):
            phrase = f"{word} {following.group()}"
        return phrase, way, match.start()
    return None


def unmet_comparison(state: Mapping[str, Any]) -> str:
    """Why a new plan is needed, or ``""``: the question picks by a comparison ("the
    capital of the less populous of A and B", "Which is older, A or B?"), facts were
    looked up, and either no two of them are numbers of one kind to compare, or the
    question asks something about the one picked (its capital) that was not looked
    up. Each reason is said once per question (a plan that again fetches nothing new
    is answered from).

    Example:
        >>> capital = {"ok": True, "value": {"entity": "A", "attribute": "capital",
        ...            "value": "X"}}
        >>> state = {"messages": [HumanMessage("Which is less populous, A or B?")],
        ...          "results": [capital, {**capital, "value": {**capital["value"],
        ...          "entity": "B"}}]}
        >>> unmet_comparison(state).split(": ")[-1]
        'look up, for each of A and B, the number that "less populous" is about.'
    """
    question = last_question(state.get("messages"))
    if answer_form(question) == "number":  # "How many more ...?" is a difference
        return ""
    found = _comparative(question, years=True)
    if found is None:
        return ""
    facts = _records(state.get("results") or ())
    names = list(dict.fromkeys(f["entity"] for f in facts))
    if len(names) < 2:
        return ""
    if _compared(facts):
        # Compared, but nothing of the one picked beyond the number it was picked by.
        resolved, phrase, chosen = resolve_pick(question, facts)
        known = (f for f in facts if f["entity"] == chosen.get("entity"))
        if not resolved or any(f["attribute"] != chosen["attribute"] for f in known):
            return ""
        if _asks_compared(resolved, chosen) or _told_elsewhere(state, chosen["entity"]):
            return ""
        reason = f'"{phrase}" picks {chosen["entity"]}; to answer, find out: {resolved}'
    else:
        phrase = found[0]
        # "earliest", "most recent", "before" compare dates: said so, the planner knows
        # which attribute to look up. ("older" may be an age.)
        kind = "year" if phrase.split()[-1] in _TIME_WORDS else "number"
        reason = (
            f'"{phrase}" compares numbers, and none were looked up to compare: look up, '
            f"for each of {', '.join(names[:-1])} and {names[-1]}, the {kind} that "
            f'"{phrase}" is about.'
        )
    if not reason or any(r.get("reason") == reason for r in state.get("rounds") or ()):
        return ""
    return reason


# A question about a year, in other words than the attribute's ("When did ... come
# out?", "In which year did ... start?").
_ASKS_WHEN = re.compile(r"\b(when|years?|date|how long ago)\b", re.I)


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _WORD.findall(text.lower()) if len(w) > 3}


def _asks_compared(resolved: str, chosen: Mapping[str, Any]) -> bool:
    """Whether the resolved question asks for the very number compared ("What is the
    population of Canada?", "When was Microsoft founded?"). A who-question asks for a
    person, never for a number."""
    if resolved.lower().startswith("who"):
        return False
    if chosen.get("unit") == "year" and _ASKS_WHEN.search(resolved):
        return True
    return bool(_stems(resolved) & _stems(str(chosen["attribute"])))


def _told_elsewhere(state: Mapping[str, Any], entity: str) -> bool:
    """Whether a result that is not a lookup record (a search's text) names ``entity``:
    it may hold what the question asks, and the model reads it before any new plan."""
    return any(
        result.get("ok", True)
        and _record_of(result) is None
        and _named_at(observation_text(result), entity) >= 0
        for result in state.get("results") or ()
    )


def _pick(
    question: str, ordered: Sequence[Mapping[str, Any]], years: bool
) -> tuple[str, int, Mapping[str, Any]] | None:
    """The question's comparative phrase, where it stands, and the record of
    ``ordered`` (larger value first, or earliest year first) that it picks."""
    found = _comparative(question, years)
    if found is None:
        return None
    phrase, way, at = found
    return phrase, at, ordered[0] if (way == 1) != years else ordered[-1]


# What makes "the <pick> of ..." something asked about rather than the answer: a
# preposition before it ("the capital of the less populous of A and B"), or a verb
# right after "Who" ("Who directed the earliest of ..."). Not "Which is the largest
# of ...", "Name the oldest ...", "What's the ...", nor "the name of the tallest ...".
_ABOUT = re.compile(r"(of|in|for|from|to|by|with|about|at|on)\Z", re.I)
_COPULAS = frozenset(["is", "was", "are", "were", "s", "be", "been"])
_QUOTES = "\"'\u2018\u2019\u201c\u201d"
# Between two names of a list: commas, quotes, "and"/"or" ("A, B, and C").
_LIST_GLUE = re.compile(rf"[\s,{_QUOTES}]*(?:(?:and|or)\b[\s{_QUOTES}]*)?", re.I)
# After the list's last name: closing quotes, then the end of the question or of its
# clause ("?", ", and when?"), not more of a name ("Amazon.com", "Apple Inc.").
_LIST_END = re.compile(rf"[{_QUOTES})]*(?=[?!.;,:](?:\s|$)|\s+(?:and|or|but)\b|\s*$)", re.I)


def resolved_question(question: str, phrase: str, at: int, chosen: str, names: Any) -> str:
    """``question`` with its pick, "the <phrase> of <names>", replaced by the ``chosen``
    entity, or ``""`` when the question has no such pick, the pick is its answer, or
    the list after it is not exactly ``names`` (an alias, a longer name).

    Example:
        >>> q = "What is the capital of the less populous of Canada and Australia?"
        >>> resolved_question(q, "less populous", q.index("less"), "Australia",
        ...                   ["Canada", "Australia"])
        'What is the capital of Australia?'
        >>> q = "Which is the largest of A, B and C?"
        >>> resolved_question(q, "largest", q.index("largest"), "C", "ABC")
        ''
    """
    start = at - len("the ")
    if start < 0 or question[start:at].lower() != "the ":
        return ""
    before = [w.lower() for w in _WORD.findall(question[:start])]
    about = bool(before) and _ABOUT.match(before[-1]) is not None and before[-2:] != ["name", "of"]
    who_did = len(before) == 2 and before[0] == "who" and before[1] not in _COPULAS
    if not (about or who_did):
        return ""
    opener = re.compile(r"\s+(of|among|between)\s+", re.I).match(question, at + len(phrase))
    wanted = {str(n).lower() for n in names}
    if opener is None or not wanted:
        return ""
    # Longest first, so that "South Sudan" is not read as "Sudan".
    alternation = "|".join(re.escape(n) for n in sorted(wanted, key=len, reverse=True))
    name = re.compile(rf"(?:the\s+)?\b({alternation})\b", re.I)
    pos, found = opener.end(), set()
    while True:
        glue = _LIST_GLUE.match(question, pos)  # matches, if only the empty string
        m = name.match(question, glue.end() if glue else pos)
        if m is None:
            break
        found.add(m.group(1).lower())
        pos = m.end()
    end = _LIST_END.match(question, pos)
    if found != wanted or end is None:
        return ""
    return question[:start] + chosen + question[end.end() :]


def _picked(
    question: str,
    ordered: Sequence[Mapping[str, Any]],
    years: bool,
    facts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> str:
    """The record the question's comparative word picks, said in that word.

    Measured on the 0.5B model: given both ways of a comparison, it still wrote the
    question's own relation with the wrong name ("Casablanca (1942) was released later
    than Parasite (2019)"). A yes/no question of the form "Is A taller than B?" (one
    name before the word, the other after it) also gets its answer. When the question
    asks something about the pick ("the capital of the less populous of A and B"), a
    second line says the question with the pick resolved, then what else is known of
    it (``facts``, records by entity): with the capitals two rounds up, the 0.5B model
    had answered the country.

    Example:
        >>> rows = [{"entity": e, "attribute": "height", "value": v, "unit": "m"}
        ...         for e, v in (("Tall", 9), ("Short", 4))]
        >>> _picked("Is Short taller than Tall?", rows, years=False)
        '"taller" picks Tall (9 m) over Short (4 m), so the answer is No.'
    """
    pick = _pick(question, ordered, years)
    if pick is None:
        return ""
    phrase, at, chosen = pick
    others = [r for r in ordered if r is not chosen]
    line = f'"{phrase}" picks {_with_value(chosen, years)} over '
    line += ", ".join(_with_value(r, years) for r in others)
    end = "."
    if len(others) == 1 and answer_form(question) == "yes_no":
        where = {r["entity"]: _named_at(question, r["entity"]) for r in ordered}
        before = [e for e, i in where.items() if 0 <= i < at]
        after = [e for e, i in where.items() if i > at]
        if len(before) == 1 and len(after) == 1:
            answer = "Yes" if before[0] == chosen["entity"] else "No"
            end = f", so the answer is {answer}."
    more = []
    resolved = resolved_question(
        question, phrase, at, chosen["entity"], [r["entity"] for r in ordered]
    )
    if resolved:
        more.append(f"So the question asks: {resolved}")
    more += [
        str(f["text"])
        if isinstance(f.get("text"), str)
        else _fact_text(f["entity"], f["attribute"], f.get("value"), f.get("unit") or "")
        for f in (facts or {}).get(chosen["entity"], ())
        if f["attribute"] != chosen["attribute"]
    ]
    return line + end + ("\n" + " ".join(more) if more else "")


def _value_text(record: Mapping[str, Any], years: bool) -> str:
    """A compared record's value as the comparison writes it: a year bare, any other
    number with thousands separators and its unit."""
    if years:
        return str(record["value"])
    unit = record.get("unit") or ""
    return format_number(record["value"]) + (f" {unit}" if unit else "")


def _with_value(record: Mapping[str, Any], years: bool) -> str:
    return f"{record['entity']} ({_value_text(record, years)})"


def _names_first(question: str, entity: str, other: str) -> bool:
    """Whether a yes/no ``question`` names ``entity`` before ``other``."""
    if answer_form(question) != "yes_no":
        return False
    at, at_other = _named_at(question, entity), _named_at(question, other)
    return at >= 0 and (at_other < 0 or at < at_other)


def _named_at(question: str, entity: str) -> int:
    """Where ``question`` first names ``entity`` as whole words (-1: nowhere), so that
    "Tall" is not found inside "taller"."""
    found = re.search(rf"\b{re.escape(entity)}\b", question, re.I)
    return found.start() if found else -1


def _last_steps(tasks: Any) -> list[Mapping[str, Any]]:
    """The latest round's last steps: tasks that used earlier results and whose own
    result nothing used."""
    tasks = [t for t in tasks or () if t.get("tool") != "join"]
    if not tasks:
        return []
    latest = max(t.get("round", 0) for t in tasks)
    tasks = [t for t in tasks if t.get("round", 0) == latest]
    used = {d for t in tasks for d in t.get("deps") or ()}
    return [t for t in tasks if t.get("deps") and t["idx"] not in used]


def _only_combines_compared(tasks: Any, results: Mapping[int, Any]) -> bool:
    """Whether the one last step used exactly the numeric records (what
    :func:`rank_records` compares), all of them and nothing else."""
    last = _last_steps(tasks)
    records = {
        idx
        for idx, result in results.items()
        if (record := _record_of(result)) is not None and _is_number(record.get("value"))
    }
    return len(last) == 1 and len(records) >= 2 and set(last[0].get("deps") or ()) == records


_FINAL_LABELS = ("Result of the last step", "Results of the last steps")


def final_results(tasks: Any, results: Mapping[int, Any]) -> str:
    """The results of the latest round's last steps: tasks that used earlier results
    and whose own result nothing used. A small model otherwise answers with the first
    observation it reads rather than the computation the plan built for the question.

    Example:
        >>> tasks = [{"idx": 1, "tool": "lookup", "deps": [], "round": 0},
        ...          {"idx": 2, "tool": "math", "deps": [1], "round": 0}]
        >>> final_results(tasks, {2: {"ok": True, "value": 2.5, "content": "2.5"}})
        'Result of the last step: 2.5'
    """
    shown = [truncate(text, 200) for text in _final_texts(tasks, results)]
    if not shown:
        return ""
    label = _FINAL_LABELS[len(shown) > 1]
    return f"{label}: {'; '.join(shown)}"


def _final_texts(tasks: Any, results: Mapping[int, Any]) -> list[str]:
    """What the latest round's last steps returned, each as the joiner reads it (before
    it is cut to length)."""
    return [
        observation_text(_as_gap(t, results))
        for t in _last_steps(tasks)
        if t["idx"] in results and results[t["idx"]].get("ok", True)
    ]


_YES_NO_QUESTION = re.compile(
    r"(is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)\b", re.I
)
_NAME_QUESTION = re.compile(r"(which|who|whom|whose)\b", re.I)
# Anywhere in a question: it asks for a number ("Which is taller, and by how much?").
_ASKS_FOR_NUMBER = re.compile(
    r"\bhow\s+(many|much|long|far|old|tall|high|big|large)\b|\b(by|in)\s+what\b"
    r"|\bwhat\s+(year|percentage)\b",
    re.I,
)
# "How many ...", "How much ...", "How tall is ...", "In what year ...", "By what
# percentage ...": a quantity. ("How is A related to B?" is not one.)
_NUMBER_QUESTION = re.compile(
    r"how\s+(many|much|[a-z]+\s+(is|are|was|were|will|would|did|does|do)\b)"
    r"|(in|by)\s+(what|how\s+much)\b|what\s+(year|percentage)\b",
    re.I,
)


_PLAN_LINE = re.compile(r"\s*(\d+\.\s+\w+\(|Plan \d+ and its observations:)")
_NUMBER_WRITTEN = re.compile(r"\d(?:[\d,]*\d)?(?:\.\d+)?")


def observed_numbers(joiner_text: str) -> list[str]:
    """The numbers an answer may write: each one as the joiner's input writes it, in
    observations, the last step's result, the comparison and the question, but not in
    the plan's own lines (task numbers, ``c1``, call arguments). A number may also be
    written with or without thousands separators.

    Example:
        >>> observed_numbers(
        ...     "Plan 1 and its observations:\\n1. math(problem=\\"c1 / c2\\")\\n"
        ...     "   Observation: 2.7\\n\\nQuestion: How much larger is 335,000,000?"
        ... )
        ['2.7', '335,000,000', '335000000']
    """
    found: list[str] = []
    for line in joiner_text.splitlines():
        if _PLAN_LINE.match(line):
            continue
        for number in _NUMBER_WRITTEN.findall(line):
            whole, dot, fraction = number.replace(",", "").partition(".")
            found.extend((number, whole + dot + fraction, f"{int(whole):,}{dot}{fraction}"))
    return list(dict.fromkeys(found))


AnswerForm = Literal["name", "yes_no", "number"]


def answer_form(question: str) -> AnswerForm | None:
    """The form an answer to ``question`` takes, from its first words: ``"yes_no"``,
    ``"name"`` (which, who), ``"number"`` (how many, how much, how tall is, in what
    year, by what percentage; or, after other first words, any of these later on) or
    ``None`` (anything else).

    Example:
        >>> answer_form("Was Apple founded first?"), answer_form("Which is taller, A or B?")
        ('yes_no', 'name')
        >>> answer_form("How many more people live in A than in B?")
        'number'
        >>> answer_form("If A stood on B, how tall would they be?")
        'number'
        >>> answer_form("What is the combined height of A and B?") is None
        True
    """
    text = question.strip()
    if _YES_NO_QUESTION.match(text):
        return "yes_no"
    if _NAME_QUESTION.match(text):
        return "name"
    # "If A were stacked on B, how tall would the stack be?": a quantity too.
    if _NUMBER_QUESTION.match(text) or _ASKS_FOR_NUMBER.search(text):
        return "number"
    return None


def _as_gap(task: Mapping[str, Any], results: Mapping[int, Any]) -> Any:
    """A last step that subtracted one of two facts from the other, as the (positive)
    gap between them: a small model copies "-16,000,000" into "by how much" answers.
    """
    result = results[task["idx"]]
    value = result.get("value")
    deps = task.get("deps") or []
    if not _is_number(value) or value >= 0:
        return result
    if len(deps) != 2 or not all(d in results for d in deps):
        return result
    a, b = (resolve_context_number(results[d].get("value")) for d in deps)
    if a is None or b is None or abs(abs(a - b) - abs(value)) > 1e-9 * abs(value):
        return result
    return {**result, "value": abs(value), "content": str(abs(value))}


class _OutOfTime(Exception):
    """The run's deadline left no time for the joiner's model."""


class _AnswerRelay(BaseChatModel):
    """Streams the joiner's answer into LangGraph's ``messages`` stream mode.

    The joiner's raw reply (``Thought: … Action: Finish(…)``) is kept out of that
    stream; the text inside ``Finish(…)`` is relayed through this model as it is
    written, under the id of the ``AIMessage`` the joiner then puts in state, so
    a chat UI streams the answer token by token and ends with the message the
    thread keeps. A piece is relayed once it is certain to be part of the
    answer: up to the last ``)`` seen so far (the answer ends at the last one).
    """

    @property
    def _llm_type(self) -> str:
        return "llmcompiler-answer"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("the answer relay only streams")

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        pieces: asyncio.Queue[str | None] = kwargs["pieces"]
        message_id: str = kwargs["message_id"]
        while (piece := await pieces.get()) is not None:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece, id=message_id))
        # Our own closing chunk, so that none is added under another id.
        last = AIMessageChunk(content="", id=message_id, chunk_position="last")
        yield ChatGenerationChunk(message=last)

    @classmethod
    def start(cls, config: RunnableConfig, message_id: str) -> _RelayHandle:
        return _RelayHandle(cls(), config, message_id)


class _RelayHandle:
    """Feeds one joiner reply's answer to an :class:`_AnswerRelay` run, started
    at the answer's first piece (a reply without one starts no run)."""

    def __init__(self, relay: _AnswerRelay, config: RunnableConfig, message_id: str) -> None:
        self._relay = relay
        self._config = merge_configs(config, {"tags": [ANSWER_TAG], "run_name": "answer"})
        self._id = message_id
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._text = ""
        self._start: int | None = None
        self._sent = 0  # characters of the answer relayed so far
        self._close = -1  # position of the last ")" after the start
        self._limit = 0  # where the answer's text ends: a later action, or the text's end
        # Bracket depth of the answer up to ``_scanned``: each character is read
        # once, so a long answer in small chunks costs linear time.
        self._depth = 0
        self._scanned = 0
        self._done = False
        self.complete = False  # the Finish answer's closing parenthesis has arrived

    def feed(self, piece: str) -> None:
        if not piece or self._done:
            return
        offset = len(self._text)
        self._text += piece
        if self._start is None:
            # Only a Finish that starts a line is the answer (see parse_joiner_reply).
            match = _LINE_FINISH.search(self._text, max(0, offset - 32))
            if match is None:
                return
            self._start = self._scanned = match.end()
            offset = self._start
        if not self._sent:
            # Leading blanks are not the answer (they may come in several pieces);
            # the start only moves forward, so each blank is passed once.
            start = self._start
            while start < len(self._text) and self._text[start].isspace():
                start += 1
            if start != self._start:
                self._start = self._scanned = start
                self._depth, self._close = 0, -1
        # A second action ends what is relayed: the kept answer, decided from the
        # whole reply, goes out under a new id when it does not start with it.
        limit = len(self._text)
        later = _ANY_ACTION.search(self._text, max(self._start, offset - 16))
        if later is not None:
            limit, self._done = later.start(), True
        self._limit = limit
        for i in range(self._scanned, limit):
            char = self._text[i]
            if char == "(":
                self._depth += 1
            elif char == ")":
                self._depth -= 1
                if self._depth < 0:
                    # The answer is complete: its closing parenthesis has arrived.
                    limit = self._limit = self._close = i
                    self._done = self.complete = True
                    break
                self._close = i
        self._scanned = max(self._scanned, limit)
        # Up to the last ")" (the answer may end there), without trailing blanks
        # (the kept answer is stripped).
        end = min(self._close, limit) if self._close >= self._start else self._start
        while end > self._start + self._sent and self._text[end - 1].isspace():
            end -= 1
        if end - self._start > self._sent:
            self._put(self._text[self._start + self._sent : end])
            self._sent = end - self._start

    @property
    def sent(self) -> str:
        """The answer's text relayed so far."""
        return "" if self._start is None else self._text[self._start : self._start + self._sent]

    @property
    def written(self) -> str:
        """The answer's text written so far (more than :attr:`sent` while a ``)``
        may still turn out to end it), up to a later action if one came, without a
        line that is only the start of one (``\nAct``)."""
        if self._start is None:
            return ""
        if self.complete:
            return self.sent
        text = self._text[self._start : self._limit].rstrip()
        tail = _PARTIAL_ACTION.search(text)
        return text[: tail.start()].rstrip() if tail else text

    def _put(self, text: str) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._queue.put_nowait(text)

    async def _run(self) -> None:
        stream = self._relay.astream([], self._config, pieces=self._queue, message_id=self._id)
        async for _ in stream:
            pass

    async def close(self, final: str | None = None) -> str:
        """End the relayed message and return all the text it carried. With
        ``final``, the answer kept, first relay what it adds to the text sent (a chat
        UI keeps what it was sent, and LangGraph does not send a message again under
        an id it streamed)."""
        if self._task is None:
            return ""
        sent = self.sent
        if final is not None and final.startswith(sent) and len(final) > len(sent):
            self._queue.put_nowait(final[len(sent) :])
            sent = final
        self._queue.put_nowait(None)
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise
        return sent
