"""The function-calling planner: prompts a chat model for a plan and streams it.

With streaming dispatch, every task line is handed to the scheduler node of
the same superstep the moment it is complete (see :mod:`llmcompiler_graph.handoff`),
so the first tools run while the model still writes the rest of the plan. The
node itself returns the plan as plain records.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel, LanguageModelLike
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.constants import TAG_NOSTREAM

from llmcompiler_graph._clock import now
from llmcompiler_graph._sync import in_sync_run, run_sync, stream_writer
from llmcompiler_graph.executor import ToolSpec, describe_tools, iterate_in_thread
from llmcompiler_graph.handoff import PlanHandoff, partner_writes
from llmcompiler_graph.journal import superstep_of
from llmcompiler_graph.plan import END_OF_PLAN, PlanNote, PlanParser, PlanStreamParser, Task
from llmcompiler_graph.state import (
    LLMCompilerState,
    ResultRecord,
    RoundRecord,
    TokenEvent,
    add_usage,
    is_replan,
    last_question,
    question_id,
    usage_of,
)
from llmcompiler_graph.task_fetching import SchedulingPolicy

if TYPE_CHECKING:
    from llmcompiler_graph.grammar import Operation

# Tag on the planner's model calls, for those who want its raw tokens
# (``astream_events``, tracing).
PLANNER_TAG = "llmcompiler:planner"
# Chunks still read after the plan ended, for the usage that comes last.
MAX_CHUNKS_AFTER_PLAN = 64
# Lines that cannot run (stray text, tasks past ``max_tasks``) before the
# planner stops reading the model's output.
MAX_UNUSABLE_LINES = 50
# Calls in a row that repeat earlier ones of the same plan before the planner
# stops reading: a small model can loop over the calls it has written.
MAX_REPEATED_CALLS = 2
# Chunks read from one planner call at most (empty chunks count too).
MAX_PLAN_CHUNKS = 100_000
# Stray lines shown to the LLMs per round; state keeps all of them.
MAX_NOTES_SHOWN = 20

PLANNER_SYSTEM_PROMPT = """\
You are the planner of a tool-using assistant. Answer the user's question by \
writing a plan: a numbered list of tool calls. Tasks that do not depend on each \
other run at the same time, so split the work into as many independent calls \
as you can.

Tools:
{tools}
{join_number}. join(): ends the plan. After it, an assistant reads every result \
and either answers the user or asks you for a new plan.

Rules:
- One task per line, written `N. tool_name(arguments)`, numbered one higher \
each line.
- Arguments are Python literals: quoted strings, numbers, True, False, None, \
lists and dicts; positional, or as name=value.
- To use the result of an earlier task, write $N, e.g. context=[$1, $2]. Inside \
a string, $N is replaced by that result's text.
- Get every fact the answer depends on. For "the X of the largest/earliest of A \
and B", get that quantity and X for each of A and B.
- When the question asks the same thing about several items (places, numbers, \
people), write one call for each item. Never write the same call twice.
- Use only the tools listed above. If none of them helps, write only the join line.
- You may write `Thought: ...` on its own line before a task to reason briefly.
- Finish with `N. join()` and then {end_marker}.{examples}"""

REPLAN_PROMPT = """\
Earlier rounds for this question (their tasks have already run):
{history}

A new plan is needed because: {reason}

