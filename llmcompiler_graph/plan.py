"""The planner's output language: parsing plans into tasks, incrementally.

A plan is the paper's numbered list of tool calls::

    Thought: optional reasoning
    1. search(query="Microsoft market cap")
    2. search("Apple market cap")
    3. math(problem="How much must Microsoft grow to pass Apple?", context=[$1, $2])
    4. join()<END_OF_PLAN>

Arguments are Python literals written by a model, so they are parsed by a small
recursive-descent parser here, never by ``eval``. ``$N`` / ``${N}`` refer to task
N's result: a whole-argument reference becomes a :class:`Ref`, a reference inside
a string a :class:`Template`. :class:`PlanStreamParser` turns a token stream into
tasks the moment each line is complete, so the scheduler can start them while the
planner is still writing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

END_OF_PLAN = "<END_OF_PLAN>"
JOIN = "join"

# Guards against hostile text: nesting and sizes are bounded so a parse is linear.
MAX_NESTING = 64
MAX_INT_DIGITS = 4000
# A task index or ``$N`` reference longer than this is not a task number
# (``int()`` of thousands of digits raises and would be slow anyway).
MAX_INDEX_DIGITS = 18

_TASK_HEAD = re.compile(r"\s*(?:[-*]\s*)?(?:Action\s*)?(\d+)\s*[.:)]\s*([A-Za-z_][\w.\-]*)\s*\(")
_LOOKS_LIKE_TASK = re.compile(r"\s*(?:[-*]\s*)?(\d+)\s*[.:)]\s*\S")
_THOUGHT = re.compile(r"\s*(?:#+\s*)?Thought\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_REF_IN_TEXT = re.compile(r"\$\{(\d+)\}|\$(\d+)")


@dataclass(frozen=True, slots=True)
class Ref:
    """A whole-argument reference ``$N``: receives task N's raw result object."""

    idx: int


@dataclass(frozen=True, slots=True)
class Template:
    """A string with references inside: each ``$N`` is replaced by task N's text.

    ``parts`` alternates literal text (``str``) and :class:`Ref` items.
    """

    parts: tuple[str | Ref, ...]