Write the new plan now, numbering from {start}. Do not repeat a task whose \
result is above: use it as $N."""


PlannerExample = tuple[str, str]
"""A worked planner turn: ``(question, plan)``. The plan is the reply's text up to and
including its ``N. join()`` line; the end marker is added when it is shown."""

# Shown to the planner as earlier turns of the chat, before the question: one call per
# item asked about (names copied as the question writes them, "Portland, OR"), one per
# combination, and a single call with the unit the question names. The tools are made
# up, so by default the turns are shown only where a grammar keeps the plan to the real
# tools: there a plan can copy the form but no call. With the rule alone, the 0.5B
# model wrote one call and then ``join()`` for most questions about several items;
# BFCL ``parallel`` (40 items, seed 1) went from 14 to 22 right with these turns, and
# ``multiple`` from 5 to 9 of 15. Plans written for the real tools (``examples``)
# replace them: beside the offline examples, whose plans open with a Thought naming
# the arithmetic, the planner copied these turns' bare calls and left out the math
# step (offline-qa 31 -> 29 of 34).
PLANNER_EXAMPLES: tuple[PlannerExample, ...] = (
    (
        "What is the weather in Portland, OR and in Lima, Peru, in celsius?",
        '1. get_weather(city="Portland, OR", unit="celsius")\n'
        '2. get_weather(city="Lima, Peru", unit="celsius")\n'
        "3. join()",
    ),
    (
        "Translate 'good morning' and 'thank you' into French and into Spanish.",
        '1. translate(text="good morning", language="French")\n'
        '2. translate(text="thank you", language="French")\n'
        '3. translate(text="good morning", language="Spanish")\n'
        '4. translate(text="thank you", language="Spanish")\n'
        "5. join()",
    ),
    ("How long is the Nile in miles?", '1. river_length(river="Nile", unit="miles")\n2. join()'),
)


def plan_example_turn(example: PlannerExample | Sequence[str]) -> list[BaseMessage]:
    """A worked planner example as two earlier chat turns: the question, then its plan
    (a plan that already ends with the end marker keeps just one).

    Raises:
        ValueError: An example that is not a pair of non-empty strings.

    Example:
        >>> question, plan = plan_example_turn(PLANNER_EXAMPLES[-1])
        >>> print(question.content)
        How long is the Nile in miles?
        >>> print(plan.content)
        1. river_length(river="Nile", unit="miles")
        2. join()<END_OF_PLAN>
    """
    if (
        isinstance(example, str)
        or not isinstance(example, Sequence)
        or len(example) != 2
        or not all(isinstance(part, str) and part.strip() for part in example)
    ):
        raise ValueError(f"a planner example is a (question, plan) pair of text: {example!r}")
    question, plan = example
    plan = plan.rstrip()
    plan = plan.removesuffix(END_OF_PLAN).rstrip()
    return [HumanMessage(question), AIMessage(plan + END_OF_PLAN)]


def default_example_turns(
    tool_names: Collection[str], *, grammar: str | None, examples: bool, custom_prompt: bool
) -> tuple[PlannerExample, ...]:
    """The worked turns a planner shows when none are given: :data:`PLANNER_EXAMPLES`
    where a grammar keeps the plan to the real tools, there are tools, and neither plan
    examples for them nor a prompt of one's own are given; without a turn whose made-up
    tool is named like a real one (it would teach that tool wrong arguments).

    Example:
        >>> len(default_example_turns(["search"], grammar="llama.cpp", examples=False,
        ...     custom_prompt=False))
        3
        >>> [q for q, _ in default_example_turns(["translate"], grammar="llama.cpp",
        ...     examples=False, custom_prompt=False)][1]
        'How long is the Nile in miles?'
        >>> default_example_turns(["search"], grammar=None, examples=False, custom_prompt=False)
        ()
    """
    if not grammar or not tool_names or examples or custom_prompt:
        return ()
    real = set(tool_names)
    return tuple(
        ex
        for ex in PLANNER_EXAMPLES
        if not {t.tool for t in PlanParser().parse_text(ex[1]) if not t.is_join} & real
    )


Prompt = str | SystemMessage | Callable[[LLMCompilerState], str | SystemMessage]
"""A system prompt: a template (``str`` or ``SystemMessage``) whose ``{fields}`` are
filled in each round (``{{`` and ``}}`` stand for literal braces), or a callable
that takes the graph state and returns such a template."""

PLANNER_PROMPT_FIELDS = ("tools", "join_number", "start", "end_marker", "examples")


def check_prompt(prompt: Prompt, fields: Sequence[str], option: str) -> None:
    """Fail at build time, not on the first question, if a template cannot be filled.

    Raises:
        ValueError: The template names an unknown field or has a stray brace.
        TypeError: ``prompt`` is neither a template nor a callable.
    """
    if isinstance(prompt, (str, SystemMessage)):
        _fill(
            prompt.text if isinstance(prompt, SystemMessage) else prompt,
            dict.fromkeys(fields, ""),
            option,
        )
    elif not callable(prompt):
        raise TypeError(
            f"{option} must be a str, a SystemMessage or a callable, not {type(prompt).__name__}"
        )


def system_message(
    prompt: Prompt, state: LLMCompilerState, fields: Mapping[str, Any], option: str
) -> SystemMessage:
    """The system message for this round: ``prompt`` resolved and filled in."""
    template = prompt if isinstance(prompt, (str, SystemMessage)) else prompt(state)
    if isinstance(template, SystemMessage):
        template = template.text
    if not isinstance(template, str):
        raise TypeError(
            f"{option} returned {type(template).__name__}; expected str or SystemMessage"
        )
    return SystemMessage(_fill(template, fields, option))


def _fill(template: str, fields: Mapping[str, Any], option: str) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        known = ", ".join("{" + name + "}" for name in fields) or "none"
        raise ValueError(
            f"{option} cannot be filled in ({type(exc).__name__}: {exc}). Its fields are "
            f"{known}; write {{{{ and }}}} for a literal brace"
        ) from None


def format_examples(examples: str | Sequence[str] | None) -> str:
    """Few-shot examples as an appendix to the planner's system prompt."""
    if not examples:
        return ""
    items = [examples] if isinstance(examples, str) else list(examples)
    body = "\n\n".join(e.strip() for e in items if e.strip())
    return f"\n\nExamples of good plans:\n\n{body}" if body else ""