@dataclass(slots=True)
class Task:
    """One parsed plan line.

    Attributes:
        idx: The task's index as written by the planner.
        tool: The tool name (``join`` for the final marker).
        args: Positional arguments (literals, :class:`Ref`, :class:`Template`).
        kwargs: Keyword arguments, same value kinds as ``args``.
        deps: Indices of tasks whose results this task needs, sorted.
        source: The argument text between the parentheses, verbatim.
        thought: The ``Thought:`` line(s) that preceded this task, if any.
        error: Why the line cannot run; set by the parser or by validation.
    """

    idx: int
    tool: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    deps: tuple[int, ...] = ()
    source: str = ""
    thought: str | None = None
    error: str | None = None

    @property
    def is_join(self) -> bool:
        return self.tool == JOIN

    @property
    def call_text(self) -> str:
        return f"{self.tool}({self.source})"

    def to_record(self) -> dict[str, Any]:
        """Plain, serializable form kept in graph state (arguments as source text)."""
        return {
            "idx": self.idx,
            "tool": self.tool,
            "args": self.source,
            "deps": list(self.deps),
            "thought": self.thought,
            "error": self.error,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Task:
        """Rebuild a task from its state record, re-parsing the argument text.

        Text inside strings that only looked like a reference when the plan was
        parsed is decided the same way again: ``$N`` counts when task N exists.
        """
        deps = tuple(record.get("deps") or ())
        task = cls(
            idx=record["idx"],
            tool=record["tool"],
            source=record.get("args", ""),
            thought=record.get("thought"),
            error=record.get("error"),
        )
        if task.error is None and not task.is_join:
            try:
                args, kwargs = parse_arguments(task.source + ")", 0, known=set(deps))[:2]
            except PlanSyntaxError as exc:
                task.error = f"could not parse arguments: {exc}"
            else:
                task.args, task.kwargs = args, kwargs
        task.deps = deps
        return task


class PlanSyntaxError(ValueError):
    """A plan line or argument list that does not parse."""


@dataclass(slots=True)
class PlanNote:
    """A line of planner output that is not a task, kept so the joiner sees it."""

    text: str
    reason: str

    def to_record(self) -> dict[str, str]:
        return {"text": self.text, "reason": self.reason}


# --------------------------------------------------------------------------- literals


class _ArgParser:
    """Recursive descent over Python literal syntax plus ``$N`` references."""

    __slots__ = ("depth", "known", "pos", "refs", "text")

    def __init__(self, text: str, pos: int, known: set[int] | None) -> None:
        self.text = text
        self.pos = pos
        self.known = known
        self.refs: set[int] = set()
        self.depth = 0

    def error(self, message: str) -> PlanSyntaxError:
        near = self.text[self.pos : self.pos + 20]
        return PlanSyntaxError(f"{message} at column {self.pos + 1} (near {near!r})")

    def skip_ws(self) -> None:
        text, pos, n = self.text, self.pos, len(self.text)
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str) -> None:
        self.skip_ws()
        if self.peek() != ch:
            raise self.error(f"expected {ch!r}")
        self.pos += 1

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        """Parse ``a, b, k=v)`` (the opening parenthesis already consumed)."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        while True:
            self.skip_ws()
            if self.peek() == ")":
                self.pos += 1
                return args, kwargs
            match = _KWARG.match(self.text, self.pos)
            if match:
                name = match.group(1)
                if name in kwargs:
                    raise self.error(f"argument {name!r} given twice")
                self.pos = match.end()
                kwargs[name] = self.value()
            else:
                if kwargs:
                    raise self.error("positional argument after keyword argument")
                args.append(self.value())
            self.skip_ws()
            ch = self.peek()
            if ch == ",":
                self.pos += 1
            elif ch != ")":
                raise self.error("expected ',' or ')'") if ch else self.error("unclosed '('")

    def value(self) -> Any:
        self.skip_ws()
        ch = self.peek()
        if not ch:
            raise self.error("expected a value")
        if ch in "\"'" or (ch in "rRbBuUfF" and self.text[self.pos + 1 : self.pos + 2] in "\"'"):
            return self.strings()
        if ch == "$":
            return self.reference()
        if ch in "[({":
            return self.container(ch)
        if ch in "+-." or ch.isdigit():
            return self.number()
        match = _NAME.match(self.text, self.pos)
        if match:
            word = match.group(0)
            if word in _CONSTANTS:
                self.pos = match.end()
                return _CONSTANTS[word]
            raise self.error(f"unquoted text {word!r} (strings must be quoted)")
        raise self.error(f"unexpected character {ch!r}")

    def reference(self) -> Ref:
        match = _REF_AT.match(self.text, self.pos)
        if not match:
            raise self.error("'$' must be followed by a task number")
        digits = match.group(1) or match.group(2)
        if len(digits) > MAX_INDEX_DIGITS:
            raise self.error("task number too large")
        self.pos = match.end()
        idx = int(digits)
        self.refs.add(idx)
        return Ref(idx)

    def container(self, opener: str) -> Any:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting deeper than {MAX_NESTING}")
        self.pos += 1
        closer = {"[": "]", "(": ")", "{": "}"}[opener]
        items: list[Any] = []
        mapping: dict[Any, Any] = {}
        while True:
            self.skip_ws()
            if self.peek() == closer:
                self.pos += 1
                break
            item = self.value()
            if opener == "{":
                self.expect(":")
                key = item
                if isinstance(key, (list, dict, Ref, Template)):
                    raise self.error("dict keys must be plain literals")
                mapping[key] = self.value()
            else:
                items.append(item)
            self.skip_ws()
            ch = self.peek()
            if ch == ",":
                self.pos += 1
            elif ch != closer:
                raise (
                    self.error(f"expected ',' or {closer!r}")
                    if ch
                    else self.error(f"unclosed {opener!r}")
                )
        self.depth -= 1
        if opener == "{":
            return mapping
        # Tuples become lists: results must stay plain, serializable data.
        return items

    def number(self) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        if not match or not match.group(0).strip("+-"):
            raise self.error("malformed number")
        token = match.group(0).replace("_", "")
        self.pos = match.end()
        if match.group("frac") is None and match.group("exp") is None:
            digits = token.lstrip("+-")
            if len(digits) > MAX_INT_DIGITS:
                raise self.error("integer too long")
            return int(token, 0) if digits[:2].lower() in ("0x", "0o", "0b") else int(token)
        return float(token)

    def strings(self) -> str | Template:
        # Adjacent literals concatenate, as in Python: "a" "b" == "ab".
        parts: list[str] = []
        while True:
            parts.append(self.string())
            self.skip_ws()
            ch = self.peek()
            if not (
                ch in "\"'" or (ch in "rRuU" and self.text[self.pos + 1 : self.pos + 2] in "\"'")
            ):
                break
        return self.template("".join(parts))

    def string(self) -> str:
        text = self.text
        raw = False
        while text[self.pos] in "rRbBuUfF":
            raw = raw or text[self.pos] in "rR"
            self.pos += 1
        quote = text[self.pos]
        if text.startswith(quote * 3, self.pos):
            quote = quote * 3
        start = self.pos + len(quote)
        end = _find_string_end(text, start, quote, raw)
        if end < 0:
            raise self.error("unterminated string")
        self.pos = end + len(quote)
        body = text[start:end]
        return body if raw or "\\" not in body else _unescape(body)

    def template(self, value: str) -> str | Template:
        """Split ``$N`` out of string text; only known tasks count as references.

        Prices like ``"$5 burger"`` are left alone when no task 5 exists.
        """
        if "$" not in value:
            return value
        parts: list[str | Ref] = []
        last = 0
        for match in _REF_IN_TEXT.finditer(value):
            digits = match.group(1) or match.group(2)
            if len(digits) > MAX_INDEX_DIGITS:
                continue  # no task has such a number: plain text
            idx = int(digits)
            if self.known is not None and idx not in self.known:
                continue
            if match.start() > last:
                parts.append(value[last : match.start()])
            parts.append(Ref(idx))
            self.refs.add(idx)
            last = match.end()
        if not parts:
            return value
        if last < len(value):
            parts.append(value[last:])
        return Template(tuple(parts))


_KWARG = re.compile(r"([A-Za-z_]\w*)\s*=(?!=)")
_NAME = re.compile(r"[A-Za-z_]\w*")
_REF_AT = re.compile(r"\$\{\s*(\d+)\s*\}|\$(\d+)")
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
    r"(?:\d[\d_]*)?(?P<frac>\.\d*)?(?:(?<=\d)|(?<=\.\d))(?P<exp>[eE][+-]?\d+)?)"
)
_CONSTANTS: dict[str, Any] = {
    "True": True,
    "False": False,
    "None": None,
    "true": True,
    "false": False,
    "null": None,
}
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\n": "",
}


def _find_string_end(text: str, pos: int, quote: str, raw: bool) -> int:
    """Index of the closing quote, skipping backslash escapes; -1 if unterminated."""
    while True:
        end = text.find(quote, pos)
        if end < 0:
            return -1
        # Count the backslashes right before the quote: an odd number escapes it.
        back = 0
        while end - back - 1 >= pos and text[end - back - 1] == "\\":
            back += 1
        if back % 2 == 0:
            return end
        pos = end + 1


def _unescape(body: str) -> str:
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2 : i + 2 + width]
            try:
                out.append(chr(int(digits, 16)) if len(digits) == width else "")
            except ValueError:
                out.append(body[i : i + 2 + width])
            i += 2 + width
        else:
            out.append(body[i : i + 2])
            i += 2
    return "".join(out)


def parse_arguments(
    text: str, pos: int = 0, *, known: set[int] | None = None
) -> tuple[list[Any], dict[str, Any], set[int], int]:
    """Parse a call's argument list starting after its ``(``.

    Args:
        text: The text holding the arguments.
        pos: Where the arguments start (just past the opening parenthesis).
        known: Task indices that exist; ``$N`` inside strings counts as a
            reference only for these (``None``: every ``$N`` counts).

    Returns:
        ``(args, kwargs, refs, end)`` where ``end`` is just past the closing ``)``.

    Raises:
        PlanSyntaxError: The arguments are not valid literal syntax.

    Example:
        >>> args, kwargs, refs, _ = parse_arguments('"a(b)", k=[$1, 2])')
        >>> args, kwargs["k"], sorted(refs)
        (['a(b)'], [Ref(idx=1), 2], [1])
    """
    parser = _ArgParser(text, pos, known)
    try:
        args, kwargs = parser.arguments()
    except (RecursionError, ValueError, IndexError, OverflowError) as exc:
        if isinstance(exc, PlanSyntaxError):
            raise
        raise parser.error(f"malformed arguments ({type(exc).__name__})") from None
    return args, kwargs, parser.refs, parser.pos


# --------------------------------------------------------------------------- lines


class PlanParser:
    """Parses plan lines one at a time, tracking indices and known tasks.

    Args:
        start_index: The first index this plan may use (numbering continues
            across replans).
        known: Indices of tasks from earlier rounds that may be referenced.

    Example:
        >>> parser = PlanParser()
        >>> [t.call_text for t in parser.parse_text('1. search("a")\\n2. join()<END_OF_PLAN>')]
        ['search("a")', 'join()']
    """

    def __init__(self, start_index: int = 1, known: set[int] | None = None) -> None:
        self.next_index = start_index
        self.start_index = start_index
        self.known: set[int] = set(known or ())
        self.notes: list[PlanNote] = []
        self.finished = False
        self._thought: list[str] = []

    def parse_line(self, line: str) -> Task | None:
        """Parse one complete line; returns a task, or ``None`` for other text."""
        if self.finished:
            return None
        end_marker = END_OF_PLAN in line
        if end_marker:
            line = line[: line.index(END_OF_PLAN)]
        stripped = line.strip()
        task: Task | None = None
        if stripped and not stripped.startswith("```"):
            thought = _THOUGHT.match(stripped)
            if thought:
                self._thought.append(thought.group(1).strip())
            else:
                task = self._task(stripped)
        if end_marker:
            self.finished = True
        return task

    def parse_text(self, text: str) -> list[Task]:
        """Parse a whole plan at once."""
        out = []
        for line in text.splitlines():
            task = self.parse_line(line)
            if task is not None:
                out.append(task)
            if self.finished:
                break
        return out

    def _task(self, line: str) -> Task | None:
        head = _TASK_HEAD.match(line)
        numbered = head or _LOOKS_LIKE_TASK.match(line)
        if numbered and len(numbered.group(1)) > MAX_INDEX_DIGITS:
            self.notes.append(PlanNote(line, "task index too large; line not run"))
            return None
        if not head:
            if numbered:
                idx = int(numbered.group(1))
                return self._numbered_error(idx, line, "expected 'N. tool_name(arguments)'")
            self.notes.append(PlanNote(line, "not a task line; ignored"))
            return None
        idx, tool = int(head.group(1)), head.group(2)
        if idx < self.next_index:
            reason = f"task index {idx} does not increase (next index must be ≥ {self.next_index})"
            self.notes.append(PlanNote(line, reason + "; line not run"))
            return None
        thought = " ".join(self._thought) or None
        self._thought = []
        self.next_index = idx + 1
        task = Task(idx=idx, tool=tool, thought=thought)
        try:
            args, kwargs, refs, end = parse_arguments(line, head.end(), known=self.known)
        except PlanSyntaxError as exc:
            task.source = line[head.end() :].rstrip().removesuffix(")")
            task.error = f"could not parse arguments: {exc}"
            self.known.add(idx)
            return task
        task.source = line[head.end() : end - 1]
        rest = line[end:].strip()
        if rest and not rest.startswith("#"):
            task.error = f"unexpected text after the call: {rest[:60]!r}"
        task.args, task.kwargs = args, kwargs
        task.deps = tuple(sorted(refs))
        bad = [d for d in task.deps if d not in self.known]
        if bad and task.error is None:
            later = [d for d in bad if d >= idx]
            task.error = (
                f"references a later task (${later[0]}); tasks may only use earlier results"
                if later
                else f"references task ${bad[0]}, which does not exist"
            )
        if task.is_join:
            self.finished = True
        self.known.add(idx)
        return task

    def _numbered_error(self, idx: int, line: str, reason: str) -> Task | None:
        if idx < self.next_index:
            self.notes.append(PlanNote(line, reason + "; line not run"))
            return None
        self.next_index = idx + 1
        self.known.add(idx)
        task = Task(idx=idx, tool="?", source=line.strip(), error=f"could not parse line: {reason}")
        self._thought = []
        return task


class PlanStreamParser(PlanParser):
    """Incremental plan parser fed with streamed text chunks, with bounded work.

    A task is emitted as soon as its line is complete (a newline or the end
    marker arrived), so it can start while the planner is still writing. Work
    per chunk is proportional to the chunk, and memory stays bounded whatever
    the model writes:

    * a line longer than ``max_line_chars`` keeps only its first
      ``max_line_chars`` characters (the rest is discarded as it arrives); it
      becomes an error task if it starts like one, else a note;
    * after ``max_plan_chars`` characters in all, or once more than
      ``max_unusable_lines`` lines could not run, the parser stops: it sets
      :attr:`stopped` to the reason, appends a :class:`PlanNote` saying so,
      sets :attr:`finished`, and from then on :meth:`feed` returns ``[]``. The
      caller should stop reading and close the model's stream.

    Unusable lines are notes (stray text, non-increasing indices, overlong
    lines), tasks past ``max_tasks``, and blank, ``Thought:`` or code-fence
    lines that no task follows. Such lines count while they pile up and are
    forgiven when a task follows them, so a plan with a thought (and blank
    lines) before every task is never cut, however long.

    Args:
        start_index: The first index this plan may use.
        known: Indices of tasks from earlier rounds that may be referenced.
        max_line_chars: Characters kept per line (``None``: no bound).
        max_plan_chars: Characters read in all (``None``: no bound).
        max_unusable_lines: Unusable lines tolerated before stopping.
        max_tasks: Tasks past this many count as unusable (they are still
            emitted, so the scheduler reports them as not run).

    Example:
        >>> parser = PlanStreamParser()
        >>> parser.feed('1. search("a')
        []
        >>> [t.idx for t in parser.feed('")\\n2. join()<END_OF_PLAN>')]
        [1, 2]
    """

    def __init__(
        self,
        start_index: int = 1,
        known: set[int] | None = None,
        *,
        max_line_chars: int | None = 20_000,
        max_plan_chars: int | None = 1_000_000,
        max_unusable_lines: int = 50,
        max_tasks: int | None = None,
    ) -> None:
        super().__init__(start_index, known)
        self.max_line_chars = max_line_chars
        self.max_plan_chars = max_plan_chars
        self.max_unusable_lines = max_unusable_lines
        self.max_tasks = max_tasks
        self.stopped: str | None = None
        self.lines = 0  # complete lines seen
        self.tasks_seen = 0  # non-join tasks emitted
        self.unusable = 0  # lines that could not run (see the class docstring)
        self._idle = 0  # blank/thought/fence lines since the last task
        self._fed = 0
        self._pending: list[str] = []
        self._pending_len = 0
        self._dropped = 0  # characters of the current line discarded past the bound
        self._tail = ""

    @property
    def unusable_lines(self) -> int:
        """Lines so far that could not run, including those no task followed yet."""
        return self.unusable + self._idle

    def feed(self, chunk: str) -> list[Task]:
        """Add streamed text; returns every task whose line completed."""
        out: list[Task] = []
        if self.finished or not chunk:
            return out
        over = False
        if self.max_plan_chars is not None and self._fed + len(chunk) > self.max_plan_chars:
            chunk = chunk[: max(0, self.max_plan_chars - self._fed)]
            over = True
        self._fed += len(chunk)
        pos, n = 0, len(chunk)
        keep = len(END_OF_PLAN) - 1
        while pos < n and not self.finished:
            newline = chunk.find("\n", pos)
            end = n if newline < 0 else newline + 1
            piece = chunk[pos:end]
            pos = end
            # Look for the end marker across chunk boundaries without rescanning the line.
            window = self._tail + piece
            marker = window.find(END_OF_PLAN)
            self._tail = window[-keep:]
            self._keep(piece if newline < 0 else piece[:-1])
            if marker >= 0 or newline >= 0:
                line, dropped = self._take()
                if marker >= 0 and END_OF_PLAN not in line:
                    line += END_OF_PLAN  # the marker began in an earlier chunk, or was cut off
                self._line(line.rstrip("\n"), dropped, out)
        if over and not self.finished:
            self._stop(
                f"(output after {self._fed:,} characters)",
                f"not read: the plan is longer than {self.max_plan_chars:,} characters, "
                "so the planner stopped reading",
            )
        return out

    def close(self) -> list[Task]:
        """Flush the last line when the stream ends without a newline."""
        out: list[Task] = []
        if self._pending and not self.finished:
            line, dropped = self._take()
            self._line(line, dropped, out)
        if self._thought and not self.finished:
            self.notes.append(PlanNote("Thought: " + " ".join(self._thought), "no task followed"))
            self._thought = []
        self.finished = True
        return out

    # ------------------------------------------------------------------ internals

    def _keep(self, piece: str) -> None:
        bound = self.max_line_chars
        if bound is not None and self._pending_len + len(piece) > bound:
            room = max(0, bound - self._pending_len)
            self._dropped += len(piece) - room
            piece = piece[:room]
        if piece:
            self._pending.append(piece)
            self._pending_len += len(piece)

    def _take(self) -> tuple[str, int]:
        line, dropped = "".join(self._pending), self._dropped
        self._pending, self._pending_len, self._dropped = [], 0, 0
        self._tail = ""
        return line, dropped

    def _line(self, line: str, dropped: int, out: list[Task]) -> None:
        self.lines += 1
        notes = len(self.notes)
        task = self._overlong(line, dropped) if dropped else self.parse_line(line)
        if task is not None:
            if not task.is_join:
                self.tasks_seen += 1
                if self.max_tasks is not None and self.tasks_seen > self.max_tasks:
                    self.unusable += self._idle + 1
            self._idle = 0
            out.append(task)
        elif len(self.notes) > notes:
            self.unusable += len(self.notes) - notes
        else:
            self._idle += 1  # blank, Thought: or a code fence; forgiven if a task follows
        if not self.finished and self.unusable_lines > self.max_unusable_lines:
            self._stop(
                f"(output after {self.lines} lines)",
                f"not read: more than {self.max_unusable_lines} lines of the plan "
                "could not run, so the planner stopped reading",
            )

    def _overlong(self, line: str, dropped: int) -> Task | None:
        """A line cut at ``max_line_chars``: an error task if it starts like one."""
        if END_OF_PLAN in line:
            line = line[: line.index(END_OF_PLAN)]
            self.finished = True
        reason = (
            f"line longer than {self.max_line_chars:,} characters ({dropped:,} more were discarded)"
        )
        stripped = line.strip()
        head = _TASK_HEAD.match(stripped) or _LOOKS_LIKE_TASK.match(stripped)
        digits = head.group(1) if head else ""
        if not head or len(digits) > MAX_INDEX_DIGITS or int(digits) < self.next_index:
            self.notes.append(PlanNote(stripped, reason + "; not run"))
            return None
        idx = int(digits)
        tool = head.group(2) if head.re is _TASK_HEAD else "?"
        source = stripped[head.end() :] if head.re is _TASK_HEAD else stripped
        thought = " ".join(self._thought) or None
        self._thought = []
        self.next_index = idx + 1
        self.known.add(idx)
        return Task(idx=idx, tool=tool, source=source, thought=thought,
                    error=f"could not parse line: {reason}")  # fmt: skip

    def _stop(self, text: str, reason: str) -> None:
        self.stopped = reason
        self.notes.append(PlanNote(text, reason))
        self.finished = True
        self._pending, self._pending_len, self._dropped = [], 0, 0
        self._thought = []