def conversation(messages: Sequence[AnyMessage]) -> list[BaseMessage]:
    """The conversation as text messages a planner or joiner can take.

    Tool calls and tool messages from other agents of a parent graph are
    rendered as text, since unpaired tool messages are rejected by most APIs.
    """
    out: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, ToolMessage):
            out.append(HumanMessage(f"[result of tool {message.name or ''}]: {message.text}"))
        elif isinstance(message, AIMessage) and message.tool_calls:
            calls = ", ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
            out.append(AIMessage(f"{message.text}\n[called tools: {calls}]".strip()))
        elif isinstance(message, (HumanMessage, AIMessage, SystemMessage)):
            out.append(message)
        else:
            out.append(HumanMessage(message.text))
    return out


def render_round(
    tasks: Sequence[Mapping[str, Any]],
    results: Mapping[int, ResultRecord],
    notes: Sequence[Mapping[str, str]],
    *,
    max_chars: int | None,
) -> str:
    """A round's plan with each task's observation, as planner and joiner read it."""
    lines = []
    for task in tasks:
        if task["tool"] == "join":
            continue
        lines.append(f"{task['idx']}. {task['tool']}({truncate(task['args'], max_chars)})")
        result = results.get(task["idx"])
        if result is None:
            lines.append("   Observation: (not run)")
        else:
            lines.append(f"   Observation: {truncate(observation_text(result), max_chars)}")
    # Past MAX_NOTES_SHOWN, the first ones and the last (which may say why the
    # planner stopped reading) are shown, with a count of those left out.
    hidden = max(0, len(notes) - MAX_NOTES_SHOWN)
    for i, note in enumerate(notes):
        if hidden and i == MAX_NOTES_SHOWN - 1:
            lines.append(f"(… {hidden} more lines of planner output that could not run …)")
        if hidden and MAX_NOTES_SHOWN - 1 <= i < len(notes) - 1:
            continue
        text = truncate(note["text"], max_chars)
        lines.append(f"(planner output not run: {text!r} — {note['reason']})")
    return "\n".join(lines) if lines else "(the plan had no tasks)"


def observation_text(result: Mapping[str, Any]) -> str:
    """A task's result as the LLMs read it: plain sentences and plainly written numbers.

    A record with a ``"text"`` sentence (an offline ``lookup``) reads as that sentence,
    and a list of such records as their sentences; a
    number reads with thousands separators and at most two decimals (``16,000,000``,
    ``2.51``), so a small model copies it instead of miscounting digits. Anything else,
    and every error, reads as the result's text.

    Example:
        >>> observation_text({"ok": True, "value": 16000000, "content": "16000000"})
        '16,000,000'
        >>> observation_text({"ok": True, "value": {"value": 3, "text": "It is 3."},
        ...                   "content": "{...}"})
        'It is 3.'
    """
    value = result.get("value")
    if not result.get("ok", True) or value is None:
        return str(result.get("content", ""))
    if isinstance(value, bool):
        return str(result.get("content", ""))
    if isinstance(value, (int, float)):
        return format_number(value)
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return str(value["text"])
    if isinstance(value, (list, tuple)) and value and all(_sentence(v) for v in value):
        return " ".join(_sentence(v) or "" for v in value)
    return str(result.get("content", ""))


def _sentence(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return str(value["text"])
    return None


def format_number(value: float) -> str:
    """A number for a reader: thousands separators, at most two decimals (four below 1).

    Example:
        >>> format_number(16000000), format_number(586.5), format_number(828 / 330)
        ('16,000,000', '586.5', '2.51')
        >>> format_number(-0.012345), format_number(2.0), format_number(float("inf"))
        ('-0.01235', '2', 'inf')
    """
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            value = int(value)
        elif abs(value) >= 1:
            return f"{round(value, 2):,}"
        else:
            return f"{value:.4g}"
    return f"{value:,}"


def truncate(text: str, max_chars: int | None) -> str:
    """Cut ``text`` to ``max_chars`` with a visible marker saying how much was cut."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = len(text) - max_chars
    return f"{text[:max_chars]}… [truncated {cut} characters]"


class Planner:
    """The planner node.

    Args:
        model: Chat model that writes plans.
        specs: Tools by name.
        examples: Few-shot example plans, appended to the system prompt.
        example_turns: Worked ``(question, plan)`` turns shown before the
            conversation; ``None``: :func:`default_example_turns`, ``()`` for none.
        system_prompt: Overrides :data:`PLANNER_SYSTEM_PROMPT`: a template with the
            same fields, as ``str`` or ``SystemMessage``, or a callable taking the
            state and returning one (see :data:`Prompt`).
        streaming_dispatch: Start tasks while the plan is still streaming.
        policy: How the dispatched tasks are run.
        run_timeout: Seconds the whole run may take; sets ``state["deadline"]``.
        max_observation_chars: Observations longer than this are cut in prompts.
        grammar: ``"llama.cpp"`` or ``"vllm"`` to constrain decoding with a
            grammar built from the tools; ``None``: free-form.
        token_events: Send raw tokens as custom stream events too.
    """

    def __init__(
        self,
        model: LanguageModelLike,
        specs: Mapping[str, ToolSpec],
        *,
        examples: str | Sequence[str] | None = None,
        example_turns: Sequence[PlannerExample] | None = None,
        system_prompt: Prompt | None = None,
        streaming_dispatch: bool = True,
        policy: SchedulingPolicy | None = None,
        run_timeout: float | None = None,
        max_observation_chars: int | None = 4000,
        grammar: str | None = None,
        token_events: bool = False,
    ) -> None:
        self.model = model
        self.specs = specs
        self.examples = format_examples(examples)
        self.example_turns = [
            turn
            for example in (
                example_turns
                if example_turns is not None
                else default_example_turns(
                    specs,
                    grammar=grammar,
                    examples=bool(self.examples),
                    custom_prompt=system_prompt is not None,
                )
            )
            for turn in plan_example_turn(example)
        ]
        self.system_prompt = PLANNER_SYSTEM_PROMPT if system_prompt is None else system_prompt
        check_prompt(self.system_prompt, PLANNER_PROMPT_FIELDS, "planner_prompt")
        self.streaming_dispatch = streaming_dispatch
        self.policy = policy or SchedulingPolicy()
        self.run_timeout = run_timeout
        self.max_observation_chars = max_observation_chars
        self.grammar = grammar
        self.token_events = token_events
        self._tool_text = describe_tools(specs)

    def messages(self, state: LLMCompilerState, start: int) -> list[BaseMessage]:
        """The planner prompt for the round that starts at index ``start``."""
        fields = {
            "tools": self._tool_text,
            "join_number": len(self.specs) + 1,
            "start": start,
            "end_marker": END_OF_PLAN,
            "examples": self.examples,
        }
        system = system_message(self.system_prompt, state, fields, "planner_prompt")
        # The worked turns sit between the system prompt and the conversation, so the
        # prompt's static prefix (and a server's cache of it) covers them.
        messages: list[BaseMessage] = [
            system,
            *self.example_turns,
            *conversation(state["messages"]),
        ]
        if is_replan(state):
            rounds = state.get("rounds") or []
            results = {r["idx"]: r for r in state.get("results") or []}
            history = []
            for rnd in rounds:
                tasks = [t for t in state.get("tasks") or [] if t["round"] == rnd["round"]]
                body = render_round(
                    tasks, results, rnd.get("notes", ()), max_chars=self.max_observation_chars
                )
                history.append(f"Round {rnd['round'] + 1}:\n{body}")
                if rnd.get("thought"):
                    history.append(f"Assessment: {rnd['thought']}")
            reason = rounds[-1].get("reason", "") if rounds else ""
            messages.append(
                HumanMessage(
                    REPLAN_PROMPT.format(
                        history="\n\n".join(history), reason=reason or "(none given)", start=start
                    )
                )
            )
        return messages

    def _bound_model(self, start: int, question: str) -> LanguageModelLike:
        if not self.grammar or not isinstance(self.model, BaseChatModel):
            return self.model
        from llmcompiler_graph.grammar import grammar_request_kwargs, plan_grammar

        tools = [spec.tool for spec in self.specs.values()]
        grammar = plan_grammar(tools, start_index=start, operation=asked_operation(question))
        return self.model.bind(**grammar_request_kwargs(grammar, self.grammar))

    async def anode(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        replanning = is_replan(state)
        prior_tasks = list(state.get("tasks") or []) if replanning else []
        rounds = list(state.get("rounds") or []) if replanning else []
        round_no = len(rounds)
        start = max((t["idx"] for t in prior_tasks), default=0) + 1
        planner_start = now()
        deadline = (
            state.get("deadline")
            if replanning
            else (planner_start + self.run_timeout if self.run_timeout else None)
        )
        parser = PlanStreamParser(
            start,
            known={t["idx"] for t in prior_tasks},
            max_unusable_lines=MAX_UNUSABLE_LINES,
            max_tasks=self.policy.max_tasks,
        )
        # With streaming dispatch every task goes to the scheduler node of this
        # superstep the moment its line is complete (see handoff.py). Joined
        # before any await, so that whatever fails next reaches the scheduler.
        handoff = _join_handoff(config) if self.streaming_dispatch else None
        if handoff is not None:
            handoff.deadline = deadline
        text: list[str] = []
        tasks = []
        usage: dict[str, int] = {}
        drained = received = 0
        loop = _LoopGuard()
        try:
            if handoff is not None and await partner_writes(config, "results") is not None:
                handoff.abandon()  # this superstep's scheduler finished in an earlier attempt
                handoff = None
            model = self._bound_model(start, last_question(state["messages"]))
            messages = self.messages(state, start)
            # The plan's tokens stay out of the ``messages`` stream (a chat UI shows
            # the answer alone); they come as ``planner_token`` custom events.
            raw_config = merge_configs(config, {"tags": [PLANNER_TAG, TAG_NOSTREAM]})
            write = stream_writer() if self.token_events else None
            stream = (
                iterate_in_thread(lambda: model.stream(messages, raw_config))
                if in_sync_run()
                else model.astream(messages, raw_config)
            )
            remaining = None if deadline is None else max(0.0, deadline - now())
            limit = asyncio.timeout(remaining)
            try:
                # Closing the stream when reading stops early makes the server stop
                # generating.
                async with limit, aclosing(stream):  # type: ignore[type-var]
                    async for chunk in stream:
                        received += 1
                        piece = chunk.text if isinstance(chunk, BaseMessage) else str(chunk)
                        add_usage(usage, usage_of(chunk))
                        if parser.finished:
                            # Drain a little: usage arrives in the last chunk. A model that
                            # keeps writing after the plan's end is not waited for.
                            drained += 1
                            if drained > MAX_CHUNKS_AFTER_PLAN:
                                break
                            continue
                        text.append(piece)
                        if piece and write is not None:
                            write(TokenEvent(event="planner_token", text=piece, round=round_no))
                        for task in parser.feed(piece):
                            ready = loop.admit(task)
                            if ready is None:
                                # The model loops over calls it already wrote: the
                                # repeats held back are not run.
                                parser.notes += [
                                    PlanNote(
                                        f"{t.idx}. {t.call_text}",
                                        "not run: the planner began repeating calls it "
                                        "had already written, so it stopped reading",
                                    )
                                    for t in loop.release()
                                ]
                                parser.stopped, parser.finished = "repeated calls", True
                                break
                            for ready_task in ready:
                                tasks.append(ready_task)
                                if handoff is not None:
                                    handoff.put(ready_task)
                        if parser.stopped is not None:
                            break  # a runaway model: the parser says why, in a note
                        if received > MAX_PLAN_CHUNKS:
                            # Empty chunks forever: no character bound would catch them.
                            parser.notes.append(
                                PlanNote(
                                    f"(output after {received} chunks)",
                                    "not read: the model sent more chunks than any plan needs",
                                )
                            )
                            break
            except ValueError as exc:
                # LangChain's stream raises this when the model sent nothing at all:
                # an empty plan, which the joiner is told about, not a crash.
                if received or "No generation chunks" not in str(exc):
                    raise
                parser.notes.append(PlanNote("(no output)", "the planner model wrote nothing"))
            except TimeoutError:
                if not limit.expired():
                    raise
                parser.notes.append(
                    PlanNote(
                        "(the rest of the plan)",
                        "not written: the run's time limit was reached while the planner "
                        "was still writing",
                    )
                )
            # A repeat held back when the plan ended early (no join line) still runs.
            for task in [*loop.release(), *parser.close()]:
                tasks.append(task)
                if handoff is not None:
                    handoff.put(task)
            if handoff is not None:
                handoff.close()
        except BaseException as exc:
            if handoff is not None:
                handoff.fail(exc)
            raise
        finally:
            if handoff is not None:
                handoff.leave("planner")
        records = [{**t.to_record(), "round": round_no} for t in tasks if not t.is_join]
        round_record: RoundRecord = {
            "round": round_no,
            "start_index": start,
            "plan": "".join(text),
            "notes": [n.to_record() for n in parser.notes],
            "planner_start": planner_start,
            "planner_end": now(),
            "planner_usage": usage,
        }
        if (asked := question_id(state["messages"])) is not None:
            round_record["question_id"] = asked
        update: dict[str, Any] = {
            "tasks": prior_tasks + records,
            "rounds": [*rounds, round_record],
            "phase": "replan" if replanning else None,
        }
        if not replanning:
            update.update(replans=0, deadline=deadline)
        return update

    def node(self, state: LLMCompilerState, config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self.anode(state, config))


class _LoopGuard:
    """Tells a plan from a model looping over the calls it already wrote.

    A call that repeats an earlier one of this plan is held back until the next line:
    if that line is new (or the join), the repeat runs after all (tools that are not
    memoized count every call); ``MAX_REPEATED_CALLS`` repeats in a row are a loop, and
    none of them runs, so a looping small model adds no calls to the plan it wrote.
    """

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.held: list[Task] = []

    def admit(self, task: Task) -> list[Task] | None:
        """The tasks to dispatch now (held repeats first, in order), or ``None`` for
        a loop (the repeats stay held; :meth:`release` hands them over)."""
        if not task.is_join and task.error is None:
            call = (task.tool, " ".join(task.source.split()))
            if call in self.seen:
                self.held.append(task)
                return None if len(self.held) >= MAX_REPEATED_CALLS else []
            self.seen.add(call)
        return [*self.release(), task]

    def release(self) -> list[Task]:
        held, self.held = self.held, []
        return held


def _join_handoff(config: RunnableConfig) -> PlanHandoff:
    step = superstep_of(config)
    if step is None:
        raise RuntimeError("the planner node runs only inside a LangGraph run")
    return PlanHandoff.open(step, "planner")


# The arithmetic a question's words ask for. "how many times did ..." counts, and
# "percentage points" are a difference.
_COMPARATIVES = (
    r"more|fewer|less|larger|bigger|smaller|taller|shorter|higher|lower|longer|older"
    r"|younger|earlier|later|greater|heavier|lighter|faster|slower|warmer|colder|hotter"
    r"|richer|poorer|cheaper|wider|deeper|further|farther"
)
_OPERATION_WORDS: dict[Operation, re.Pattern[str]] = {
    "percent": re.compile(r"\bpercent(age)?\b(?!\s+points?\b)", re.I),
    "ratio": re.compile(
        r"\bhow many times\b(?!\s+(has|have|had|did|does|do|was|were|is|are|will|would"
        r"|can|could)\b)|\bratio\b|\btimes\s+(as|" + _COMPARATIVES + r")\b",
        re.I,
    ),
    "average": re.compile(r"\baverage\b|\bmean\s+(of|value)\b", re.I),
    "sum": re.compile(r"\b(combined|total|sum|altogether)\b", re.I),
    "difference": re.compile(
        r"\bdifference\b|\bby how (many|much)\b|\bpercentage points?\b"
        r"|\bhow (many|much)\s+(\w+\s+)?(" + _COMPARATIVES + r")\b"
        r"|\bhow many \w+ (after|before|between|passed|apart)\b",
        re.I,
    ),
}


def asked_operation(question: str) -> Operation | None:
    """The one arithmetic operation ``question`` asks for, from its words, or ``None``
    (none, or several, as in "the difference between the average ...").

    A percentage or a ratio "more" or "larger" is not also a difference. With a
    grammar, the planner's math expressions must then perform it (see
    :func:`llmcompiler_graph.grammar.plan_grammar`): measured on the 0.5B model, a
    planner copying its examples wrote ``abs(c1 - c2)`` for a ratio and a percentage
    and ``c1 + c2`` for an average.

    Example:
        >>> asked_operation("How many times taller is A than B?")
        'ratio'
        >>> asked_operation("What is the combined height of A and B?")
        'sum'
        >>> asked_operation("Which is taller, A or B?") is None
        True
    """
    found = {op for op, words in _OPERATION_WORDS.items() if words.search(question)}
    if found & {"percent", "ratio"}:
        found.discard("difference")
    if "percent" in found:
        found.discard("ratio")
    return found.pop() if len(found) == 1 else None
